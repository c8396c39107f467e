"""Kiu-net (Valanarasu et al. 2020/2021) for complex MR images, ending with data consistency.

The public KiU-Net (2-D) topology: two three-level branches run side by side,

* the U-branch (undercomplete): at each level conv3x3 -> 2 x 2 max-pool -> BN -> ReLU;
* the Ki-branch (overcomplete): conv3x3 -> x2 bilinear upsampling -> BN -> ReLU,

with a cross-residual fusion block (CRFB) after each of the three encoder and
the first two decoder levels: each branch receives the other's features through
conv3x3 -> BN -> ReLU, resized bilinearly to its resolution. The decoder mirrors
the encoder (U: conv -> upsample, Ki: conv -> max-pool) with additive skips from
the encoder, the branches are added, and a 1 x 1 convolution gives two channels.
As the paper says for the U-Net and Kiu-net, it is adapted to real/imaginary
channels and data consistency is appended; we also add the zero-filled input
back before DC (residual, no parameters) and drop the segmentation head's
final ReLU/softmax.

Parameter count: ``KiUNet(widths=(97, 194, 388))`` (the default; the last decoder
level has ``97 // 2 = 48`` channels) has 7,889,978 parameters, -0.77 % from the
paper's 7.951 M. Every parameter is used. (The public code also defines a third
decoder fusion block that its forward pass never calls; counting those unused
layers, widths 84/168/336 come to about 7.95 M, but such parameters would get no
gradient, so they are not built here.)

Cost: the Ki-branch reaches 8x the image size per axis at the third level
(512 x 512 for a 64 x 64 slice, 2560 x 2560 for 320 x 320), where the fusion block
runs a ``widths[2]``-channel 3 x 3 convolution. At the default widths a forward
pass takes about 32 TFLOP per 320 x 320 slice (10x OUCR); memory grows the same
way, so ``checkpointing`` (per level) matters there. Image sizes must be
multiples of 8 (the U-branch pools three times).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from baselines.layers import checkpointed
from oucr.models.base import ReconModel
from oucr.physics import SingleCoilMRI


class ConvBN(nn.Module):
    """3 x 3 convolution (with bias, as the public code) -> optional resampling -> BN -> ReLU.

    Args:
        cin, cout: channels.
        resample: ``"down"`` (2 x 2 max-pool), ``"up"`` (x2 bilinear) or ``None``.
    """

    def __init__(self, cin: int, cout: int, resample: Optional[str] = None) -> None:
        super().__init__()
        if resample not in (None, "down", "up"):
            raise ValueError(f"resample must be None, 'down' or 'up', got {resample!r}")
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn = nn.BatchNorm2d(cout)
        self.resample = resample

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.conv(x)
        if self.resample == "down":
            x = F.max_pool2d(x, 2)
        elif self.resample == "up":
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return F.relu(self.bn(x), inplace=True)


def _resize(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=True)


class CRFB(nn.Module):
    """Cross-residual fusion: each branch adds the other's features (conv-BN-ReLU, resized to its size)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.ki_to_u = ConvBN(channels, channels)
        self.u_to_ki = ConvBN(channels, channels)

    def forward(self, u: torch.Tensor, ki: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        return u + _resize(self.ki_to_u(ki), u), ki + _resize(self.u_to_ki(u), ki)


class KiUNetLevel(nn.Module):
    """One level of both branches, then (optionally) their fusion.

    In the encoder the U-branch goes down and the Ki-branch up; in the decoder the reverse.
    """

    def __init__(self, cin: int, cout: int, encoder: bool, fuse: bool) -> None:
        super().__init__()
        self.u = ConvBN(cin, cout, "down" if encoder else "up")
        self.ki = ConvBN(cin, cout, "up" if encoder else "down")
        self.fuse = CRFB(cout) if fuse else None

    def forward(self, u: torch.Tensor, ki: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        u, ki = self.u(u), self.ki(ki)
        return self.fuse(u, ki) if self.fuse is not None else (u, ki)


class KiUNet(ReconModel):
    """Kiu-net with a residual connection and a final data-consistency layer.

    Args:
        widths: channels of the three levels (default 97/194/388, the paper's count).
        last_width: channels of the last decoder level (default ``widths[0] // 2``).
        residual: add the input image to the network output before DC.
        checkpointing: recompute each level's activations in the backward pass.
    """

    size_multiple = 8

    def __init__(
        self,
        widths: Sequence[int] = (97, 194, 388),
        last_width: Optional[int] = None,
        residual: bool = True,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != 3 or min(widths) < 1:
            raise ValueError(f"KiUNet needs three positive widths, got {widths}")
        a, b, c = widths
        d = int(last_width) if last_width is not None else max(a // 2, 1)
        if d < 1:
            raise ValueError(f"KiUNet needs a positive last_width, got {d}")
        self.residual = residual
        self.checkpointing = checkpointing
        self.encoder = nn.ModuleList([
            KiUNetLevel(2, a, encoder=True, fuse=True),
            KiUNetLevel(a, b, encoder=True, fuse=True),
            KiUNetLevel(b, c, encoder=True, fuse=True),
        ])
        self.decoder = nn.ModuleList([
            KiUNetLevel(c, b, encoder=False, fuse=True),
            KiUNetLevel(b, a, encoder=False, fuse=True),
            KiUNetLevel(a, d, encoder=False, fuse=False),
        ])
        self.head = nn.Conv2d(d, 2, kernel_size=1)

    def reconstruct(self, image: torch.Tensor, physics: SingleCoilMRI) -> torch.Tensor:  # noqa: D102
        # channels-last: the many few-channel convolutions on the large Ki-branch maps run
        # about twice as fast on CPU in this layout; the output of DC is contiguous again
        u = ki = image.contiguous(memory_format=torch.channels_last)
        skips = []
        for level in self.encoder:
            u, ki = self._run(level, u, ki)
            skips.append((u, ki))
        skips.pop()  # the deepest level feeds the decoder directly
        for level in self.decoder:
            u, ki = self._run(level, u, ki)
            if skips:
                skip_u, skip_ki = skips.pop()
                u, ki = u + skip_u, ki + skip_ki
        out = self.head(u + ki)
        if self.residual:
            out = out + image
        return physics.data_consistency(out)

    def _run(self, level: KiUNetLevel, u: torch.Tensor, ki: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return checkpointed(self, level, u, ki, enabled=self.checkpointing)
