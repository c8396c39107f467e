"""``oucr bench``: speed, memory and arithmetic rate of every method at one image size.

For each method of the config (each in a fresh process, so that peak memory is
its own) on random data of the requested size:

- ``train_slices_per_s``: slices per second of full training steps (forward,
  L1 loss, backward, Adam step) at the configured batch size;
- ``infer_ms_per_slice``: inference latency per slice (batch 1, no grad);
- ``peak_mem_mb``: peak memory of a training step above the process's state
  before it (CUDA: ``torch.cuda.max_memory_allocated``; CPU: growth of the
  maximum resident set size);
- ``train_gflop_per_step`` / ``train_gflops``: floating-point operations of one
  training step counted by ``torch.utils.flop_counter`` and the rate achieved
  (convolutions counted as direct convolutions, so a library using Winograd can
  exceed the machine's multiply-add peak; with checkpointing the recomputed
  forward pass is counted, it is work the step really does);
- ``peak_conv_gflops`` / ``peak_matmul_gflops``: the rate of one large 3 x 3
  convolution (the faster of the two memory layouts) and of one large matrix
  multiplication measured in the same run with the same threads and the same
  precision (``amp``) as the models, the practical ceiling to compare with;
- ``pct_of_conv_peak``: achieved training rate as a percentage of the conv peak;
- ``amp`` / ``checkpointing`` / ``compile`` / ``deterministic``: the settings the row
  was measured with (each method's training values unless overridden);
- ``first_step_s``: the first training step (memory allocation, and compilation
  with ``compile``): what ``torch.compile`` costs before it pays off;
- ``loader_slices_per_s``: what the training DataLoader delivers to the device at this
  size (workers and pinned memory as training would use them; the same for every row),
  and ``loader_headroom`` = loader rate / training rate: below 1 the device is starved;
- ``error``: why a method's measurement failed (its process died, e.g. out of memory,
  or overran ``--timeout``); the bench goes on with the next method.

CS is not a network: its row reports only the inference latency of
:func:`baselines.cs.reconstruct_slice` with the configured settings.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np
import pandas as pd
import torch

from oucr.config import load_config, training_config, with_overrides
from oucr.engine.runtime import device_description, place_model, select_device, set_threads
from oucr.io import atomic_path

log = logging.getLogger(__name__)

COLUMNS = [
    "method", "size", "batch_size", "params", "train_slices_per_s", "infer_ms_per_slice", "peak_mem_mb",
    "train_gflop_per_step", "train_gflops", "peak_conv_gflops", "peak_matmul_gflops", "pct_of_conv_peak",
    "amp", "checkpointing", "compile", "deterministic", "first_step_s", "loader_slices_per_s", "loader_workers",
    "loader_headroom", "device", "threads", "error",
]


def _maxrss_mb() -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 2**20


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, min_seconds: float, min_repeats: int) -> float:
    """Mean seconds per call over at least ``min_repeats`` calls and ``min_seconds``."""
    fn()  # warm-up
    _sync(device)
    n, t0 = 0, time.perf_counter()
    while n < min_repeats or time.perf_counter() - t0 < min_seconds:
        fn()
        n += 1
    _sync(device)
    return (time.perf_counter() - t0) / n


def measure_peaks(device: torch.device, min_seconds: float = 1.0, amp: str = "none") -> Dict[str, float]:
    """GFLOP/s of a 3 x 3 convolution (64 -> 64 channels, 4 x 64 x 128 x 128) and a 2048^2 matmul.

    The convolution is timed in both memory layouts (the models run channels-last)
    and the faster one is the reference peak. Both run under the models' autocast
    (``amp``), so a bf16 model is compared with a bf16 ceiling.
    """
    from oucr.engine.inference import autocast_context

    x = torch.randn(4, 64, 128, 128, device=device)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(device)
    conv_flop = 2 * 4 * 64 * 64 * 9 * 128 * 128
    best = float("inf")
    a = torch.randn(2048, 2048, device=device)
    with torch.no_grad(), autocast_context(device, amp):
        for layout in (torch.contiguous_format, torch.channels_last):
            xl, cl = x.to(memory_format=layout), conv.to(memory_format=layout)
            best = min(best, _timed(lambda: cl(xl), device, min_seconds, 3))
        t_mm = _timed(lambda: a @ a, device, min_seconds, 3)
    return {"peak_conv_gflops": conv_flop / best / 1e9, "peak_matmul_gflops": 2 * 2048**3 / t_mm / 1e9}


def _random_batch(batch: int, size: int, acceleration: int, device: torch.device):
    """Random complex images with the project's masks (fastMRI random, the paper's centre fractions)."""
    from oucr.fft import fft2c
    from oucr.masks import RandomMaskFunc, column_mask
    from oucr.physics import SingleCoilMRI

    g = torch.Generator().manual_seed(0)
    image = torch.randn(batch, size, size, generator=g, dtype=torch.complex64)
    func = RandomMaskFunc([0.32 / acceleration], [acceleration])
    masks = [column_mask(func, size, seed=(0, i))[0] for i in range(batch)]
    mask = torch.from_numpy(np.stack(masks).astype(np.float32)).reshape(batch, 1, size)
    physics = SingleCoilMRI(fft2c(image) * mask, mask).to(device)
    target = torch.view_as_real(image).permute(0, 3, 1, 2).contiguous().to(device)
    return physics.zero_filled(), physics, target


def bench_network(
    method: str, model_config: Mapping[str, Any], size: int, batch_size: int, device: torch.device,
    amp: str = "none", checkpointing: bool = False, min_seconds: float = 2.0, min_repeats: int = 2,
    compile: bool = False, deterministic: bool = True,
) -> Dict[str, Any]:
    """Measure one network (call in a fresh process for a clean CPU memory peak).

    With ``compile`` the training step's model is ``torch.compile``-d; ``compile_s`` is the
    time of the first (compiling) step, so that the speed-up can be judged end to end.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from oucr.engine.inference import autocast_context
    from oucr.engine.losses import per_sample_loss
    from oucr.engine.runtime import configure_determinism
    from oucr.models.base import count_parameters
    from oucr.models.registry import build_model

    configure_determinism(deterministic)
    overrides = {"checkpointing": True} if checkpointing else {}
    model = place_model(build_model(method, model_config, **overrides), device)
    step_model = torch.compile(model) if compile else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    image, physics, target = _random_batch(batch_size, size, 4, device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast_context(device, amp):
            out = step_model(image, physics)
        loss = per_sample_loss("l1_magnitude", out.float(), target).mean()
        loss.backward()
        opt.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = _maxrss_mb()
    t_first = time.perf_counter()
    step()  # first step allocates Adam's state (part of the training footprint), and compiles
    _sync(device)
    first_step_s = time.perf_counter() - t_first
    peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20 if device.type == "cuda" else _maxrss_mb() - base
    if compile:  # the compiled graph hides the operations from the counter: count them on the plain model
        step_model, saved = model, step_model
    with FlopCounterMode(display=False) as counter:
        step()
    flop = counter.get_total_flops()
    if compile:
        step_model = saved
    t_step = _timed(step, device, min_seconds, min_repeats)

    model.eval()
    img1, phys1, _ = _random_batch(1, size, 4, device)
    with torch.no_grad(), autocast_context(device, amp):
        t_inf = _timed(lambda: model(img1, phys1), device, min_seconds, min_repeats)
    return {
        "method": method,
        "params": count_parameters(model),
        "train_slices_per_s": batch_size / t_step,
        "infer_ms_per_slice": 1e3 * t_inf,
        "peak_mem_mb": peak,
        "train_gflop_per_step": flop / 1e9,
        "train_gflops": flop / t_step / 1e9,
        "first_step_s": first_step_s,
        "compile": bool(compile),
        "deterministic": bool(deterministic),
    }


def bench_cs(cs_config: Mapping[str, Any], size: int, acceleration: int = 4, repeats: int = 2) -> Dict[str, Any]:
    """Inference latency of the CS baseline on one slice."""
    from baselines.cs import reconstruct_slice

    _, physics, _ = _random_batch(1, size, acceleration, torch.device("cpu"))
    k = physics.measured_kspace[0].numpy()
    m = physics.mask[0, 0].numpy()
    kwargs = {k_: v for k_, v in cs_config.items() if k_ in ("max_iter", "regulariser")}
    lamda = float(cs_config.get("bench_lambda", 0.01))
    reconstruct_slice(k, m, lamda, **kwargs)
    t0 = time.perf_counter()
    for _ in range(repeats):
        reconstruct_slice(k, m, lamda, **kwargs)
    return {"method": "CS", "infer_ms_per_slice": 1e3 * (time.perf_counter() - t0) / repeats}


def bench_loader(size: int, batch_size: int, device: torch.device, num_workers: Optional[int] = None,
                 min_seconds: float = 2.0, volumes: int = 4, slices: int = 8) -> Dict[str, Any]:
    """Slices per second the training DataLoader delivers to ``device`` at ``size`` x ``size``.

    A temporary prepared store of random volumes is read exactly as training reads a
    real one (HDF5 per volume, a fresh mask per slice, normalisation, collation, pinned
    memory and workers as :func:`oucr.engine.runtime.loader_settings` chooses for the
    device), so a GPU that trains faster than this is starved.
    """
    import tempfile

    from oucr.data.dataset import SliceDataset
    from oucr.data.store import PreparedVolume, write_store
    from oucr.engine.inference import batch_to_device
    from oucr.engine.runtime import loader_settings
    from oucr.masks import RandomMaskFunc

    settings = loader_settings(device, num_workers)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="oucr-loader-") as tmp:
        vols = [PreparedVolume(f"v{i}", f"s{i}", (rng.standard_normal((slices, size, size))
                                                  + 1j * rng.standard_normal((slices, size, size))),
                               "random", "magnitude", np.arange(slices), split="train") for i in range(volumes)]
        write_store(tmp, vols)
        data = SliceDataset(tmp, "train", RandomMaskFunc([0.08], [4]), seed=0)
        loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True, **settings)
        n, t0, epoch = 0, time.perf_counter(), 0
        while time.perf_counter() - t0 < min_seconds or n == 0:
            data.set_epoch(epoch)
            for batch in loader:
                batch_to_device(batch, device)
                n += batch["image"].shape[0]
            epoch += 1
        _sync(device)
        rate = n / (time.perf_counter() - t0)
        data.close()
    return {"loader_slices_per_s": rate, "loader_workers": settings["num_workers"]}


