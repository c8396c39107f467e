"""Benchmark: peak memory and time of one OUCR training step on the CPU, with and without checkpointing.

One training step is forward, L1 loss, backward and an Adam step, for the full
OUCR at the paper's widths (OC 64, UC 128, RM 64 features, J = 5, depth 2), batch
1, at 320 x 320 (fastMRI's recon size). Configurations: activation checkpointing
per iteration off/on, float32 or bf16 autocast. Each measurement runs in a fresh
subprocess, so that one configuration's allocations cannot hide another's:

* peak memory = the process's max RSS (``resource.getrusage``) after the step
  minus the max RSS before it (model, optimiser and inputs already built);
* time = wall-clock time of the first step (cold: includes oneDNN primitive
  creation) and of the second (warm; ``--steps``).

Memory first: at 320 x 320 the OC hidden state is 1280 x 1280 x 64 floats,
420 MB per tensor, and about ten such tensors are saved per iteration for the
backward pass, so without checkpointing a float32 step needs over 20 GB. The
script therefore first measures every configuration at small probe sizes (96 and
160 by default), fits ``peak = a + b * H * W`` and ``warm time = c + d * H * W``
(activations and convolution work both scale with the pixel count; the weights
are constant), and runs the full size only where the extrapolated peak fits the
budget (``--budget-gib``, default 16 GiB, capped at 80 % of the memory available
now). Configurations that do not fit are reported extrapolated, and said so.

Usage::

    python benchmarks/oucr_memory.py [--size 320] [--iterations 5] [--threads 2]
        [--amp fp32 bf16] [--checkpointing off on] [--probe-sizes 96 160] [--steps 2]
        [--budget-gib 16] [--out results.json]

The load average (``os.getloadavg``) is recorded before and after each run:
times on a shared machine are only comparable within one invocation.

Measured on 2 shared AMD EPYC cores (AVX-512 with bf16), torch 2.13, 2 threads,
load average 1.5 - 4 (other jobs running), 320 x 320, J = 5, 1,191,560 parameters.
A step is 8.44 TFLOP (forward 2.85 TFLOP, ``torch.utils.flop_counter``), 11.3 with
checkpointing (one more forward)::

    checkpointing  precision  peak RSS  warm step
    off            fp32       14.3 GiB  115 s
    off            bf16        8.3 GiB   72 s
    on             fp32        4.7 GiB  147 s
    on             bf16        2.8 GiB  101 s
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

GIB = 2**30


def _maxrss_bytes() -> int:
    # ru_maxrss is in KiB on Linux, bytes on macOS
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


def _available_bytes() -> Optional[int]:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def child(size: int, iterations: int, checkpointing: bool, amp: str, steps: int, threads: int) -> Dict[str, Any]:
    """One configuration in this (fresh) process; returns the measurement."""
    import gc

    import torch

    from oucr.fft import fft2c
    from oucr.masks import RandomMaskFunc
    from oucr.models.base import count_parameters
    from oucr.models.oucr import OUCR
    from oucr.physics import SingleCoilMRI

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = OUCR(iterations=iterations, checkpointing=checkpointing)  # paper widths
    optimiser = torch.optim.Adam(model.parameters(), lr=1.5e-4)
    g = torch.Generator().manual_seed(0)
    image = torch.complex(torch.randn(1, size, size, generator=g), torch.randn(1, size, size, generator=g))
    mask, _ = RandomMaskFunc([0.08], [4])((1, size, size, 2), seed=0)
    mask = mask.reshape(1, 1, size).float()
    physics = SingleCoilMRI(fft2c(image) * mask, mask)
    zero_filled = physics.zero_filled()
    target = torch.stack([image.real, image.imag], dim=1)
    gc.collect()

    def step() -> float:
        start = time.perf_counter()
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
            out = model(zero_filled, physics)
        loss = torch.nn.functional.l1_loss(out, target)
        loss.backward()
        optimiser.step()
        return time.perf_counter() - start

    baseline = _maxrss_bytes()
    load_before = os.getloadavg()[0]
    times = [step()]
    peak = _maxrss_bytes() - baseline
    for _ in range(steps - 1):
        times.append(step())
    return {
        "size": size, "iterations": iterations, "checkpointing": checkpointing, "amp": amp, "threads": threads,
        "params": count_parameters(model), "baseline_gib": baseline / GIB, "peak_gib": peak / GIB,
        "first_step_s": times[0], "warm_step_s": times[-1] if steps > 1 else None,
        "load_before": load_before, "load_after": os.getloadavg()[0],
    }


def run_child(size: int, args: argparse.Namespace, checkpointing: bool, amp: str, steps: int) -> Dict[str, Any]:
    """Measure one configuration in a fresh subprocess."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--size", str(size), "--iterations",
           str(args.iterations), "--threads", str(args.threads), "--steps", str(steps), "--amp", amp,
           "--checkpointing", "on" if checkpointing else "off"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"measurement failed ({' '.join(cmd)}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _s(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}"


