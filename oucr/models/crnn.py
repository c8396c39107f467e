"""The convolutional recurrent module of OUCR (paper Eq. 4, Fig. 2b).

One module ``f`` is an encoder, a recurrent cell of residual blocks acting on the
hidden state, and a decoder; it is unrolled for ``J`` iterations with shared
weights, with the shared data-consistency layer after every iteration::

    h_j     = PReLU(cell(h_{j-1}) + enc(y_j))          h_0 = 0
    y_{j+1} = DC(dec(h_j))

The two flavours differ only in how they resample:

* undercomplete (UC): the encoder max-pools (2 x 2) after each conv block and the
  decoder upsamples (nearest, x2): the hidden state is smaller than the image and
  the receptive field grows quickly;
* overcomplete (OC): the encoder upsamples and the decoder max-pools: the hidden
  state is larger than the image (4x per axis at depth 2) and the receptive field
  stays small, which is the paper's point.

Layers (``nf`` features, ``depth`` resampling stages, ``res_blocks`` blocks)::

    encoder: conv3x3(2, nf) - ReLU - resample - conv3x3(nf, nf) - resample
    cell:    res_blocks x [conv3x3(nf, nf) - ReLU - conv3x3(nf, nf) + skip]
    merge:   PReLU (one shared slope)
    decoder: resample - conv3x3(nf, nf) - ReLU - resample - conv3x3(nf, 2)

With ``depth < 2`` the innermost resampling steps are dropped. All convolutions
have a bias. This gives ``54 nf^2 + 43 nf + 3`` parameters (nf = 64: 223,939;
nf = 128: 890,243), which with the refine module reproduces the paper's 1.192 M.

The decoder is the mirror image of the encoder (resampling before each
convolution). The paper's text places each decoder convolution before its
resampling; both orders have the same parameters, but that one would end the
UC branch with a nearest-neighbour upsampling of a half-resolution 2-channel
output (blocky images) and the OC branch with a max-pool of signed real and
imaginary values (a biased output). The mirrored order avoids both.
"""

from __future__ import annotations

from typing import Callable, List, Optional

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from oucr.physics import SingleCoilMRI

BRANCHES = ("oc", "uc")


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    """3 x 3 convolution with padding 1 and a bias."""
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=True)


class ResidualBlock(nn.Module):
    """``x + conv(ReLU(conv(x)))``."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3x3(features, features), nn.ReLU(inplace=True), conv3x3(features, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x + self.body(x)


def _grow(branch: str) -> nn.Module:
    return nn.Upsample(scale_factor=2, mode="nearest") if branch == "oc" else nn.MaxPool2d(2)


def _shrink(branch: str) -> nn.Module:
    return nn.MaxPool2d(2) if branch == "oc" else nn.Upsample(scale_factor=2, mode="nearest")


class CRNN(nn.Module):
    """One OC or UC convolutional recurrent module.

    Args:
        branch: ``"oc"`` (overcomplete) or ``"uc"`` (undercomplete).
        features: feature channels ``nf``.
        iterations: unrolled iterations ``J`` (shared weights).
        res_blocks: residual blocks in the recurrent cell.
        depth: resampling stages in the encoder (and decoder), 0 to 2.
        checkpointing: recompute each iteration in the backward pass (saves memory).
    """

    def __init__(
        self,
        branch: str,
        features: int,
        iterations: int = 5,
        res_blocks: int = 2,
        depth: int = 2,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if branch not in BRANCHES:
            raise ValueError(f"branch must be 'oc' or 'uc', got {branch!r}")
        if not 0 <= depth <= 2:
            raise ValueError(f"depth must be 0, 1 or 2 (the module has two conv blocks), got {depth}")
        if iterations < 1 or features < 1 or res_blocks < 0:
            raise ValueError("iterations and features must be positive, res_blocks non-negative")
        self.branch = branch
        self.depth = depth
        self.iterations = iterations
        self.checkpointing = checkpointing
        step = lambda make, i: make(branch) if i < depth else nn.Identity()  # noqa: E731
        self.encoder = nn.Sequential(
            conv3x3(2, features), nn.ReLU(inplace=True), step(_grow, 0), conv3x3(features, features), step(_grow, 1)
        )
        self.cell = nn.Sequential(*[ResidualBlock(features) for _ in range(res_blocks)])
        self.merge = nn.PReLU(num_parameters=1)
        self.decoder = nn.Sequential(
            step(_shrink, 1), conv3x3(features, features), nn.ReLU(inplace=True), step(_shrink, 0),
            conv3x3(features, 2),
        )
        #: filled with the hidden state of every iteration when ``record_hidden`` is True
        self.hidden_states: List[torch.Tensor] = []
        self.record_hidden = False

    @property
    def size_multiple(self) -> int:
        """Image sizes must be divisible by this (the UC branch pools)."""
        return 2**self.depth if self.branch == "uc" else 1

    def step(self, image: torch.Tensor, hidden: Optional[torch.Tensor]) -> torch.Tensor:
        """The hidden state after one iteration (``hidden`` None means zero)."""
        encoded = self.encoder(image)
        recurrent = self.cell(hidden if hidden is not None else torch.zeros_like(encoded))
        return self.merge(encoded + recurrent)

    def _iteration(self, image: torch.Tensor, hidden: Optional[torch.Tensor], physics: SingleCoilMRI):
        hidden = self.step(image, hidden)
        return physics.data_consistency(self.decoder(hidden)), hidden

    def forward(self, image: torch.Tensor, physics: SingleCoilMRI) -> torch.Tensor:
        """Run ``J`` iterations from ``image`` ``(B, 2, H, W)``; returns the last DC output."""
        hidden: Optional[torch.Tensor] = None
        self.hidden_states = []
        run: Callable = self._iteration
        for _ in range(self.iterations):
            if self.checkpointing and torch.is_grad_enabled():
                image, hidden = checkpoint(run, image, hidden, physics, use_reentrant=False)
            else:
                image, hidden = run(image, hidden, physics)
            if self.record_hidden:
                self.hidden_states.append(hidden.detach())
        return image

    def local_map(self, image: torch.Tensor) -> torch.Tensor:
        """One iteration without data consistency, from a zero hidden state.

        This is the purely convolutional part whose receptive field the paper
        discusses (data consistency mixes all pixels through the FFT).
        """
        return self.decoder(self.step(image, None))
