"""Benchmark: memory of one Kiu-net training step at the paper's widths, estimated without running it.

At 320 x 320 the Ki-branch of Kiu-net (widths 84/168/336) reaches 2560 x 2560 x 336
per slice: a real training step there takes tens of GB and many CPU minutes. This
script estimates it instead, by running the step on *fake* tensors
(``torch._subclasses.fake_tensor.FakeTensorMode``: shapes, dtypes and devices,
no data, no arithmetic) under a dispatch mode that follows every tensor storage
the step allocates and frees (:class:`LiveBytes`). The step is the trainer's:
``zero_grad``, forward under optional bf16 autocast, L1 loss, backward, Adam
step; ``checkpointing`` recomputes each level in the backward pass. The
estimate is the peak of the allocated bytes during the second step (the first
creates Adam's state), plus the parameters and inputs, which exist before it.

The estimator is validated first against real steps at small sizes on this CPU,
each in a fresh subprocess:

* ``tracked``: the same :class:`LiveBytes` accounting on real tensors, which must
  equal the fake estimate (the fake step allocates exactly what the real one does);
* ``RSS``: the growth of the process's peak resident memory over the first step
  (``resource.getrusage``; model, optimiser and inputs already built), which is
  what the operating system saw. It includes what the tracker cannot see (oneDNN
  scratch buffers, allocator slack), so it is expected a little above ``tracked``.

Autocast: fake CPU tensors follow the CPU autocast policy (convolutions in bf16;
batch norm, bilinear resampling, max-pooling, ReLU and additions keep their
input's dtype, so they run in bf16 too; data consistency runs in float32). CUDA's
autocast policy treats these operations the same way, so the bf16 numbers apply
to a GPU as allocated bytes (``torch.cuda.max_memory_allocated``). A GPU also
needs cuDNN workspace and allocator slack on top, and the CUDA context (about
0.5 GB), none of which is counted here: leave headroom.

Usage::

    python benchmarks/kiunet_memory.py [--size 320] [--batch-sizes 1 4] [--amp fp32 bf16]
        [--checkpointing off on] [--validate-sizes 32 64] [--validate-batch 1]
        [--threads 2] [--widths 84 168 336] [--gpu-gib 80] [--out results.json]

``--validate-sizes`` with no value skips the validation.

Measured on 2 shared AMD EPYC cores, torch 2.13, widths 84/168/336 (GiB). Validation,
first step at batch 1: the fake estimate equals the tracked bytes of the real step in
every case; RSS growth / estimate is 1.04 at 64 x 64 in fp32 (2.59 GiB estimated) and
1.33 in bf16 (1.31 GiB; oneDNN's bf16 buffers are outside PyTorch's allocator).
Estimates at 320 x 320, steady-state step::

    batch  checkpointing   fp32    bf16
    1      off             64.6    32.4
    1      on              59.9    30.0
    4      off            258.1   129.2
    4      on             239.2   119.7

Batch 4 does not fit on an 80 GB GPU in any configuration: the paper's batch needs
gradient accumulation (1 x 4). Per-level checkpointing saves only 7 %: the third
encoder level (the Ki-branch at 2560 x 2560 x 336, its fusion block included) holds
most of the activations and is recomputed whole in the backward pass.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import weakref
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

GIB = 2**30
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, REPO)


class LiveBytes(TorchDispatchMode):
    """Follows the bytes of every tensor storage that an operation creates while the mode is active.

    A storage is counted once (views and in-place results share it) from the
    operation that creates it until it is freed (a weak reference's callback).
    Storages created before the mode was entered (parameters, inputs) are not counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._live: Dict[int, Any] = {}

    def reset_peak(self) -> None:
        """Start a new peak from the current live bytes."""
        self.peak = self.current

    def _freed(self, key: int, nbytes: int, _ref: Any) -> None:
        if self._live.pop(key, None) is not None:
            self.current -= nbytes

    def _track(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = id(storage)  # storages keep their Python object while alive: the id is stable
        if key in self._live:
            return
        nbytes = storage.nbytes()
        self._live[key] = weakref.ref(storage, lambda ref, k=key, n=nbytes: self._freed(k, n, ref))
        self.current += nbytes
        self.peak = max(self.peak, self.current)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: D105
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._track(t)
        return out


def storage_bytes(tensors: Sequence[torch.Tensor]) -> int:
    """Bytes of the distinct storages of ``tensors``."""
    seen = {}
    for t in tensors:
        s = t.untyped_storage()
        seen[id(s)] = s.nbytes()
    return sum(seen.values())


def build(size: int, batch: int, widths: Sequence[int], checkpointing: bool):
    """Model (training mode), Adam, and one synthetic batch: zero-filled input, operator, target."""
    from baselines.kiunet import KiUNet
    from oucr.fft import complex_to_channels, fft2c
    from oucr.physics import SingleCoilMRI

    torch.manual_seed(0)
    model = KiUNet(widths=tuple(widths), checkpointing=checkpointing).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1.5e-4)
    image = torch.complex(torch.randn(batch, size, size), torch.randn(batch, size, size))
    mask = torch.zeros(batch, 1, size)
    mask[..., ::4] = 1  # 4x; the mask's pattern does not change the memory
    physics = SingleCoilMRI(fft2c(image) * mask, mask)
    zero_filled = physics.zero_filled()
    target = complex_to_channels(image)
    static = storage_bytes(list(model.parameters()) + list(model.buffers())
                           + [zero_filled, target, physics.measured_kspace, physics.mask])
    return model, optimiser, (zero_filled, physics, target), static


def training_step(model, optimiser, batch, amp: str) -> None:
    """One step as the trainer takes it: L1 loss, backward, Adam."""
    zero_filled, physics, target = batch
    optimiser.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
        out = model(zero_filled, physics)
    loss = torch.nn.functional.l1_loss(out.float(), target)
    loss.backward()
    optimiser.step()


def estimate(size: int, batch: int, amp: str, checkpointing: bool, widths: Sequence[int]) -> Dict[str, Any]:
    """Peak allocated bytes of a training step, from fake tensors (no data, no arithmetic).

    Returns:
        ``first_step_bytes``: peak growth over the first step (what the validation compares);
        ``peak_bytes``: parameters and inputs + peak of the second (steady-state) step;
        ``state_bytes``: parameters + Adam state.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        model, optimiser, data, static = build(size, batch, widths, checkpointing)
        with LiveBytes() as live:
            training_step(model, optimiser, data, amp)
            first = live.peak
            live.reset_peak()
            training_step(model, optimiser, data, amp)
            steady = live.peak
            adam = storage_bytes([t for s in optimiser.state.values() for t in s.values()
                                  if isinstance(t, torch.Tensor)])
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"first_step_bytes": first, "peak_bytes": static + steady, "state_bytes": params + adam}


def _maxrss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)  # KiB on Linux


def measure(size: int, batch: int, amp: str, checkpointing: bool, widths: Sequence[int]) -> Dict[str, Any]:
    """A real first training step on the CPU (call in a fresh process): RSS growth and tracked bytes."""
    import gc

    model, optimiser, data, _ = build(size, batch, widths, checkpointing)
    gc.collect()
    before = _maxrss_bytes()
    start = time.perf_counter()
    with LiveBytes() as live:
        training_step(model, optimiser, data, amp)
    seconds = time.perf_counter() - start
    return {"rss_bytes": _maxrss_bytes() - before, "tracked_bytes": live.peak, "seconds": seconds}


def measure_in_subprocess(size: int, batch: int, amp: str, checkpointing: bool, args: argparse.Namespace):
    """:func:`measure` in a fresh interpreter, so that earlier runs cannot hide its peak."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--size", str(size), "--batch-sizes", str(batch),
           "--amp", amp, "--checkpointing", "on" if checkpointing else "off", "--threads", str(args.threads),
           "--widths", *map(str, args.widths)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"measurement failed ({' '.join(cmd)}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _gib(n: float) -> str:
    return f"{n / GIB:.2f}"


def main(argv: Optional[List[str]] = None) -> int:
    """Validate the estimator at small sizes, then print the estimates at the full size."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    p.add_argument("--amp", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--checkpointing", nargs="+", default=["off", "on"], choices=["off", "on"])
    p.add_argument("--validate-sizes", type=int, nargs="*", default=[32, 64])
    p.add_argument("--validate-batch", type=int, default=1)
    p.add_argument("--widths", type=int, nargs=3, default=[84, 168, 336])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--gpu-gib", type=float, default=80.0, help="GPU memory the 'left' column subtracts from")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per real measurement")
    p.add_argument("--out", help="write the results as JSON")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    for s in args.validate_sizes + [args.size]:
        if s % 8:
            raise SystemExit(f"sizes must be multiples of 8 (the U-branch pools three times), got {s}")
    if args.child:
        print(json.dumps(measure(args.size, args.batch_sizes[0], args.amp[0], args.checkpointing[0] == "on",
                                 args.widths)))
        return 0

    widths = tuple(args.widths)
    results: Dict[str, List[Dict[str, Any]]] = {"validation": [], "estimates": []}
    if args.validate_sizes:
        print(f"# validation: first training step, widths {widths}, batch {args.validate_batch}, "
              f"{args.threads} threads (GiB)")
        print("| size | checkpointing | precision | fake estimate | tracked (real) | RSS growth (real) "
              "| RSS / estimate | step (s) |")
        print("|---:|---|---|---:|---:|---:|---:|---:|")
        for size in args.validate_sizes:
            for ckpt in (c == "on" for c in args.checkpointing):
                for amp in args.amp:
                    est = estimate(size, args.validate_batch, amp, ckpt, widths)["first_step_bytes"]
                    real = measure_in_subprocess(size, args.validate_batch, amp, ckpt, args)
                    row = {"size": size, "checkpointing": ckpt, "amp": amp, "estimate_bytes": est, **real}
                    results["validation"].append(row)
                    print(f"| {size} | {'on' if ckpt else 'off'} | {amp} | {_gib(est)} | {_gib(real['tracked_bytes'])} "
                          f"| {_gib(real['rss_bytes'])} | {real['rss_bytes'] / est:.3f} | {real['seconds']:.1f} |",
                          flush=True)
        print()
    print(f"# estimate: steady-state training step, {args.size} x {args.size}, widths {widths} (GiB; "
          f"parameters, Adam state, gradients and activations; 'left' = {args.gpu_gib:g} GiB minus the peak)")
    print(f"| batch | checkpointing | precision | peak | of which parameters + Adam | left on {args.gpu_gib:g} GiB |")
    print("|---:|---|---|---:|---:|---:|")
    for batch in args.batch_sizes:
        for ckpt in (c == "on" for c in args.checkpointing):
            for amp in args.amp:
                est = estimate(args.size, batch, amp, ckpt, widths)
                results["estimates"].append({"size": args.size, "batch": batch, "checkpointing": ckpt, "amp": amp,
                                             **est})
                print(f"| {batch} | {'on' if ckpt else 'off'} | {amp} | {_gib(est['peak_bytes'])} "
                      f"| {_gib(est['state_bytes'])} | {args.gpu_gib - est['peak_bytes'] / GIB:+.1f} |", flush=True)
    if args.out:
        from oucr.io import atomic_write_text

        atomic_write_text(args.out, json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
