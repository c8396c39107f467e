"""Kiu-net (Valanarasu et al. 2020/2021) for complex MR images, ending with data consistency.

The public KiU-Net topology: two three-level branches run side by side,

* the U-branch (undercomplete): at each level conv3x3 -> 2 x 2 max-pool -> BN -> ReLU;
* the Ki-branch (overcomplete): conv3x3 -> x2 bilinear upsampling -> BN -> ReLU,

with a cross-residual fusion block (CRFB) after each of the three encoder and
the first two decoder levels: each branch receives the other's features through
conv3x3 -> BN -> ReLU, resized bilinearly to its resolution. The decoder mirrors
the encoder (U: conv -> upsample, Ki: conv -> max-pool) with additive skips, the
branches are added, and a 1 x 1 convolution gives two channels. As for the
U-Net, the paper adapts it to real/imaginary channels and appends data
consistency; we also add the zero-filled input back (residual, no parameters).

Parameter count: the public code defines a third decoder CRFB that its forward
pass never uses; a count that includes those unused layers gives ~7.95 M at
widths 84/168/336 (the paper's 7.951 M). Every parameter here is used, and the
default widths 97/194/388 (last decoder width 48) give 7,889,978 parameters,
-0.77 % from the paper's count.

Memory: the Ki-branch reaches 8x the image size per axis at the third level
(2560 x 2560 for a 320 x 320 slice).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from oucr.models.base import ReconModel
from oucr.physics import SingleCoilMRI


def _conv_bn(cin: int, cout: int) -> nn.ModuleDict:
    return nn.ModuleDict({"conv": nn.Conv2d(cin, cout, 3, padding=1), "bn": nn.BatchNorm2d(cout)})


def _resize(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=True)


class CRFB(nn.Module):
    """Cross-residual fusion: each branch adds the other's (conv-BN-ReLU, resized) features."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.to_u = _conv_bn(channels, channels)
        self.to_ki = _conv_bn(channels, channels)

    def forward(self, u: torch.Tensor, ki: torch.Tensor):  # noqa: D102
        u_new = u + _resize(F.relu(self.to_u["bn"](self.to_u["conv"](ki))), u)
        ki_new = ki + _resize(F.relu(self.to_ki["bn"](self.to_ki["conv"](u))), ki)
        return u_new, ki_new


class KiUNet(ReconModel):
    """Kiu-net with data consistency.

    Args:
        widths: channels of the three levels (paper-count default 97/194/388).
        last_width: channels of the last decoder level (default ``widths[0] // 2``).
        residual: add the input image to the network output before DC.
    """

    size_multiple = 8

    def __init__(self, widths: Sequence[int] = (97, 194, 388), last_width: int = None, residual: bool = True) -> None:
        super().__init__()
        a, b, c = (int(w) for w in widths)
        d = int(last_width) if last_width is not None else max(a // 2, 1)
        self.residual = residual
        self.enc_u = nn.ModuleList([_conv_bn(2, a), _conv_bn(a, b), _conv_bn(b, c)])
        self.enc_ki = nn.ModuleList([_conv_bn(2, a), _conv_bn(a, b), _conv_bn(b, c)])
        self.enc_fuse = nn.ModuleList([CRFB(a), CRFB(b), CRFB(c)])
        self.dec_u = nn.ModuleList([_conv_bn(c, b), _conv_bn(b, a), _conv_bn(a, d)])
        self.dec_ki = nn.ModuleList([_conv_bn(c, b), _conv_bn(b, a), _conv_bn(a, d)])
        self.dec_fuse = nn.ModuleList([CRFB(b), CRFB(a)])
        self.head = nn.Conv2d(d, 2, kernel_size=1)

    @staticmethod
    def _u_down(block: nn.ModuleDict, x: torch.Tensor) -> torch.Tensor:
        return F.relu(block["bn"](F.max_pool2d(block["conv"](x), 2)))

    @staticmethod
    def _ki_up(block: nn.ModuleDict, x: torch.Tensor) -> torch.Tensor:
        return F.relu(block["bn"](F.interpolate(block["conv"](x), scale_factor=2, mode="bilinear", align_corners=True)))

    def reconstruct(self, image: torch.Tensor, physics: SingleCoilMRI) -> torch.Tensor:  # noqa: D102
        u, ki = image, image
        skips = []
        for block_u, block_ki, fuse in zip(self.enc_u, self.enc_ki, self.enc_fuse):
            u, ki = fuse(self._u_down(block_u, u), self._ki_up(block_ki, ki))
            skips.append((u, ki))
        skips.pop()  # the deepest level feeds the decoder directly
        for level, (block_u, block_ki) in enumerate(zip(self.dec_u, self.dec_ki)):
            u, ki = self._ki_up(block_u, u), self._u_down(block_ki, ki)  # U goes up, Ki goes down
            if level < len(self.dec_fuse):
                u, ki = self.dec_fuse[level](u, ki)
                su, sk = skips.pop()
                u, ki = u + su, ki + sk
        out = self.head(u + ki)
        if self.residual:
            out = out + image
        return physics.data_consistency(out)
