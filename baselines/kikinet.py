"""KIKI-Net (Eo et al. 2018): alternating k-space and image-domain CNNs.

One iteration, as in Eo et al. and in Z. Ramzi's re-implementation (``kiki_net`` of
fastmri-reproducible-benchmark, ``fastmri_recon/models/functional_models/kiki.py``)::

    k = F(x)                       physics.image_to_kspace
    k = K-net(k)                   plain CNN on the two-channel k-space: no residual, no DC
    x = F^-1(k)                    physics.kspace_to_image
    x = DC(x + I-net(x))           residual CNN in the image, then physics.data_consistency

repeated ``iterations`` times with separate weights. The first K-net sees the
measured (zero-filled) k-space. Data consistency is applied after each I-net
only; the FFTs and DC are the shared ones of :class:`oucr.physics.SingleCoilMRI`.

Configuration reproducing the paper's 1.790 M parameters (``KIKINet(features=128,
convs=5, iterations=2)``, the defaults): two iterations with four separate CNNs,
each of 5 convolutions 3 x 3 of 128 features with bias and ReLU between
(2 -> 128 -> 128 -> 128 -> 128 -> 2): 4 x 447,490 = 1,789,960. (Ramzi's code ends
each CNN with a 1 x 1 convolution; 3 x 3 is what gives the paper's count.) Any
image size works.

A known property of this design (measured, see ``docs/baselines.md``): the K-net
is evaluated everywhere in k-space, including the large unmeasured, almost-zero
periphery, where its output is close to its response to a zero input, a constant
set by its biases. The centred inverse FFT maps a constant ``c`` over k-space to a
single spike ``c * sqrt(H * W)`` at the image centre, and DC keeps the part of it
that falls on unmeasured columns. The I-net has to learn to cancel it; untrained
or briefly trained KIKI-Nets therefore show a bright (or, with the other sign,
dark) pixel at the image centre: at 64 x 64, 1.2-3.6x its neighbourhood when
freshly initialised and 1.1-1.5x after 300 training steps, gone when the K-net
biases are zeroed. It follows from the topology (a plain CNN over the whole
k-space), so it is kept.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.layers import checkpointed, conv_stack
from oucr.models.base import ReconModel
from oucr.physics import SingleCoilMRI


class KIKINet(ReconModel):
    """KIKI-Net: ``iterations`` x (K-net on k-space, inverse FFT, residual I-net, DC).

    Args:
        features: channels of the hidden convolutions (paper 128).
        convs: convolutions per CNN (paper 5).
        iterations: K-net/I-net pairs, no weight sharing (paper 2).
        checkpointing: recompute each CNN's activations in the backward pass.

    Raises:
        ValueError: for ``convs < 2``, ``iterations < 1`` or ``features < 1``.
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
            k = checkpointed(self, k_net, physics.image_to_kspace(x), enabled=self.checkpointing)
            x = physics.kspace_to_image(k)
            x = physics.data_consistency(x + checkpointed(self, i_net, x, enabled=self.checkpointing))
        return x
