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
- ``amp`` / ``checkpointing``: the precision and activation checkpointing the
  row was measured with (the config's training values unless overridden).

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
from typing import Any, Dict, List, Mapping, Optional

import pandas as pd
import torch

from oucr.config import load_config, training_config, with_overrides
from oucr.engine.runtime import device_description, place_model, select_device, set_threads
from oucr.io import atomic_path

log = logging.getLogger(__name__)

COLUMNS = [
    "method", "size", "batch_size", "params", "train_slices_per_s", "infer_ms_per_slice", "peak_mem_mb",
    "train_gflop_per_step", "train_gflops", "peak_conv_gflops", "peak_matmul_gflops", "pct_of_conv_peak",
    "amp", "checkpointing", "device", "threads",
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
    from oucr.fft import fft2c
    from oucr.physics import SingleCoilMRI

    g = torch.Generator().manual_seed(0)
    image = torch.randn(batch, size, size, generator=g, dtype=torch.complex64)
    mask = (torch.rand(batch, 1, size, generator=g) < 1.0 / acceleration).float()
    mask[..., size // 2 - 2 : size // 2 + 2] = 1
    physics = SingleCoilMRI(fft2c(image) * mask, mask).to(device)
    target = torch.view_as_real(image).permute(0, 3, 1, 2).contiguous().to(device)
    return physics.zero_filled(), physics, target


def bench_network(
    method: str, model_config: Mapping[str, Any], size: int, batch_size: int, device: torch.device,
    amp: str = "none", checkpointing: bool = False, min_seconds: float = 2.0, min_repeats: int = 2,
) -> Dict[str, Any]:
    """Measure one network (call in a fresh process for a clean CPU memory peak)."""
    from torch.utils.flop_counter import FlopCounterMode

    from oucr.engine.inference import autocast_context
    from oucr.models.base import count_parameters
    from oucr.models.registry import build_model

    overrides = {"checkpointing": True} if checkpointing else {}
    model = place_model(build_model(method, model_config, **overrides), device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    image, physics, target = _random_batch(batch_size, size, 4, device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast_context(device, amp):
            out = model(image, physics)
        loss = torch.nn.functional.l1_loss(out.float(), target)
        loss.backward()
        opt.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = _maxrss_mb()
    step()  # first step allocates Adam's state, part of the training footprint
    _sync(device)
    peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20 if device.type == "cuda" else _maxrss_mb() - base
    with FlopCounterMode(display=False) as counter:
        step()
    flop = counter.get_total_flops()
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


def _worker(queue: "mp.Queue", kind: str, kwargs: Dict[str, Any], threads: Optional[int]) -> None:
    try:
        set_threads(threads)
        if kind == "cs":
            queue.put(bench_cs(**kwargs))
        else:
            kwargs = dict(kwargs)
            kwargs["device"] = torch.device(kwargs["device"])
            queue.put(bench_network(**kwargs))
    except Exception as err:  # report, don't hang the parent
        queue.put({"method": kwargs.get("method", kind), "error": f"{type(err).__name__}: {err}"})


def _in_fresh_process(kind: str, kwargs: Dict[str, Any], threads: Optional[int]) -> Dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(queue, kind, kwargs, threads))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def run_bench(
    config: Mapping[str, Any], methods: List[str], size: int, device_name: str = "auto",
    threads: Optional[int] = None, batch_size: Optional[int] = None, amp: Optional[str] = None,
    checkpointing: Optional[bool] = None, min_seconds: float = 2.0,
) -> pd.DataFrame:
    """Benchmark ``methods`` at ``size`` x ``size``; one row per method (columns :data:`COLUMNS`)."""
    training = training_config(config)
    batch_size = batch_size or training.batch_size
    amp = amp or training.amp
    checkpointing = training.checkpointing if checkpointing is None else checkpointing
    set_threads(threads)
    device = select_device(device_name)
    peaks = measure_peaks(device, amp=amp)
    log.info("peaks on %s (amp %s): conv %.1f GFLOP/s, matmul %.1f GFLOP/s", device_description(device), amp,
             peaks["peak_conv_gflops"], peaks["peak_matmul_gflops"])
    rows = []
    for method in methods:
        log.info("benchmarking %s at %d x %d", method, size, size)
        if method == "CS":
            row = _in_fresh_process("cs", {"cs_config": dict(config.get("cs") or {}), "size": size}, threads)
        else:
            row = _in_fresh_process("net", {
                "method": method, "model_config": dict(config.get("models") or {}), "size": size,
                "batch_size": batch_size, "device": str(device), "amp": amp,
                "checkpointing": checkpointing, "min_seconds": min_seconds,
            }, threads)
        if "error" in row:
            log.error("%s failed: %s", method, row["error"])
        row.update({"size": size, "batch_size": batch_size, **peaks, "amp": amp,
                    "checkpointing": checkpointing if method != "CS" else None,
                    "device": device_description(device), "threads": torch.get_num_threads()})
        if "train_gflops" in row:
            row["pct_of_conv_peak"] = 100.0 * row["train_gflops"] / peaks["peak_conv_gflops"]
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.reindex(columns=COLUMNS + [c for c in frame.columns if c not in COLUMNS])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr bench``."""
    parser.add_argument("--config", required=True, help="YAML config (its models and training sections)")
    parser.add_argument("--size", type=int, default=64, help="image height and width")
    parser.add_argument("--methods", nargs="+", help="methods to measure (default: the config's methods)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--batch-size", type=int, help="default: training.batch_size")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", choices=["none", "bf16"])
    parser.add_argument("--checkpointing", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--min-seconds", type=float, default=2.0, help="time each measurement at least this long")
    parser.add_argument("--out", type=Path, help="CSV file (default: standard output)")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr bench``."""
    config = with_overrides(load_config(args.config), args.overrides)
    methods = args.methods or list(config.get("methods") or [])
    frame = run_bench(config, methods, args.size, args.device, args.threads, args.batch_size,
                      args.amp, args.checkpointing, args.min_seconds)
    if args.out:
        with atomic_path(args.out) as tmp:
            frame.to_csv(tmp, index=False)
    else:
        frame.to_csv(sys.stdout, index=False, float_format="%.4g")
    return 0
