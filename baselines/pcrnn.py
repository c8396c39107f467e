"""PC-RNN: the pyramid convolutional RNN of Chen, Wang et al. (2019/2021), re-implemented.

No public code of PC-RNN exists anywhere, so every detail below that the paper's
text does not give is a guess, chosen to be simple and to come close to the
OUCR paper's 1.482 M parameters. Three ConvRNN modules work at scales 4, 2 and
1, coarse to fine, each refining the previous module's output for
``iterations`` unrolled steps with weights shared across steps (not across
modules). One step of a module::

    f = PReLU(encoder(x))               strided conv 2 -> F to the module's scale
    h = ConvGRU(f, h)                   h starts at zero
    h = ResBlocks(h)                    res_blocks x (conv-PReLU-conv + skip)
    x = DC(x + decoder(h))              transposed conv F -> 2 back to full size

with encoder/decoder kernels 8 / 4 / 3 and strides 4 / 2 / 1. A final CNN on the
concatenated outputs of the three modules (6 -> F -> F -> F -> F -> 2, PReLU
between) followed by data consistency gives the result. All PReLUs have one slope
per channel; all convolutions are 3 x 3 with a bias unless stated.

From the paper's text:

* three ConvRNN modules, each reconstructing the image at its own scale (4, 2 and 1),
  learning iteratively, in a coarse-to-fine order;
* residual blocks inside the recurrent cell;
* data consistency with the measured k-space;
* a final CNN that combines the modules' reconstructions (their concatenation).

Guesses (no public code to check them against):

* the recurrent unit: a ConvGRU with 3 x 3 convolutions (reset and update gates from
  one conv 2F -> 2F, candidate conv 2F -> F), hidden state starting at zero and kept
  across the steps of one module only;
* the residual blocks: their number (3) and form (conv-PReLU-conv plus skip, no
  normalisation);
* the resampling: one strided convolution down and one transposed convolution up,
  kernel sizes 8 / 4 / 3 with strides 4 / 2 / 1;
* the width F = 64 and the unrolled steps per module (5, the OUCR paper's J);
* each module starting from the previous module's output, the residual
  ``x + decoder(h)`` and DC after every step (not only after each module);
* the final CNN's depth (5 convolutions of F features);
* PReLU placement: after the encoder, inside the residual blocks and between the
  final CNN's convolutions; none around the GRU, whose gates use sigmoid and tanh.

Parameter count: ``PCRNN(features=64, res_blocks=3, iterations=5)`` (the defaults)
has 1,468,296 parameters, -0.92 % from the paper's 1.482 M. The count is most
sensitive to the guesses above: with four final convolutions the model has
1,431,304 (-3.4 %), and without a gated unit (``h = PReLU(enc(x) + cell(h))``, as
OUCR) about 0.77 M; the fifth final convolution is what brings the ConvGRU design
within 1 %.

Image sizes must be multiples of the largest stride (4).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from baselines.layers import checkpointed, conv_stack
from oucr.models.base import ReconModel
from oucr.physics import SingleCoilMRI


class ConvGRU(nn.Module):
    """Convolutional GRU cell with 3 x 3 gates: input and hidden state both have ``features`` channels."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.gates = nn.Conv2d(2 * features, 2 * features, 3, padding=1)
        self.candidate = nn.Conv2d(2 * features, features, 3, padding=1)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:  # noqa: D102
        reset, update = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        candidate = torch.tanh(self.candidate(torch.cat([x, reset * h], dim=1)))
        return h + update * (candidate - h)  # (1 - update) * h + update * candidate