def _measure_network(**kwargs: Any) -> Dict[str, Any]:
    return bench_network(**{**kwargs, "device": torch.device(kwargs["device"])})


def _worker(queue: "mp.Queue", fn: Callable[..., Dict[str, Any]], kwargs: Dict[str, Any],
            threads: Optional[int]) -> None:
    try:
        set_threads(threads)
        queue.put(fn(**kwargs))
    except Exception as err:  # report, don't hang the parent
        queue.put({"method": kwargs.get("method", "CS"), "error": f"{type(err).__name__}: {err}"})


def _death(exitcode: Optional[int]) -> str:
    """Why a worker ended without a result, in words."""
    import signal

    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if name == "SIGKILL" else ""
        return f"the measuring process was killed by {name}{hint}"
    return f"the measuring process exited with status {exitcode} without a result"


def in_fresh_process(fn: Callable[..., Dict[str, Any]], kwargs: Dict[str, Any], threads: Optional[int] = None,
                     timeout: Optional[float] = None) -> Dict[str, Any]:
    """Run one measurement ``fn(**kwargs)`` (a module-level function) in a fresh process.

    A process that dies (out of memory, a signal) or overruns ``timeout`` seconds gives a row
    ``{"method", "error"}`` with the reason: the parent never blocks on a dead child, it polls
    the result queue while the child lives.
    """
    import queue as queue_module

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(results, fn, kwargs, threads))
    proc.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    method = kwargs.get("method", "CS")
    try:
        while True:
            try:
                return results.get(timeout=0.5)
            except queue_module.Empty:
                pass
            if not proc.is_alive():
                try:  # the result may have arrived just before the process ended
                    return results.get(timeout=0.5)
                except queue_module.Empty:
                    return {"method": method, "error": _death(proc.exitcode)}
            if deadline is not None and time.monotonic() > deadline:
                proc.kill()
                return {"method": method, "error": f"no result within {timeout:g} s (killed)"}
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()


