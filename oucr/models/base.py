"""The one interface every reconstruction network implements.

A method maps the (normalised) zero-filled image and the acquisition to a
reconstruction::

    out = model(image, physics)   # image, out: (B, 2, H, W) real/imaginary channels

where ``physics`` is the :class:`oucr.physics.SingleCoilMRI` operator holding the
mask and the measured k-space. Every network ends with
``physics.data_consistency``. The trainer, the reconstruction step and the
benchmark only ever call this interface, so they never need to know which model
they drive.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from oucr.physics import SingleCoilMRI


class ReconModel(nn.Module):
    """Base class of every reconstruction network.

    Subclasses set :attr:`size_multiple` to the factor that the image height and
    width must be divisible by (2 ** number of poolings), and implement
    :meth:`reconstruct`. :meth:`forward` checks the inputs first, so a bad size
    fails with a clear message instead of a shape error deep in the network.
    """

    #: image height and width must be multiples of this
    size_multiple: ClassVar[int] = 1

    def forward(self, image: torch.Tensor, physics: SingleCoilMRI) -> torch.Tensor:  # noqa: D102
        self.check_input(image, physics)
        return self.reconstruct(image, physics)

    def reconstruct(self, image: torch.Tensor, physics: SingleCoilMRI) -> torch.Tensor:
        """Map ``image`` ``(B, 2, H, W)`` to the reconstruction ``(B, 2, H, W)``."""
        raise NotImplementedError

    def check_input(self, image: torch.Tensor, physics: SingleCoilMRI) -> None:
        """Raise ``ValueError`` on inputs this network cannot process."""
        if image.ndim != 4 or image.shape[1] != 2:
            raise ValueError(
                f"{type(self).__name__} expects a two-channel image (B, 2, H, W), got shape {tuple(image.shape)}"
            )
        h, w = image.shape[-2:]
        m = self.size_multiple
        if h % m or w % m:
            raise ValueError(
                f"{type(self).__name__} needs image height and width divisible by {m} "
                f"(its pooling depth), got {h} x {w}; crop or pad the data to a multiple of {m}"
            )
        if tuple(physics.shape[-2:]) != (h, w) or physics.shape[0] != image.shape[0]:
            raise ValueError(
                f"image shape {tuple(image.shape)} does not match the k-space shape {physics.shape}"
            )

    def reference_parameter_count(self) -> int:
        """Parameter count as the method's public reference code counts it.

        This is the number a paper quoting the reference implementation reports. By
        default it is :func:`count_parameters` of this model; a method whose reference
        code defines layers that its forward pass never uses (and that are therefore
        not built here) overrides it to add them.

        Returns:
            the count; ``count_parameters(self)`` gives the parameters actually used.
        """
        return count_parameters(self)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
