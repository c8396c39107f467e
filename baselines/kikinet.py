"""KIKI-Net (Eo et al. 2018): alternating k-space and image-domain CNNs.

One iteration::

    k = F(x)                       physics.image_to_kspace
    k = DC_k(k + K-net(k))         physics.kspace_data_consistency
    x = F^-1(k)                    physics.kspace_to_image
    x = DC(x + I-net(x))           physics.data_consistency

Both CNNs are residual: the I-net as in the original, and the K-net too, so that
each starts as the identity on its input instead of having to learn to pass
the (large, centre-peaked) k-space through; the parameter count is the same.
The FFTs and both data-consistency steps are the shared ones of
:class:`oucr.physics.SingleCoilMRI`.

Configuration reproducing the paper's 1.790 M parameters (``KIKINet(features=128,
convs=5, iterations=2)``, the defaults): two iterations with four separate CNNs,
each of 5 convolutions 3 x 3 of 128 features with bias and ReLU between
(2 -> 128 -> 128 -> 128 -> 128 -> 2): 4 x 447,490 = 1,789,960. Any image size works.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.layers import checkpointed, conv_stack
from oucr.models.base import ReconModel
from oucr.physics import SingleCoilMRI


class KIKINet(ReconModel):
    """KIKI-Net.

    Args:
        features: channels of the hidden convolutions (paper 128).
        convs: convolutions per CNN (paper 5).
        iterations: K-net/I-net pairs, no weight sharing (paper 2).
        checkpointing: recompute each CNN's activations in the backward pass.
    """

    def __init__(self, features: int = 128, convs: int = 5, iterations: int = 2, checkpointing: bool = False) -> None:
        super().__init__()
        if convs < 2 or iterations < 1 or features < 1:
            raise ValueError(
                f"KIKINet needs convs >= 2, iterations >= 1 and features >= 1, got {convs}, {iterations}, {features}"
            )
        channels = [2] + [features] * (convs - 1) + [2]
        self.k_nets = nn.ModuleList(conv_stack(channels, "relu") for _ in range(iterations))
        self.i_nets = nn.ModuleList(conv_stack(channels, "relu") for _ in range(iterations))
        self.checkpointing = checkpointing

    def reconstruct(self, image: torch.Tensor, physics: SingleCoilMRI) -> torch.Tensor:  # noqa: D102
        x = image
        for k_net, i_net in zip(self.k_nets, self.i_nets):
            k = physics.image_to_kspace(x)
            k = physics.kspace_data_consistency(k + checkpointed(self, k_net, k, enabled=self.checkpointing))
            x = physics.kspace_to_image(k)
            x = physics.data_consistency(x + checkpointed(self, i_net, x, enabled=self.checkpointing))
        return x
