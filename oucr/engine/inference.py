"""Running a reconstruction method over whole volumes.

Validation during training, ``oucr reconstruct`` and the benchmark share
:func:`predict_volumes`; every method (networks, zero-filled, CS) writes its
output with :func:`oucr.recon_io.write_reconstruction`.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Dict, Iterator, List, Mapping, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from oucr.fft import channels_to_complex
from oucr.physics import SingleCoilMRI, denormalise

#: maps (image (B,2,H,W), physics) -> (B,2,H,W); a ReconModel or a plain function
ReconFn = Callable[[torch.Tensor, SingleCoilMRI], torch.Tensor]


def zero_filled_method(image: torch.Tensor, physics: SingleCoilMRI) -> torch.Tensor:
    """The zero-filled reference: return the input image unchanged."""
    return image


def autocast_context(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to bfloat16 when ``amp == "bf16"``, else a no-op."""
    if amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def batch_to_device(batch: Mapping[str, object], device: torch.device) -> Dict[str, object]:
    """Move the tensors of a collated sample dict to ``device``."""
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def run_batch(method: ReconFn, batch: Mapping[str, object]) -> torch.Tensor:
    """Apply ``method`` to one collated batch; returns the normalised output ``(B, 2, H, W)``."""
    physics = SingleCoilMRI(batch["masked_kspace"], batch["mask"])  # type: ignore[arg-type]
    return method(batch["image"], physics)  # type: ignore[arg-type]


@torch.no_grad()
def predict_volumes(
    method: ReconFn,
    dataset: torch.utils.data.Dataset,
    device: torch.device,
    batch_size: int = 4,
    amp: str = "none",
    volumes: Optional[List[str]] = None,
) -> Iterator[tuple]:
    """Reconstruct every slice of ``dataset`` and yield whole volumes.

    Args:
        method: the reconstruction (a ReconModel in eval mode, or a function).
        dataset: a SliceDataset over validation or test slices (fixed masks).
        device: where to compute.
        batch_size: slices per forward pass.
        amp: ``none`` or ``bf16``.
        volumes: restrict to these volumes (all if None).

    Yields:
        ``(volume, reconstruction, target)``: complex64 images ``(S, H, W)`` at the
        original (denormalised) scale, slices in store order, volumes in the dataset's order.
    """
    wanted = set(volumes) if volumes is not None else None
    if wanted is not None:
        # only the wanted volumes' slices are read (validation shards volumes over processes)
        keep = [i for i, (v, _) in enumerate(dataset.slice_index) if v in wanted]
        dataset = torch.utils.data.Subset(dataset, keep)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    current: Optional[str] = None
    recon_slices: Dict[int, np.ndarray] = {}
    target_slices: Dict[int, np.ndarray] = {}
    for batch in loader:
        names: List[str] = list(batch["volume"])
        batch = batch_to_device(batch, device)
        with autocast_context(device, amp):
            out = run_batch(method, batch)
        norm = batch["norm"]
        recon = denormalise(channels_to_complex(out.float()), norm).cpu().numpy()
        target = denormalise(channels_to_complex(batch["target"].float()), norm).cpu().numpy()
        for i, name in enumerate(names):
            if current is not None and name != current:
                yield current, _stack(recon_slices), _stack(target_slices)
                recon_slices, target_slices = {}, {}
            current = name
            s = int(batch["slice"][i])
            recon_slices[s] = recon[i]
            target_slices[s] = target[i]
    if current is not None:
        yield current, _stack(recon_slices), _stack(target_slices)


def _stack(slices: Dict[int, np.ndarray]) -> np.ndarray:
    return np.stack([slices[k] for k in sorted(slices)]).astype(np.complex64)
