"""The single-coil Cartesian MRI forward model, shared by every method.

The forward operator ``A = M F`` (a binary column mask ``M`` after the centred
orthonormal FFT ``F``) is one object, :class:`SingleCoilMRI`. Networks receive it
and call :meth:`SingleCoilMRI.data_consistency`; none re-implements the FFT or the
data-consistency step. The same functions serve NumPy code (data preparation, CS)
through :func:`data_consistency` and :func:`zero_filled`.

Data consistency is the hard (noise-free) projection of the paper's Eq. 4::

    k = (1 - m) * F(x) + m * k0,     x_dc = F^-1(k)

Normalisation follows the OUCR lineage: every tensor of a slice is divided by
the mean magnitude of its zero-filled image (:func:`normalisation_factor`), and the
network output is multiplied back (:func:`denormalise`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Tuple, Union

import numpy as np

from oucr.fft import ArrayLike, channels_to_complex, complex_to_channels, fft2c, ifft2c

if TYPE_CHECKING:  # torch is imported where a tensor is handled, so that NumPy-only steps
    import torch   # (CS, evaluation, data preparation) start without paying for it

_EPS = 1e-12


def apply_mask(kspace: ArrayLike, mask: ArrayLike) -> ArrayLike:
    """Zero the k-space samples where ``mask`` is 0.

    Args:
        kspace: complex ``(..., H, W)``.
        mask: 0/1 values broadcastable to ``kspace`` (e.g. ``(..., 1, W)`` for columns).

    Returns:
        masked k-space, same type and shape as ``kspace``.
    """
    return kspace * mask


def zero_filled(masked_kspace: ArrayLike) -> ArrayLike:
    """Zero-filled reconstruction: the inverse FFT of the masked k-space."""
    return ifft2c(masked_kspace)


def data_consistency(image: ArrayLike, measured_kspace: ArrayLike, mask: ArrayLike) -> ArrayLike:
    """Replace the sampled k-space locations of ``image`` by the measurements.

    Args:
        image: complex image ``(..., H, W)``.
        measured_kspace: complex measured k-space ``(..., H, W)`` (zero where not sampled).
        mask: 0/1 mask broadcastable to the k-space.

    Returns:
        complex image whose k-space equals ``measured_kspace`` where ``mask`` is 1.
    """
    k = fft2c(image)
    k = (1 - mask) * k + mask * measured_kspace
    return ifft2c(k)


def mean_magnitude(image: ArrayLike) -> Union[float, torch.Tensor]:
    """Mean magnitude over the last two axes, never below a tiny positive value.

    Applied to a zero-filled image this is the normalisation factor of
    :func:`normalisation_factor`.
    """
    if not isinstance(image, np.ndarray):  # a tensor
        return image.abs().mean(dim=(-2, -1)).clamp_min(_EPS)
    return max(float(np.abs(image).mean()), _EPS)


def normalisation_factor(masked_kspace: ArrayLike) -> Union[float, torch.Tensor]:
    """Mean magnitude of the zero-filled image, the OUCR lineage's scale.

    Args:
        masked_kspace: complex ``(H, W)`` (returns a float) or ``(B, H, W)``
            tensor (returns a ``(B,)`` tensor).

    Returns:
        the factor, never below a tiny positive value so that dividing is safe.
    """
    return mean_magnitude(zero_filled(masked_kspace))


def measurement_noise(masked_kspace: np.ndarray, mask: np.ndarray, snr_db: float, seed: object) -> np.ndarray:
    """Complex Gaussian noise on the sampled k-space locations at a stated SNR.

    The SNR is ``10 log10(mean |k|^2 / sigma^2)`` over the sampled locations of the
    slice, ``sigma^2`` the variance of the complex noise (``sigma^2 / 2`` per real and
    imaginary part); unsampled locations get no noise. The draw depends only on
    ``seed`` (any value :func:`oucr.seeding.derive_seed` accepts, e.g. the volume name
    and slice), so every method sees the same noisy measurement.

    Args:
        masked_kspace: complex ``(H, W)`` measured k-space (zeros where not sampled).
        mask: 0/1 column mask broadcastable to it.
        snr_db: the SNR in dB.
        seed: identifies the draw.

    Returns:
        the noise, complex64 ``(H, W)`` (zero where not sampled).
    """
    from oucr.seeding import derive_seed

    k = np.asarray(masked_kspace)
    m = np.broadcast_to(np.asarray(mask), k.shape)
    sampled = m > 0
    if not sampled.any():
        raise ValueError("the mask samples nothing: no SNR can be defined")
    power = float(np.mean(np.abs(k[sampled]) ** 2))
    sigma = np.sqrt(power / 10 ** (snr_db / 10))
    rng = np.random.default_rng(derive_seed("measurement-noise", seed))
    noise = (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape)) * (sigma / np.sqrt(2))
    return (noise * m).astype(np.complex64)


def noise_seed(volume: str, slice_index: int) -> Tuple[str, int]:
    """What identifies the measurement-noise draw of one slice (the same for every method)."""
    return (str(volume), int(slice_index))


def normalised_measurement(
    kspace: ArrayLike, mask: ArrayLike, noise: Optional[Tuple[float, object]] = None
) -> Tuple[ArrayLike, float]:
    """One slice's measurement as every method sees it: masked k-space over the normalisation factor.

    The networks' dataset and the CS baseline both call this, so that they
    undersample, perturb and scale a slice identically.

    Args:
        kspace: fully sampled complex k-space ``(H, W)`` (array or tensor).
        mask: 0/1 column mask broadcastable to it (``(W,)`` or ``(1, W)``).
        noise: ``(snr_db, seed)`` to add :func:`measurement_noise` to the sampled
            k-space before normalising (the robustness analysis), or None.

    Returns:
        ``(masked k-space / norm, norm)`` with ``norm`` = :func:`normalisation_factor` of the
        (noisy) masked k-space, as a float.

    Raises:
        ValueError: for k-space that is not a single 2-D slice.
    """
    if kspace.ndim != 2:
        raise ValueError(f"expected one (H, W) k-space slice, got shape {tuple(kspace.shape)}")
    masked = apply_mask(kspace, mask)
    if noise is not None:
        snr_db, seed = noise
        if not isinstance(masked, np.ndarray):  # a tensor
            import torch

            extra = measurement_noise(masked.numpy(), np.asarray(mask), snr_db, seed)
            masked = masked + torch.from_numpy(extra)
        else:
            masked = masked + measurement_noise(masked, mask, snr_db, seed)
    norm = float(normalisation_factor(masked))
    return masked / norm, norm


def denormalise(x: ArrayLike, norm: Union[float, ArrayLike]) -> ArrayLike:
    """Undo :func:`normalisation_factor` scaling: multiply by ``norm``.

    A per-slice ``(B,)`` tensor of factors is broadcast over the trailing axes.
    """
    if not isinstance(norm, (float, int, np.ndarray)) and norm.ndim == 1 and not isinstance(x, np.ndarray):
        norm = norm.reshape((-1,) + (1,) * (x.ndim - 1))
    return x * norm


class SingleCoilMRI:
    """Cartesian single-coil acquisition ``y = M F x`` for a batch of slices.

    Args:
        measured_kspace: complex tensor ``(B, H, W)``, zero where not sampled.
        mask: real tensor of 0/1 broadcastable to ``(B, H, W)``; column masks are
            ``(B, 1, W)``.

    Raises:
        ValueError: on shape or dtype mismatches.
    """

    def __init__(self, measured_kspace: torch.Tensor, mask: torch.Tensor) -> None:
        import torch

        if not torch.is_complex(measured_kspace) or measured_kspace.ndim != 3:
            raise ValueError(
                "measured_kspace must be a complex tensor shaped (B, H, W), "
                f"got dtype {measured_kspace.dtype} shape {tuple(measured_kspace.shape)}"
            )
        if torch.is_complex(mask):
            raise ValueError("mask must be real-valued (0/1)")
        try:
            torch.broadcast_shapes(mask.shape, measured_kspace.shape)
        except RuntimeError as err:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not broadcast to k-space {tuple(measured_kspace.shape)}"
            ) from err
        self.mask = mask.to(dtype=measured_kspace.real.dtype)
        self.measured_kspace = measured_kspace * self.mask

    @property
    def shape(self) -> Tuple[int, int, int]:
        """Shape ``(B, H, W)`` of the k-space."""
        return tuple(self.measured_kspace.shape)  # type: ignore[return-value]

    def to(self, device: Union[str, torch.device]) -> "SingleCoilMRI":
        """The same operator on another device."""
        return SingleCoilMRI(self.measured_kspace.to(device), self.mask.to(device))

    # Forward model -----------------------------------------------------------------
    def A(self, image: torch.Tensor) -> torch.Tensor:
        """Complex image ``(B, H, W)`` -> masked k-space ``(B, H, W)``."""
        return apply_mask(fft2c(image), self.mask)

    def A_adjoint(self, kspace: torch.Tensor) -> torch.Tensor:
        """Masked k-space -> image (the adjoint of :meth:`A`)."""
        return ifft2c(apply_mask(kspace, self.mask))

    # Channel-form helpers used by the networks -----------------------------------------
    def zero_filled(self) -> torch.Tensor:
        """The zero-filled image as two channels ``(B, 2, H, W)``."""
        return complex_to_channels(zero_filled(self.measured_kspace))

    def image_to_kspace(self, image: torch.Tensor) -> torch.Tensor:
        """Two-channel image ``(B, 2, H, W)`` -> two-channel full k-space ``(B, 2, H, W)``."""
        return complex_to_channels(fft2c(channels_to_complex(_as_float32(image))))

    def kspace_to_image(self, kspace: torch.Tensor) -> torch.Tensor:
        """Two-channel k-space ``(B, 2, H, W)`` -> two-channel image ``(B, 2, H, W)``."""
        return complex_to_channels(ifft2c(channels_to_complex(_as_float32(kspace))))

    def data_consistency(self, image: torch.Tensor) -> torch.Tensor:
        """Hard data consistency on a two-channel image (paper Eq. 4).

        Runs in float32 even under autocast (FFTs have no bf16 kernels and the
        projection must be exact).

        Args:
            image: ``(B, 2, H, W)`` real tensor.

        Returns:
            ``(B, 2, H, W)`` float32 tensor whose sampled k-space equals the measurements.
        """
        import torch

        self._check_image(image)
        # No CPU autocast policy touches FFTs or these products (so a mutant that leaves
        # autocast on is equivalent there); the guard is for CUDA kernels that might.
        with torch.autocast(device_type=image.device.type, enabled=False):  # pragma: no mutate
            x = channels_to_complex(_as_float32(image))
            x = data_consistency(x, self.measured_kspace, self.mask)
            return complex_to_channels(x)

    def kspace_data_consistency(self, kspace: torch.Tensor) -> torch.Tensor:
        """Data consistency in k-space on two-channel k-space ``(B, 2, H, W)``."""
        import torch

        self._check_image(kspace)
        with torch.autocast(device_type=kspace.device.type, enabled=False):  # pragma: no mutate
            k = channels_to_complex(_as_float32(kspace))
            k = (1 - self.mask) * k + self.mask * self.measured_kspace
            return complex_to_channels(k)

    def _check_image(self, image: torch.Tensor) -> None:
        b, h, w = self.shape
        if image.ndim != 4 or image.shape[1] != 2 or tuple(image.shape[2:]) != (h, w):
            raise ValueError(
                f"expected a two-channel image shaped (B, 2, {h}, {w}), got {tuple(image.shape)}"
            )


def _as_float32(x: torch.Tensor) -> torch.Tensor:
    """float64 stays float64; every other dtype becomes float32 (a no-op for float32)."""
    return x if str(x.dtype) == "torch.float64" else x.float()