def fit_linear(xs: List[float], ys: List[float]):
    """Least-squares ``y = a + b x``; returns ``(a, b)``."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return my - b * mx, b


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--amp", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--checkpointing", nargs="+", default=["off", "on"], choices=["off", "on"])
    p.add_argument("--probe-sizes", type=int, nargs="+", default=[96, 160])
    p.add_argument("--steps", type=int, default=2, help="steps per full-size run (the last is the warm time)")
    p.add_argument("--budget-gib", type=float, default=16.0)
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per measurement")
    p.add_argument("--out", help="write the results as JSON")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        result = child(args.size, args.iterations, args.checkpointing[0] == "on", args.amp[0], args.steps,
                       args.threads)
        print(json.dumps(result))
        return 0

    for s in args.probe_sizes + [args.size]:
        if s % 4:
            raise SystemExit(f"sizes must be multiples of 4 (the UC branch pools twice), got {s}")
    available = _available_bytes()
    budget = args.budget_gib * GIB
    if available is not None:
        budget = min(budget, 0.8 * available)
    print(f"# OUCR training step, paper widths, J={args.iterations}, batch 1, {args.size}x{args.size}, "
          f"{args.threads} threads; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"budget {budget / GIB:.1f} GiB", flush=True)
    rows = []
    for ckpt in (c == "on" for c in args.checkpointing):
        for amp in args.amp:
            probes = [run_child(s, args, ckpt, amp, steps=2) for s in args.probe_sizes]
            for r in probes:
                print(f"  probe {r['size']:>4}: ckpt={'on' if ckpt else 'off'} {amp}: peak {r['peak_gib']:.2f} GiB, "
                      f"first step {r['first_step_s']:.1f} s, warm step {r['warm_step_s']:.1f} s "
                      f"(load {r['load_before']:.1f})", flush=True)
            pixels = [float(r["size"] ** 2) for r in probes]
            a_m, b_m = fit_linear(pixels, [r["peak_gib"] for r in probes])
            a_t, b_t = fit_linear(pixels, [r["warm_step_s"] for r in probes])
            predicted_gib = a_m + b_m * args.size**2
            predicted_s = a_t + b_t * args.size**2
            row: Dict[str, Any] = {"checkpointing": ckpt, "amp": amp, "size": args.size,
                                   "predicted_peak_gib": predicted_gib, "predicted_warm_step_s": predicted_s,
                                   "probes": probes}
            if predicted_gib * GIB <= budget:
                full = run_child(args.size, args, ckpt, amp, steps=args.steps)
                row.update(measured=True, peak_gib=full["peak_gib"], first_step_s=full["first_step_s"],
                           warm_step_s=full["warm_step_s"], load_before=full["load_before"],
                           load_after=full["load_after"])
            else:
                row.update(measured=False, peak_gib=predicted_gib, first_step_s=None, warm_step_s=predicted_s,
                           load_before=probes[-1]["load_before"], load_after=probes[-1]["load_after"])
            rows.append(row)
            how = "measured" if row["measured"] else f"EXTRAPOLATED from {args.probe_sizes} (over budget)"
            print(f"{args.size}x{args.size} ckpt={'on' if ckpt else 'off'} {amp}: peak {row['peak_gib']:.2f} GiB, "
                  f"first step {_s(row['first_step_s'])} s, warm step {_s(row['warm_step_s'])} s "
                  f"[{how}; predicted {predicted_gib:.2f} GiB, "
                  f"{predicted_s:.1f} s; load {row['load_before']:.1f} -> {row['load_after']:.1f}]", flush=True)
    print("\n| checkpointing | precision | peak memory (GiB) | first step (s) | warm step (s) | how | load |")
    print("|---|---|---:|---:|---:|---|---|")
    for r in rows:
        print(f"| {'on' if r['checkpointing'] else 'off'} | {r['amp']} | {r['peak_gib']:.2f} | {_s(r['first_step_s'])} "
              f"| {_s(r['warm_step_s'])} | {'measured' if r['measured'] else 'extrapolated'} | "
              f"{r['load_before']:.1f} -> {r['load_after']:.1f} |")
    if args.out:
        from oucr.io import atomic_write_text

        atomic_write_text(args.out, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
