"""U-Net (Ronneberger et al. 2015) for complex MR images, ending with data consistency.

As in the OUCR paper, the U-Net is "modified for data with real and imaginary
channels and a DC layer added at the end": it maps the two-channel zero-filled
image to a two-channel image, the zero-filled input is added back (residual
learning, no parameters), and the shared data-consistency layer follows. The
residual is a guess: the paper says only that a DC layer was added
(``residual=False`` turns it off).

Configuration reproducing the paper's 8.634 M parameters (8,633,666 exactly;
``UNet(base_channels=32, levels=5)``, the defaults): five levels of
32/64/128/256/512 channels; at each level two 3 x 3 convolutions, each followed by
batch normalisation and ReLU; 2 x 2 max-pooling down; up path: x2 nearest
upsampling, a 3 x 3 convolution + BN + ReLU halving the channels, concatenation
with the skip, then the double convolution; a final 1 x 1 convolution 32 -> 2.
Convolutions have no bias (BN follows) except the last: the count implies it (with
biases it would be 8,637,090). (fastMRI's own U-Net with 32 channels and 4 poolings
has 7.76 M, so it is not the paper's.)

Image sizes must be multiples of ``2 ** (levels - 1)`` (16 at the paper's depth).
"""

from __future__ import annotations

from functools import partial
from typing import List

import torch
from torch import nn

from baselines.layers import checkpointed
from oucr.models.base import ReconModel
from oucr.physics import SingleCoilMRI


def conv_bn_relu(cin: int, cout: int) -> List[nn.Module]:
    """3 x 3 convolution (no bias: BN follows) + batch norm + ReLU."""
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def double_conv(cin: int, cout: int) -> nn.Sequential:
    """Two conv-BN-ReLU blocks."""
    return nn.Sequential(*conv_bn_relu(cin, cout), *conv_bn_relu(cout, cout))


class UNet(ReconModel):
    """U-Net with a residual connection and a final data-consistency layer.

    Args:
        base_channels: channels of the first level, doubled at every level (paper 32).
        levels: resolution levels, ``levels - 1`` poolings (paper 5).
        residual: add the input image to the network output before DC.
        checkpointing: recompute each level's convolutions in the backward pass.
    """

    def __init__(
        self, base_channels: int = 32, levels: int = 5, residual: bool = True, checkpointing: bool = False
    ) -> None:
        super().__init__()
        if levels < 2 or base_channels < 1:
            raise ValueError(f"UNet needs levels >= 2 and base_channels >= 1, got {levels} and {base_channels}")
        widths = [base_channels * 2**i for i in range(levels)]
        self.size_multiple = 2 ** (levels - 1)  # type: ignore[misc]
        self.residual = residual
        self.checkpointing = checkpointing
        self.down = nn.ModuleList([double_conv(2, widths[0])])
        self.down.extend(double_conv(widths[i - 1], widths[i]) for i in range(1, levels))
        self.pool = nn.MaxPool2d(2)
        self.up_convs = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for i in range(levels - 1, 0, -1):
            self.up_convs.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                               *conv_bn_relu(widths[i], widths[i - 1])))
            self.up_blocks.append(double_conv(2 * widths[i - 1], widths[i - 1]))
        self.head = nn.Conv2d(widths[0], 2, kernel_size=1, bias=True)

    def reconstruct(self, image: torch.Tensor, physics: SingleCoilMRI) -> torch.Tensor:  # noqa: D102
        skips = []
        x = image
        for i, block in enumerate(self.down):
            x = checkpointed(self, block, x if i == 0 else self.pool(x), enabled=self.checkpointing)
            skips.append(x)
        skips.pop()  # the deepest level feeds the up path directly
        for up, block in zip(self.up_convs, self.up_blocks):
            x = checkpointed(self, partial(_up_step, up, block), skips.pop(), x, enabled=self.checkpointing)
        out = self.head(x)
        if self.residual:
            out = out + image
        return physics.data_consistency(out)


def _up_step(up: nn.Module, block: nn.Module, skip: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One level of the up path: upsample and halve ``x``, concatenate the skip, double conv."""
    return block(torch.cat([skip, up(x)], dim=1))
