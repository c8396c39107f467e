"""Kiu-net (Valanarasu et al. 2020/2021) for complex MR images, ending with data consistency.

The network is the 2-D ``kiunet`` class of the authors' public code
(jeya-maria-jose/KiU-Net-pytorch, ``arch/ae.py``), built with the layers its
``forward`` uses and no others. Two three-level branches run side by side:

* the U-branch (undercomplete): at each encoder level conv3x3 -> 2 x 2 max-pool -> BN -> ReLU;
* the Ki-branch (overcomplete): conv3x3 -> x2 bilinear upsampling -> BN -> ReLU.

A cross-residual fusion block (CRFB) follows each of the three encoder levels and
the first two decoder levels: each branch adds the other's (pre-fusion) features
after conv3x3 -> BN -> ReLU and a bilinear resize to its own resolution. The
decoder mirrors the encoder (U: conv -> x2 upsampling, Ki: conv -> max-pool, each
-> BN -> ReLU), with additive skips from the first two encoder levels after the
first two decoder levels; the third decoder level has no fusion. The branches are
added and a 1 x 1 convolution gives two channels. As in the public code, every
convolution has a bias and every bilinear resampling uses ``align_corners=False``
(the code calls ``F.interpolate`` with its default).

Adaptations to complex MR data (the OUCR paper: "modified for data with real and
imaginary channels and a DC layer added at the end"):

* two input and two output channels (real, imaginary) instead of 1 -> 2 classes;
* no final softmax (the public code has it commented out already) and no final
  ReLU: the public code ends with ``relu(final(x))``, which would clip negative
  real/imaginary values, so the head is the bare 1 x 1 convolution;
* the zero-filled input is added to the output before DC (residual learning; the
  paper does not say whether Kiu-net has one: this is a guess, ``residual=False``
  turns it off);
* the shared data-consistency layer ends the network.

Widths and parameter count: the public code has 16/32/64 channels and 8 at the
last decoder level. ``KiUNet()`` (the defaults) scales them by 5.25 to 84/168/336
and 42. The public class also defines a decoder fusion block at the deepest width
(``interd3_1``, ``intd3_1bn``, ``interd3_2``, ``intd3_2bn``: two 3 x 3 convolutions
of ``widths[2]`` channels with BN) that its ``forward`` never calls. Counted as
the public code counts (every defined layer), the defaults have 7,953,458
parameters, +0.03 % from the paper's 7.951 M: that is
:meth:`KiUNet.reference_parameter_count`. The layers built here, all of which
receive gradients, hold 5,919,314 (``count_parameters``); the unused block is not
built because it could never be trained.

Cost: the Ki-branch reaches 8x the image size per axis at the third level
(512 x 512 for a 64 x 64 slice, 2560 x 2560 x ``widths[2]`` for 320 x 320), where
the fusion block runs a ``widths[2]``-channel 3 x 3 convolution: about 24 TFLOP
per forward pass of one 320 x 320 slice at the defaults. Memory grows the same
way, so ``checkpointing`` (per level) matters there; ``benchmarks/kiunet_memory.py``
estimates a training step's memory. Image sizes must be multiples of 8 (the
U-branch pools three times).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from baselines.layers import checkpointed
from oucr.models.base import ReconModel, count_parameters
from oucr.physics import SingleCoilMRI

#: the public code's widths 16/32/64 (last decoder level 8) times 5.25
PAPER_WIDTHS = (84, 168, 336)


def conv3x3_bn_parameters(channels_in: int, channels_out: int) -> int:
    """Parameters of a 3 x 3 convolution with bias followed by batch normalisation."""
    return 9 * channels_in * channels_out + channels_out + 2 * channels_out


def _bilinear(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ConvBN(nn.Module):
    """3 x 3 convolution (with bias, as the public code) -> optional resampling -> BN -> ReLU.

    Args:
        cin, cout: channels.
        resample: ``"down"`` (2 x 2 max-pool), ``"up"`` (x2 bilinear) or ``None``.

    Raises:
        ValueError: for another ``resample``.
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
            x = _bilinear(x, (2 * x.shape[-2], 2 * x.shape[-1]))
        return F.relu(self.bn(x), inplace=True)


class CRFB(nn.Module):
    """Cross-residual fusion: each branch adds the other's features (conv-BN-ReLU, then resized to its size)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.ki_to_u = ConvBN(channels, channels)
        self.u_to_ki = ConvBN(channels, channels)

    def forward(self, u: torch.Tensor, ki: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        return (u + _bilinear(self.ki_to_u(ki), tuple(u.shape[-2:])),
                ki + _bilinear(self.u_to_ki(u), tuple(ki.shape[-2:])))


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
        widths: channels of the three levels (default 84/168/336, the paper's count).
        last_width: channels of the last decoder level (default ``widths[0] // 2``, 42).
        residual: add the input image to the network output before DC (a guess, see above).
        checkpointing: recompute each level's activations in the backward pass.

    Raises:
        ValueError: for other than three positive widths or a non-positive ``last_width``.
    """

    size_multiple = 8

    def __init__(
        self,
        widths: Sequence[int] = PAPER_WIDTHS,
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
        self.widths = widths
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

    def reference_parameter_count(self) -> int:
        """Parameters as the public code counts them: these layers plus its never-called deepest decoder CRFB.

        Returns:
            ``count_parameters(self)`` plus two 3 x 3 convolutions with BN of ``widths[2]``
            channels (7,953,458 at the default widths).
        """
        c = self.widths[2]
        return count_parameters(self) + 2 * conv3x3_bn_parameters(c, c)

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