class ResBlock(nn.Module):
    """``x + conv(PReLU(conv(x)))``."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.body = conv_stack([features, features, features], "prelu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x + self.body(x)


class ConvRNNModule(nn.Module):
    """One pyramid level: encoder to scale ``1 / stride``, ConvGRU + residual blocks, decoder, DC.

    Args:
        features: hidden channels.
        kernel, stride: encoder/decoder kernel size and stride (``kernel - stride`` even).
        res_blocks: residual blocks after each GRU update.
        iterations: unrolled steps (shared weights).
        checkpointing: recompute each step's activations in the backward pass.
    """

    def __init__(
        self, features: int, kernel: int, stride: int, res_blocks: int, iterations: int, checkpointing: bool = False
    ) -> None:
        super().__init__()
        pad = (kernel - stride) // 2
        self.encoder = nn.Sequential(nn.Conv2d(2, features, kernel, stride=stride, padding=pad), nn.PReLU(features))
        self.gru = ConvGRU(features)
        self.cell = nn.Sequential(*[ResBlock(features) for _ in range(res_blocks)])
        self.decoder = nn.ConvTranspose2d(features, 2, kernel, stride=stride, padding=pad)
        self.iterations = iterations
        self.checkpointing = checkpointing

    def forward(self, image: torch.Tensor, physics: SingleCoilMRI) -> torch.Tensor:  # noqa: D102
        x, hidden = image, None
        for _ in range(self.iterations):
            x, hidden = checkpointed(self, lambda a, h: self._step(a, h, physics), x, hidden,
                                     enabled=self.checkpointing)
        return x

    def _step(
        self, x: torch.Tensor, hidden: Optional[torch.Tensor], physics: SingleCoilMRI
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder(x)
        hidden = self.gru(features, torch.zeros_like(features) if hidden is None else hidden)
        hidden = self.cell(hidden)
        x = physics.data_consistency(x + self.decoder(hidden, output_size=x.shape[-2:]))
        return x, hidden


class PCRNN(ReconModel):
    """Pyramid convolutional RNN.

    Args:
        features: hidden channels of every module (64).
        res_blocks: residual blocks after each GRU update (3).
        iterations: unrolled steps per module (5).
        kernels, strides: encoder/decoder kernel sizes and strides, one per pyramid level,
            coarse to fine ((8, 4, 3) and (4, 2, 1)).
        final_features: channels of the final CNN (default ``features``; 64).
        final_convs: convolutions of the final CNN (5).
        checkpointing: recompute each step's activations in the backward pass.
    """

    def __init__(
        self,
        features: int = 64,
        res_blocks: int = 3,
        iterations: int = 5,
        kernels: Sequence[int] = (8, 4, 3),
        strides: Sequence[int] = (4, 2, 1),
        final_features: Optional[int] = None,
        final_convs: int = 5,
        checkpointing: bool = False,
    ) -> None:
        super().__init__()
        final_features = features if final_features is None else final_features
        if features < 1 or final_features < 1 or iterations < 1 or res_blocks < 0 or final_convs < 1:
            raise ValueError(
                "PCRNN needs features, final_features, iterations, final_convs >= 1 and res_blocks >= 0"
            )
        if len(kernels) != len(strides) or not kernels:
            raise ValueError(f"kernels {tuple(kernels)} and strides {tuple(strides)} need one entry per pyramid level")
        for k, s in zip(kernels, strides):
            if s < 1 or k < s or (k - s) % 2:
                raise ValueError(
                    f"kernel {k} and stride {s}: need 1 <= stride <= kernel with an even difference (exact resampling)"
                )
        self.size_multiple = max(strides)  # type: ignore[misc]
        self.levels = nn.ModuleList(
            ConvRNNModule(features, k, s, res_blocks, iterations, checkpointing) for k, s in zip(kernels, strides)
        )
        self.final = conv_stack([2 * len(kernels)] + [final_features] * (final_convs - 1) + [2], "prelu")

    def reconstruct(self, image: torch.Tensor, physics: SingleCoilMRI) -> torch.Tensor:  # noqa: D102
        outputs: List[torch.Tensor] = []
        x = image
        for level in self.levels:
            x = level(x, physics)
            outputs.append(x)
        return physics.data_consistency(self.final(torch.cat(outputs, dim=1)))
