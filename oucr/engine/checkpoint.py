"""The trainer's files: resumable checkpoints (``last.pt``) and trained models (``model.pt``).

Both are read with :func:`oucr.io.read_torch_file`, the project's one torch-file
reader, which always loads onto the CPU: tensors reach the training device
through ``load_state_dict`` (the model's and the optimiser's), and the saved
random-number-generator states stay the CPU byte tensors that
``torch.set_rng_state`` and ``torch.cuda.set_rng_state_all`` expect. (Loading a
checkpoint with ``map_location`` set to a GPU turned those states into CUDA
tensors, and ``torch.set_rng_state`` refused them on every resume.)

``model.pt`` keys: ``method``, ``run_name``, ``model_kwargs``, ``state_dict`` (CPU
tensors), ``epoch`` (best validation epoch, 1-based), ``val_psnr``, ``params``,
``dataset``, ``acceleration``, ``replicate``, ``seed`` (the initialisation seed),
``data_seed``, ``fingerprint``, ``training`` (every training setting, among them
``amp``: the precision the best epoch was chosen in and the test reconstruction
uses), ``device``, ``nproc``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch

from oucr.errors import DataError
from oucr.io import atomic_path, read_torch_file

CHECKPOINT_NAME = "last.pt"
CHECKPOINT_KEYS = ("fingerprint", "epoch", "model", "optimizer", "scheduler", "rng", "history", "best_state",
                   "best_psnr", "best_epoch")
MODEL_KEYS = ("method", "model_kwargs", "state_dict")

PathLike = Union[str, Path]


def save_checkpoint(path: PathLike, payload: Mapping[str, Any]) -> None:
    """Write a training checkpoint atomically (a crash mid-write leaves the previous one)."""
    missing = [k for k in CHECKPOINT_KEYS if k not in payload]
    if missing:
        raise ValueError(f"a training checkpoint needs the keys {', '.join(missing)}")
    with atomic_path(path) as tmp:
        torch.save(dict(payload), tmp)


def read_checkpoint(path: PathLike) -> Dict[str, Any]:
    """Read a training checkpoint on the CPU.

    Raises:
        DataError: naming the file, if it is unreadable (truncated, foreign) or lacks the
            trainer's keys, with the way to start afresh.
    """
    path = Path(path)
    afresh = f"; delete {path} to start this training afresh"
    try:
        blob = read_torch_file(path, "training checkpoint")
    except DataError as err:
        raise DataError(path, err.problem + afresh) from err
    if not isinstance(blob, dict) or any(k not in blob for k in CHECKPOINT_KEYS):
        raise DataError(path, "not a training checkpoint of `oucr train` (keys missing)" + afresh)
    return blob


def restore_checkpoint(
    blob: Mapping[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
) -> Dict[str, Any]:
    """Put a checkpoint's state into the model, optimiser, scheduler and random generators.

    The model and the optimiser may live on any device (CUDA, ``meta``): ``load_state_dict``
    copies the CPU tensors onto their parameters' devices.

    Returns:
        ``{"history", "best_state", "best_psnr", "best_epoch", "start_epoch"}``.
    """
    from oucr.engine.runtime import set_rng_state

    model.load_state_dict(blob["model"])
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    set_rng_state(blob["rng"])
    return {
        "history": list(blob["history"]),
        "best_state": blob["best_state"],
        "best_psnr": float(blob["best_psnr"]),
        "best_epoch": int(blob["best_epoch"]),
        "start_epoch": int(blob["epoch"]) + 1,
    }


def write_model_file(path: PathLike, payload: Mapping[str, Any]) -> None:
    """Write ``model.pt`` atomically; ``state_dict`` tensors are stored on the CPU."""
    missing = [k for k in MODEL_KEYS if k not in payload]
    if missing:
        raise ValueError(f"a model file needs the keys {', '.join(missing)}")
    blob = dict(payload)
    blob["state_dict"] = {k: v.detach().cpu() for k, v in payload["state_dict"].items()}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def read_model_file(path: PathLike) -> Dict[str, Any]:
    """Read ``model.pt`` of ``oucr train`` on the CPU.

    Raises:
        DataError: if the file is missing, unreadable or not a model file of this project.
    """
    blob = read_torch_file(path, "trained model file")
    if not isinstance(blob, dict) or any(k not in blob for k in MODEL_KEYS):
        raise DataError(path, "not a model file written by `oucr train` (keys method, model_kwargs, state_dict)")
    return blob


def load_trained_model(path: PathLike, device: Optional[torch.device] = None) -> Tuple[torch.nn.Module, Dict[str, Any]]:
    """Rebuild a model from ``model.pt``; returns ``(model in eval mode on device, metadata)``.

    Raises:
        DataError: unreadable file, or weights that do not fit the recorded method.
    """
    from oucr.engine.runtime import place_model
    from oucr.models.registry import build_model

    blob = read_model_file(path)
    kwargs = dict(blob["model_kwargs"])
    kwargs.pop("checkpointing", None)  # inference needs no activation checkpointing
    model = build_model(blob["method"], None, **kwargs)
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as err:
        raise DataError(path, f"weights do not fit {blob['method']} with {kwargs}: {str(err)[:300]}") from err
    model = place_model(model, device or torch.device("cpu"))
    return model.eval(), blob
