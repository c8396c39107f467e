"""Training losses, one value per sample so that steps can weight samples exactly.

``l1_magnitude`` is the OUCR lineage's loss: the L1 distance between the
magnitudes of the output and the target (``complex_abs`` of both, then
``l1_loss``). ``l1`` and ``l2`` compare the real/imaginary channels. Each loss
is the mean over one sample's pixels; the trainer combines samples with weights
(:mod:`oucr.engine.distributed`), which for a plain batch is their mean, i.e.
``torch.nn.functional.l1_loss`` of the batch.
"""

from __future__ import annotations

import torch

from oucr.config import LOSSES

#: added under the square root of the output magnitude: the derivative of |z| is undefined at
#: z = 0; 1e-12 moves a magnitude by at most 1e-6 on images normalised to mean magnitude 1
MAGNITUDE_EPS = 1e-12


def magnitude(x: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """``sqrt(re^2 + im^2 + eps)`` of a two-channel image ``(B, 2, H, W)`` -> ``(B, H, W)``."""
    if x.ndim != 4 or x.shape[1] != 2:
        raise ValueError(f"expected a two-channel image (B, 2, H, W), got shape {tuple(x.shape)}")
    return torch.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2 + eps)


def per_sample_loss(name: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The loss of each sample, ``(B,)``.

    Args:
        name: one of :data:`oucr.config.LOSSES`.
        output, target: two-channel images ``(B, 2, H, W)`` (normalised).
    """
    if output.shape != target.shape:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} differ in shape")
    if name == "l1_magnitude":
        return (magnitude(output, MAGNITUDE_EPS) - magnitude(target)).abs().flatten(1).mean(1)
    if name == "l1":
        return (output - target).abs().flatten(1).mean(1)
    if name == "l2":
        return (output - target).square().flatten(1).mean(1)
    raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")
