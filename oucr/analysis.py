"""K-space band analysis of the paper's Fig. 4.

The complex reconstruction and the complex reference are each transformed to
k-space, restricted to the low (centre) or the high (periphery) spatial
frequencies by the same window, transformed back, and compared by magnitude.
Low frequencies carry contrast and overall shape, high frequencies edges and
fine detail. The bands must be taken of the complex images: the spectrum of a
magnitude image is not the acquired k-space (taking the magnitude mixes the
frequencies), so a reconstruction that is exact in the low band of the acquired
k-space would not score as exact there.
"""

from __future__ import annotations

import numpy as np

from oucr.fft import fft2c, ifft2c

BANDS = ("low", "high")


def band_window(shape: tuple, band: str, fraction: float) -> np.ndarray:
    """0/1 k-space window of shape ``(H, W)``.

    Args:
        shape: ``(H, W)``.
        band: ``"low"`` keeps the central ``round(fraction * H) x round(fraction * W)``
            rectangle, ``"high"`` keeps everything else.
        fraction: side of the central rectangle relative to the image, in (0, 1).
    """
    if band not in BANDS:
        raise ValueError(f"band must be one of {BANDS}, got {band!r}")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    h, w = shape
    ch, cw = max(1, round(fraction * h)), max(1, round(fraction * w))
    window = np.zeros((h, w), dtype=np.float32)
    top, left = (h - ch + 1) // 2, (w - cw + 1) // 2
    window[top : top + ch, left : left + cw] = 1
    return window if band == "low" else 1 - window


def kspace_band(volume: np.ndarray, band: str, fraction: float) -> np.ndarray:
    """Magnitude of a complex volume ``(S, H, W)`` restricted to one band of its k-space.

    Raises:
        ValueError: for a volume that is not 3-D or not complex (a magnitude image has no
            acquired k-space to restrict).
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"expected a (slices, H, W) volume, got shape {volume.shape}")
    if not np.iscomplexobj(volume):
        raise ValueError("k-space bands are taken of complex images, got a real (magnitude) volume")
    window = band_window(volume.shape[-2:], band, fraction)
    return np.abs(ifft2c(fft2c(volume.astype(np.complex64)) * window)).astype(np.float32)
