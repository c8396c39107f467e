"""D5C5: the deep cascade of CNNs of Schlemper et al. (2017), 5 cascades of 5 convolutions.

Each cascade is a plain CNN of ``convs`` 3 x 3 convolutions with bias and
LeakyReLU(0.01) between them, added to its input (residual), followed by the
shared data-consistency layer: ``x <- DC(x + CNN_i(x))``. Cascades do not share
weights.

Configuration reproducing the paper's 2.237 M parameters (``D5C5(features=128,
convs=5, cascades=5)``, the defaults): 5 cascades of 2 -> 128 -> 128 -> 128 -> 128
-> 2, 5 x 447,490 = 2,237,450. Any image size works.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.layers import checkpointed, conv_stack
from oucr.models.base import ReconModel
from oucr.physics import SingleCoilMRI


class D5C5(ReconModel):
    """Deep cascade: ``x <- DC(x + CNN_i(x))`` for i = 1..cascades.

    Args:
        features: channels of the hidden convolutions (paper 128).
        convs: convolutions per cascade (paper 5).
        cascades: number of cascades (paper 5).
        checkpointing: recompute each cascade's activations in the backward pass.
    """

    def __init__(self, features: int = 128, convs: int = 5, cascades: int = 5, checkpointing: bool = False) -> None:
        super().__init__()
        if convs < 2 or cascades < 1 or features < 1:
            raise ValueError(
                f"D5C5 needs convs >= 2, cascades >= 1 and features >= 1, got {convs}, {cascades}, {features}"
            )
        channels = [2] + [features] * (convs - 1) + [2]
        self.cascades = nn.ModuleList(conv_stack(channels, "leaky_relu") for _ in range(cascades))
        self.checkpointing = checkpointing

    def reconstruct(self, image: torch.Tensor, physics: SingleCoilMRI) -> torch.Tensor:  # noqa: D102
        x = image
        for cnn in self.cascades:
            x = physics.data_consistency(x + checkpointed(self, cnn, x, enabled=self.checkpointing))
        return x
