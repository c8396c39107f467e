"""KIKI-Net (Eo et al. 2018): alternating k-space and image-domain CNNs.

One iteration is a K-net on the two-channel k-space (residual), data consistency
in k-space, the inverse FFT, an I-net on the image (residual), and data
consistency. Two iterations with four separate CNNs, each of 5 convolutions of
128 features with bias and ReLU between (2 -> 128 -> 128 -> 128 -> 128 -> 2),
give 4 x 447,490 = 1,789,960 parameters, the paper's 1.790 M. The FFTs and both
data-consistency steps are the shared ones of :class:`oucr.physics.SingleCoilMRI`.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.layers import conv_stack
from oucr.models.base import ReconModel
from oucr.physics import SingleCoilMRI


class KIKINet(ReconModel):
    """KIKI-Net.

    Args:
        features: channels of the hidden convolutions (paper 128).
        convs: convolutions per CNN (paper 5).
        iterations: K-net/I-net pairs, no weight sharing (paper 2).
    """

    def __init__(self, features: int = 128, convs: int = 5, iterations: int = 2) -> None:
        super().__init__()
        if convs < 2 or iterations < 1 or features < 1:
            raise ValueError("KIKINet needs convs >= 2, iterations >= 1 and positive features")
        channels = [2] + [features] * (convs - 1) + [2]
        self.k_nets = nn.ModuleList(conv_stack(channels, "relu") for _ in range(iterations))
        self.i_nets = nn.ModuleList(conv_stack(channels, "relu") for _ in range(iterations))

    def reconstruct(self, image: torch.Tensor, physics: SingleCoilMRI) -> torch.Tensor:  # noqa: D102
        x = image
        for k_net, i_net in zip(self.k_nets, self.i_nets):
            k = physics.image_to_kspace(x)
            k = physics.kspace_data_consistency(k + k_net(k))
            x = physics.kspace_to_image(k)
            x = physics.data_consistency(x + i_net(x))
        return x
