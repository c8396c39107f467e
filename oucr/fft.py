"""Centred, orthonormal 2-D Fourier transforms and complex-array helpers.

This module is the single implementation of the FFT used by every method in the
project (networks, CS, data preparation, evaluation). The convention is the one
of fastMRI: the DC component sits at the centre of k-space (``ifftshift`` before
and ``fftshift`` after the transform) and the transform is unitary
(``norm="ortho"``), so ``||F x|| = ||x||``.

Every function accepts either a :class:`numpy.ndarray` or a :class:`torch.Tensor`
and returns the same type. Complex data is held in complex dtypes; the
conversions to and from the two-channel real representation that the networks
use are :func:`complex_to_channels` and :func:`channels_to_complex`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence, Tuple, TypeVar, Union

import numpy as np

if TYPE_CHECKING:
    import torch

# torch is imported only when a tensor is passed, so NumPy-only steps (data
# preparation, CS, evaluation) start without paying for the torch import.
Array = TypeVar("Array", np.ndarray, "torch.Tensor")
ArrayLike = Union[np.ndarray, "torch.Tensor"]

_DIMS: Tuple[int, int] = (-2, -1)


def fft2c(x: Array) -> Array:
    """Centred orthonormal 2-D FFT over the last two axes (image -> k-space).

    Args:
        x: complex array or tensor, shape ``(..., H, W)``.

    Returns:
        k-space of the same shape and type.
    """
    _check_ndim(x, 2, "fft2c")
    if not isinstance(x, np.ndarray):
        import torch

        x = torch.fft.ifftshift(x, dim=_DIMS)
        x = torch.fft.fftn(x, dim=_DIMS, norm="ortho")
        return torch.fft.fftshift(x, dim=_DIMS)
    x = np.fft.ifftshift(x, axes=_DIMS)
    x = np.fft.fftn(x, axes=_DIMS, norm="ortho")
    return np.fft.fftshift(x, axes=_DIMS)


def ifft2c(k: Array) -> Array:
    """Centred orthonormal 2-D inverse FFT over the last two axes (k-space -> image).

    Args:
        k: complex array or tensor, shape ``(..., H, W)``.

    Returns:
        image of the same shape and type.
    """
    _check_ndim(k, 2, "ifft2c")
    if not isinstance(k, np.ndarray):
        import torch

        k = torch.fft.ifftshift(k, dim=_DIMS)
        k = torch.fft.ifftn(k, dim=_DIMS, norm="ortho")
        return torch.fft.fftshift(k, dim=_DIMS)
    k = np.fft.ifftshift(k, axes=_DIMS)
    k = np.fft.ifftn(k, axes=_DIMS, norm="ortho")
    return np.fft.fftshift(k, axes=_DIMS)


def fft2(x: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """Orthonormal 2-D FFT over the last two axes *without* the centring shifts (NumPy only).

    The same transform as :func:`fft2c` in the uncentred index order:
    ``fft2c(x) == fftshift(fft2(ifftshift(x)))`` (:func:`uncentred`, :func:`centred`). Iterative
    solvers (CS) move to the uncentred domain once and then pay no shift per iteration.

    Args:
        x: complex array ``(..., H, W)``.
        overwrite: allow the transform to reuse ``x``'s memory (``x`` is then garbage).
    """
    import scipy.fft

    return scipy.fft.fft2(x, axes=_DIMS, norm="ortho", workers=1, overwrite_x=overwrite)


def ifft2(k: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """Inverse of :func:`fft2` (orthonormal, uncentred, NumPy only)."""
    import scipy.fft

    return scipy.fft.ifft2(k, axes=_DIMS, norm="ortho", workers=1, overwrite_x=overwrite)


def uncentred(x: np.ndarray) -> np.ndarray:
    """Centred (DC in the middle) -> uncentred order over the last two axes (``ifftshift``)."""
    return np.fft.ifftshift(x, axes=_DIMS)


def centred(x: np.ndarray) -> np.ndarray:
    """Uncentred -> centred order over the last two axes (``fftshift``); the inverse of :func:`uncentred`."""
    return np.fft.fftshift(x, axes=_DIMS)


def center_crop(x: Array, shape: Sequence[int]) -> Array:
    """Crop the centre of the last two axes (works on complex and real data).

    The crop window starts at ``(H - h) // 2``, fastMRI's convention, so that
    cropping and the FFT shift conventions agree.

    Args:
        x: array or tensor, shape ``(..., H, W)``.
        shape: target ``(h, w)``, each no larger than the input.

    Returns:
        view of shape ``(..., h, w)``.

    Raises:
        ValueError: if the target is larger than the input.
    """
    _check_ndim(x, 2, "center_crop")
    h, w = int(shape[0]), int(shape[1])
    H, W = x.shape[-2], x.shape[-1]
    if h > H or w > W or h < 1 or w < 1:
        raise ValueError(
            f"cannot centre-crop an image of size {H} x {W} to {h} x {w}: "
            "the crop size must be positive and no larger than the data"
        )
    top = (H - h) // 2
    left = (W - w) // 2
    return x[..., top : top + h, left : left + w]


def complex_to_channels(x: "torch.Tensor") -> "torch.Tensor":
    """Complex ``(B, H, W)`` -> real two-channel ``(B, 2, H, W)`` (real, imaginary)."""
    import torch

    if not torch.is_complex(x):
        raise TypeError(f"expected a complex tensor, got dtype {x.dtype}")
    _check_ndim(x, 3, "complex_to_channels")
    return torch.stack((x.real, x.imag), dim=-3)


def channels_to_complex(x: "torch.Tensor") -> "torch.Tensor":
    """Real two-channel ``(B, 2, H, W)`` -> complex ``(B, H, W)``."""
    import torch

    _check_ndim(x, 4, "channels_to_complex")
    if x.shape[-3] != 2:
        raise ValueError(f"expected 2 channels (real, imaginary) at dim -3, got shape {tuple(x.shape)}")
    if torch.is_complex(x):
        raise TypeError("expected a real tensor with 2 channels, got a complex tensor")
    x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    return torch.complex(x[..., 0, :, :], x[..., 1, :, :])


def magnitude_channels(x: "torch.Tensor") -> "torch.Tensor":
    """Magnitude of a two-channel image ``(B, 2, H, W)`` -> ``(B, H, W)``."""
    import torch

    if x.shape[-3] != 2:
        raise ValueError(f"expected 2 channels at dim -3, got shape {tuple(x.shape)}")
    return torch.sqrt(x[..., 0, :, :] ** 2 + x[..., 1, :, :] ** 2)


def _check_ndim(x: ArrayLike, minimum: int, where: str) -> None:
    if x.ndim < minimum:
        raise ValueError(f"{where}: expected at least {minimum} dimensions, got shape {tuple(x.shape)}")
