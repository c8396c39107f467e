"""Device choice, thread count, seeds and provenance shared by the engine commands."""

from __future__ import annotations

import os
import platform
import random
from typing import Dict, Optional

import numpy as np
import torch

from oucr.errors import ConfigError
from oucr.seeding import derive_seed  # noqa: F401  (re-exported for the engine)


def select_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """The device to run on: CUDA, then Apple MPS, then CPU, unless one is named.

    Args:
        preference: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        local_rank: this process's rank on the machine in a multi-process training; with
            ``auto`` or ``cuda`` it picks ``cuda:<local_rank>`` (one GPU per process, among the
            GPUs visible to the job).

    Raises:
        ConfigError: if the named device is not available.
    """
    if preference in ("auto", "cuda") and torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"process {local_rank} needs a GPU of its own, but only {torch.cuda.device_count()} are visible"
            )
        return torch.device("cuda", local_rank)
    if preference == "auto":
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preference)
    except RuntimeError as err:
        raise ConfigError(f"unknown device {preference!r}: {err}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {preference!r} was asked for, but CUDA is not available here")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"device {preference!r} was asked for, but Apple MPS is not available here")
    return device


def place_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a model to ``device`` in channels-last memory layout.

    Channels-last convolutions measured 10-45 % faster per training step on the
    CPU for every network here (and are what GPU tensor cores prefer); the
    results do not depend on the layout beyond floating-point rounding.
    """
    return model.to(device=device, memory_format=torch.channels_last)


def set_threads(threads: Optional[int]) -> int:
    """Use ``threads`` CPU threads (the caller's share, e.g. Snakemake's ``threads``).

    Returns:
        the thread count in effect.
    """
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
    return torch.get_num_threads()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


#: what each ``training.deterministic`` mode promises (docs/gpus.md measures it on a GPU)
DETERMINISM = {
    True: "bit-identical reruns on the same machine, software and process count (deterministic kernels, "
          "cuDNN autotuning off; an operation without a deterministic kernel warns)",
    False: "the fastest kernels (cuDNN autotuning on, non-deterministic reductions allowed): reruns agree "
           "only to floating-point tolerance",
}


def configure_determinism(deterministic: bool) -> None:
    """Choose deterministic or fastest kernels (see :data:`DETERMINISM`).

    Must run before the first CUDA operation: cuBLAS reads ``CUBLAS_WORKSPACE_CONFIG``
    when it starts, and deterministic matrix products need it set.
    """
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(bool(deterministic), warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = bool(deterministic)


def rng_state() -> Dict[str, object]:
    """Every random-number generator state (Python, NumPy, torch CPU and each CUDA device), for a checkpoint.

    Tensors are CPU byte tensors, as the setters expect, whatever device trains.
    """
    state: Dict[str, object] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def _byte_tensor(value: object) -> torch.Tensor:
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    return tensor.detach().to(device="cpu", dtype=torch.uint8)


def set_rng_state(state: Dict[str, object]) -> None:
    """Restore the generators saved by :func:`rng_state`.

    The CUDA states are restored when this process has as many CUDA devices (a resume
    on the CPU of a GPU checkpoint keeps the CPU generators only).
    """
    random.setstate(state["python"])  # type: ignore[arg-type]
    np.random.set_state(state["numpy"])  # type: ignore[arg-type]
    torch.set_rng_state(_byte_tensor(state["torch"]))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():  # type: ignore[arg-type]
        torch.cuda.set_rng_state_all([_byte_tensor(s) for s in cuda])  # type: ignore[union-attr]


def loader_settings(device: torch.device, num_workers: Optional[int], nproc: int = 1) -> Dict[str, object]:
    """DataLoader keyword arguments that keep the device fed.

    On CUDA: ``num_workers`` defaults to the CPUs this process may use divided among
    the training processes (at most 8), pinned memory and persistent workers. On the
    CPU: no workers by default (the demo's parallelism is Snakemake's jobs, one
    thread each), no pinning.
    """
    if num_workers is None:
        if device.type == "cuda":
            cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            num_workers = max(0, min(8, cpus // max(nproc, 1) - 1))
        else:
            num_workers = 0
    return {
        "num_workers": int(num_workers),
        "pin_memory": device.type == "cuda",
        "persistent_workers": int(num_workers) > 0,
    }


def device_description(device: torch.device) -> str:
    """Human-readable device name, e.g. ``cuda:NVIDIA H100`` or ``cpu:x86_64 (2 threads)``."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "mps:Apple"
    return f"cpu:{platform.machine()} ({torch.get_num_threads()} threads)"


def gpus_wanted(device: str, processes: int = 1, granted: Optional[int] = None) -> int:
    """How many GPUs a job on ``device`` with ``processes`` processes must claim (0 off CUDA).

    Args:
        device: the configured device; ``auto`` and ``cuda`` claim, a named ``cuda:N`` is the
            caller's explicit choice and claims nothing, ``cpu``/``mps`` claim nothing.
        processes: training processes (one GPU each).
        granted: GPUs the scheduler gave the job (Snakemake's ``gpu`` resource), if known.

    Never starts CUDA (``torch.cuda.is_available()`` would, and CUDA reads
    ``CUDA_VISIBLE_DEVICES`` once, when it starts: the claim must come first). On a
    CUDA build without a GPU the claim itself finds no GPU and does nothing.
    """
    if granted is not None:
        return int(granted)
    if device in ("auto", "cuda") and torch.backends.cuda.is_built():
        return int(processes)
    return 0


def device_for_grant(device: str, granted: Optional[int]) -> str:
    """The device a job runs on when the scheduler granted it ``granted`` GPUs.

    A job granted no GPU runs on the CPU even where CUDA exists: Snakemake counts GPUs
    only through the ``gpu`` resource, so a job it did not give one must not take one.
    """
    if granted == 0 and device in ("auto", "cuda"):
        return "cpu"
    return device
