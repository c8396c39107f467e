"""PC-RNN: the pyramid convolutional RNN of Chen, Wang et al. (2021), re-implemented.

No public code exists; this follows the paper's description. Three ConvRNN
modules work at scales 4, 2 and 1, coarse to fine, each refining the previous
module's output for ``iterations`` unrolled steps with shared weights:

* encoder: a strided convolution (2 -> 64 features, kernel 8 / 4 / 3, stride
  4 / 2 / 1) + PReLU to the module's scale;
* recurrent unit: a convolutional GRU (3 x 3 gates) on the hidden state, followed
  by ``res_blocks`` residual blocks (conv-PReLU-conv + skip);
* decoder: a transposed convolution back to two channels at full resolution,
  added to the module's input (residual), then data consistency.

A final CNN on the concatenated outputs of the three modules
(6 -> 64 -> 64 -> 64 -> 64 -> 2, PReLU between) followed by data consistency
gives the result. All activations are channel-wise PReLUs.

Parameter count: 1,468,296 at the defaults (64 features, 3 residual blocks,
final CNN of 5 convolutions), -0.93 % from the paper's 1.482 M. (With a
four-convolution final CNN the count is 1,431,304, -3.4 %; the extra final
convolution brings it within 1 %.)
"""

from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn

from baselines.layers import conv_stack
from oucr.models.base import ReconModel
from oucr.physics import SingleCoilMRI


class ConvGRU(nn.Module):
    """Convolutional GRU cell with 3 x 3 gates."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.gates = nn.Conv2d(2 * features, 2 * features, 3, padding=1)
        self.candidate = nn.Conv2d(2 * features, features, 3, padding=1)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:  # noqa: D102
        reset, update = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        candidate = torch.tanh(self.candidate(torch.cat([x, reset * h], dim=1)))
        return (1 - update) * h + update * candidate


class ResBlock(nn.Module):
    """``x + conv(PReLU(conv(x)))``."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.body = conv_stack([features, features, features], "prelu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x + self.body(x)


class ConvRNNModule(nn.Module):
    """One pyramid level: encoder to scale ``stride``, ConvGRU + residual blocks, decoder."""

    def __init__(self, features: int, kernel: int, stride: int, res_blocks: int, iterations: int) -> None:
        super().__init__()
        pad = (kernel - stride) // 2
        self.encoder = nn.Sequential(nn.Conv2d(2, features, kernel, stride=stride, padding=pad), nn.PReLU(features))
        self.gru = ConvGRU(features)
        self.cell = nn.Sequential(*[ResBlock(features) for _ in range(res_blocks)])
        self.decoder = nn.ConvTranspose2d(features, 2, kernel, stride=stride, padding=pad)
        self.stride = stride
        self.iterations = iterations

    def forward(self, image: torch.Tensor, physics: SingleCoilMRI) -> torch.Tensor:  # noqa: D102
        x = image
        hidden = None
        for _ in range(self.iterations):
            features = self.encoder(x)
            hidden = self.gru(features, hidden if hidden is not None else torch.zeros_like(features))
            hidden = self.cell(hidden)
            x = physics.data_consistency(x + self.decoder(hidden, output_size=x.shape[-2:]))
        return x


class PCRNN(ReconModel):
    """Pyramid convolutional RNN.

    Args:
        features: hidden channels of every module (64).
        res_blocks: residual blocks after each GRU update (3).
        iterations: unrolled steps per module (5, as the paper's J).
        kernels, strides: encoder/decoder kernel sizes and strides per level.
        final_features: channels of the final CNN (64).
        final_convs: convolutions of the final CNN (5).
    """

    def __init__(
        self,
        features: int = 64,
        res_blocks: int = 3,
        iterations: int = 5,
        kernels: Sequence[int] = (8, 4, 3),
        strides: Sequence[int] = (4, 2, 1),
        final_features: int = 64,
        final_convs: int = 5,
    ) -> None:
        super().__init__()
        if len(kernels) != len(strides):
            raise ValueError("kernels and strides need one entry per pyramid level")
        for k, s in zip(kernels, strides):
            if (k - s) % 2:
                raise ValueError(f"kernel {k} and stride {s} must differ by an even number (exact resampling)")
        self.size_multiple = max(strides)  # type: ignore[misc]
        self.levels = nn.ModuleList(
            ConvRNNModule(features, k, s, res_blocks, iterations) for k, s in zip(kernels, strides)
        )
        self.final = conv_stack([2 * len(kernels)] + [final_features] * (final_convs - 1) + [2], "prelu")

    def reconstruct(self, image: torch.Tensor, physics: SingleCoilMRI) -> torch.Tensor:  # noqa: D102
        outputs: List[torch.Tensor] = []
        x = image
        for level in self.levels:
            x = level(x, physics)
            outputs.append(x)
        return physics.data_consistency(self.final(torch.cat(outputs, dim=1)))