def run_bench(
    config: Mapping[str, Any], methods: List[str], size: int, device_name: str = "auto",
    threads: Optional[int] = None, batch_size: Optional[int] = None, amp: Optional[str] = None,
    checkpointing: Optional[bool] = None, min_seconds: float = 2.0, compile: Optional[bool] = None,
    deterministic: Optional[bool] = None, timeout: Optional[float] = None, loader: bool = True,
) -> pd.DataFrame:
    """Benchmark ``methods`` at ``size`` x ``size``; one row per method (columns :data:`COLUMNS`).

    Settings left as None come from each method's training section (``training.methods``
    overrides included). A method whose measuring process dies (out of memory, a signal)
    or overruns ``timeout`` seconds gets a row with the reason in ``error``; the others go on.
    """
    set_threads(threads)
    device = select_device(device_name)
    base = training_config(config)
    peaks = measure_peaks(device, amp=amp or base.amp)
    log.info("peaks on %s (amp %s): conv %.1f GFLOP/s, matmul %.1f GFLOP/s", device_description(device),
             amp or base.amp, peaks["peak_conv_gflops"], peaks["peak_matmul_gflops"])
    feed = bench_loader(size, batch_size or base.batch_size, device, base.num_workers, min_seconds) if loader else {}
    rows = []
    for method in methods:
        t = training_config(config, method if method != "CS" else None)
        settings = {"batch_size": batch_size or t.batch_size, "amp": amp or t.amp,
                    "checkpointing": t.checkpointing if checkpointing is None else checkpointing,
                    "compile": t.compile if compile is None else compile,
                    "deterministic": t.deterministic if deterministic is None else deterministic}
        log.info("benchmarking %s at %d x %d (%s)", method, size, size, settings)
        if method == "CS":
            row = in_fresh_process(bench_cs, {"cs_config": dict(config.get("cs") or {}), "size": size}, threads, timeout)
        else:
            row = in_fresh_process(_measure_network, {
                "method": method, "model_config": dict(config.get("models") or {}), "size": size,
                "device": str(device), "min_seconds": min_seconds, **settings,
            }, threads, timeout)
        if "error" in row:
            log.error("%s failed: %s", method, row["error"])
        row.update({"size": size, **peaks, **feed, "device": device_description(device),
                    "threads": torch.get_num_threads(),
                    **({k: v for k, v in settings.items() if k not in row} if method != "CS" else {})})
        if "train_gflops" in row:
            row["pct_of_conv_peak"] = 100.0 * row["train_gflops"] / peaks["peak_conv_gflops"]
        if "train_slices_per_s" in row and feed:
            row["loader_headroom"] = feed["loader_slices_per_s"] / row["train_slices_per_s"]
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.reindex(columns=COLUMNS + [c for c in frame.columns if c not in COLUMNS])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr bench``."""
    parser.add_argument("--config", required=True, help="YAML config (its models and training sections)")
    parser.add_argument("--size", type=int, default=64, help="image height and width")
    parser.add_argument("--methods", nargs="+", help="methods to measure (default: the config's methods)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. models.OUCR.iterations=3 (repeatable)")
    parser.add_argument("--batch-size", type=int, help="slices per training step (default: each method's "
                                                       "training.batch_size)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--amp", choices=["none", "bf16"], help="precision (default: each method's training.amp)")
    parser.add_argument("--checkpointing", action=argparse.BooleanOptionalAction, default=None,
                        help="activation checkpointing (default: each method's training.checkpointing)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile the model (default: training.compile); first_step_s includes compiling")
    parser.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=None,
                        help="deterministic kernels (default: training.deterministic)")
    parser.add_argument("--timeout", type=float, help="give up on a method after this many seconds (row marked failed)")
    parser.add_argument("--no-loader", dest="loader", action="store_false",
                        help="skip the DataLoader throughput measurement")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="time each measurement at least this long")
    parser.add_argument("--out", type=Path, help="CSV file (default: standard output)")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr bench``."""
    config = with_overrides(load_config(args.config), args.overrides)
    methods = args.methods or list(config.get("methods") or [])
    frame = run_bench(config, methods, args.size, args.device, args.threads, args.batch_size,
                      args.amp, args.checkpointing, args.min_seconds, args.compile, args.deterministic,
                      args.timeout, args.loader)
    if args.out:
        with atomic_path(args.out) as tmp:
            frame.to_csv(tmp, index=False)
    else:
        frame.to_csv(sys.stdout, index=False, float_format="%.4g")
    return 0
