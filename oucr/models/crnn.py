"""The convolutional recurrent module of OUCR (paper Eq. 4, Fig. 2b).

One module ``f`` is an encoder, a recurrent cell of residual blocks acting on the
hidden state, and a decoder; it is unrolled for ``J`` iterations with shared
weights, with the shared data-consistency layer after every iteration::

    h_1     = PReLU(enc(y_1))                          first iteration: no recurrent term
    h_j     = PReLU(cell(h_{j-1}) + enc(y_j))          j > 1
    y_{j+1} = DC(dec(h_j))

The first iteration has no hidden state to recur on, and applies no cell to
zeros (the OUCR lineage's ``hidden = activation(encoder(x))`` when no hidden state
exists yet).

The two flavours differ only in how they resample:

* undercomplete (UC): the encoder max-pools (2 x 2) after each conv block and the
  decoder upsamples (nearest, x2): the hidden state is smaller than the image and
  the receptive field grows quickly;
* overcomplete (OC): the encoder upsamples and the decoder max-pools: the hidden
  state is larger than the image (4x per axis at depth 2) and the receptive field
  stays small, which is the paper's point.

Layers (``nf`` features, ``depth`` resampling stages, ``res_blocks`` blocks), with
their trainable parameters (every convolution 3 x 3 with a bias; one PReLU slope
shared by all channels, PyTorch's default)::

    encoder: conv(2 -> nf)  - ReLU - resample     18 nf + nf      = 19 nf
             conv(nf -> nf) - resample             9 nf^2 + nf
    cell:    res_blocks x [conv(nf -> nf) - ReLU - conv(nf -> nf) + skip]
                                                   res_blocks x (18 nf^2 + 2 nf)
    merge:   PReLU                                 1
    decoder: conv(nf -> nf), ReLU, conv(nf -> 2)   9 nf^2 + nf + 18 nf + 2
             with the resampling placed by ``decoder_order`` (below)

With ``depth < 2`` the innermost resampling steps are dropped. At two residual
blocks this is ``54 nf^2 + 43 nf + 3`` parameters: nf = 64 (OC) 223,939, nf = 128
(UC) 890,243; with the refine module's 77,378 (:mod:`oucr.models.oucr`) the full
OUCR has 1,191,560, the paper's 1.192 M.

Decoder order (``decoder_order``; all three have the same parameters):

* ``"paper"`` (default): the paper's text, "each convolutional block has a 2D
  convolutional layer followed by max-pooling layer in OC-CRNN or upsampling layer
  in UC-CRNN": ``conv(nf -> nf) - ReLU - resample - conv(nf -> 2) - resample``. The
  module output is then a resampled two-channel image: the UC branch ends with a
  nearest-neighbour upsampling of a half-resolution output, the OC branch with a
  max-pool of signed real and imaginary values (the data consistency after it
  corrects the sampled frequencies only);
* ``"mirrored"``: the mirror image of the encoder,
  ``resample - conv(nf -> nf) - ReLU - resample - conv(nf -> 2)``, which avoids both
  effects (the last convolution works at image resolution);
* ``"lineage"``: the first author's follow-up code (conv, resample, ReLU, then the
  last convolution at image resolution): ``conv(nf -> nf) - resample - resample -
  ReLU - conv(nf -> 2)``.

The measured difference between them on the demo is in ``docs/protocol.md``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

import torch
from torch import nn

from oucr.models.checkpointing import checkpointed
from oucr.physics import SingleCoilMRI

BRANCHES = ("oc", "uc")
DECODER_ORDERS = ("paper", "mirrored", "lineage")


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
        decoder_order: where the decoder resamples: ``"paper"``, ``"mirrored"`` or ``"lineage"``
            (module docstring).
    """

    def __init__(
        self,
        branch: str,
        features: int,
        iterations: int = 5,
        res_blocks: int = 2,
        depth: int = 2,
        checkpointing: bool = False,
        decoder_order: str = "paper",
    ) -> None:
        super().__init__()
        if branch not in BRANCHES:
            raise ValueError(f"branch must be 'oc' or 'uc', got {branch!r}")
        if decoder_order not in DECODER_ORDERS:
            raise ValueError(f"decoder_order must be one of {', '.join(DECODER_ORDERS)}, got {decoder_order!r}")
        if not 0 <= depth <= 2:
            raise ValueError(f"depth must be 0, 1 or 2 (the module has two conv blocks), got {depth}")
        if iterations < 1 or features < 1 or res_blocks < 0:
            raise ValueError(
                f"iterations ({iterations}) and features ({features}) must be positive, "
                f"res_blocks ({res_blocks}) non-negative"
            )
        #: constructor arguments, so that a freshly initialised twin can be built
        self.config: Dict[str, Any] = dict(
            branch=branch, features=features, iterations=iterations, res_blocks=res_blocks, depth=depth,
            checkpointing=checkpointing, decoder_order=decoder_order,
        )
        self.branch = branch
        self.depth = depth
        self.iterations = iterations
        self.checkpointing = checkpointing
        self.decoder_order = decoder_order

        def resample(make: Callable[[str], nn.Module], stage: int) -> nn.Module:
            # stage 0 is the outermost; with depth < 2 the innermost stages are dropped
            return make(branch) if stage < depth else nn.Identity()

        self.encoder = nn.Sequential(
            conv3x3(2, features), nn.ReLU(inplace=True), resample(_grow, 0),
            conv3x3(features, features), resample(_grow, 1),
        )
        self.cell = nn.Sequential(*[ResidualBlock(features) for _ in range(res_blocks)])
        self.merge = nn.PReLU(num_parameters=1)
        inner, outer = resample(_shrink, 1), resample(_shrink, 0)
        first, last = conv3x3(features, features), conv3x3(features, 2)
        relu = nn.ReLU(inplace=True)
        layers = {
            "paper": [first, relu, inner, last, outer],
            "mirrored": [inner, first, relu, outer, last],
            "lineage": [first, inner, outer, relu, last],
        }[decoder_order]
        self.decoder = nn.Sequential(*layers)

    @property
    def size_multiple(self) -> int:
        """Image sizes must be divisible by this (the UC branch pools)."""
        return 2**self.depth if self.branch == "uc" else 1

    def step(self, image: torch.Tensor, hidden: Optional[torch.Tensor]) -> torch.Tensor:
        """The hidden state after one iteration (``hidden`` None: the first iteration, no recurrent term)."""
        encoded = self.encoder(image)
        if hidden is None:
            return self.merge(encoded)
        return self.merge(encoded + self.cell(hidden))

    def iteration(
        self, image: torch.Tensor, hidden: Optional[torch.Tensor], physics: Optional[SingleCoilMRI]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """One unrolled iteration: ``(DC(dec(h_j)), h_j)``.

        ``physics`` None leaves out the data consistency (used to measure the
        receptive field of the convolutional part alone).
        """
        hidden = self.step(image, hidden)
        out = self.decoder(hidden)
        return (physics.data_consistency(out) if physics is not None else out), hidden

    def forward(self, image: torch.Tensor, physics: SingleCoilMRI) -> torch.Tensor:
        """Run ``J`` iterations from ``image`` ``(B, 2, H, W)``; returns the last DC output.

        With checkpointing (and autograd on) each iteration's activations are
        recomputed in the backward pass, so only the iteration inputs (image and
        hidden state) stay in memory between iterations.
        """
        hidden: Optional[torch.Tensor] = None
        for _ in range(self.iterations):
            image, hidden = checkpointed(self, self.iteration, image, hidden, physics, enabled=self.checkpointing)
        return image
