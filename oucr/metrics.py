"""Image-quality metrics with fastMRI ``evaluate.py`` semantics.

All functions take real magnitude volumes shaped ``(slices, H, W)`` (NumPy):

* :func:`nmse` - ``||gt - pred||^2 / ||gt||^2`` over the whole volume;
* :func:`psnr` - scikit-image ``peak_signal_noise_ratio`` over the whole volume
  with ``data_range = gt.max()``;
* :func:`ssim` - the mean over slices of scikit-image ``structural_similarity``
  (7 x 7 uniform window, K1 0.01, K2 0.03) of each 2-D slice, with the
  *volume's* ``gt.max()`` as data range.

The per-slice variants return one value per slice. They use the same volume
maximum as data range, so the mean of :func:`ssim_per_slice` is exactly
:func:`ssim`, and the per-slice PSNR of a slice is what fastMRI's volume PSNR
would be for a one-slice volume scaled to the same range.

SSIM is computed slice by slice on 2-D arrays on purpose: passing a 3-D volume
(or the deprecated ``multichannel=True``) to current scikit-image silently
computes a 3-D SSIM.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def _check(gt: np.ndarray, pred: np.ndarray) -> tuple:
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if np.iscomplexobj(gt) or np.iscomplexobj(pred):
        raise ValueError("metrics take magnitude (real) volumes; apply np.abs to complex images first")
    if gt.ndim != 3:
        raise ValueError(f"expected volumes shaped (slices, H, W), got gt shape {gt.shape}")
    if gt.shape != pred.shape:
        raise ValueError(f"shape mismatch: gt {gt.shape} vs pred {pred.shape}")
    # no dtype conversion: the values equal fastMRI's / scikit-image's on the same arrays
    return gt, pred


def _range(gt: np.ndarray, maxval: Optional[float]) -> float:
    return float(gt.max()) if maxval is None else float(maxval)


def nmse(gt: np.ndarray, pred: np.ndarray) -> float:
    """Normalised mean squared error of a volume."""
    gt, pred = _check(gt, pred)
    return float(np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2)


def psnr(gt: np.ndarray, pred: np.ndarray, maxval: Optional[float] = None) -> float:
    """Peak signal-to-noise ratio of a volume (dB); ``maxval`` defaults to ``gt.max()``."""
    gt, pred = _check(gt, pred)
    return float(peak_signal_noise_ratio(gt, pred, data_range=_range(gt, maxval)))


def ssim(gt: np.ndarray, pred: np.ndarray, maxval: Optional[float] = None) -> float:
    """Mean per-slice SSIM of a volume, with the volume's max as data range."""
    return float(np.mean(ssim_per_slice(gt, pred, maxval)))


def nmse_per_slice(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """NMSE of each slice, ``(slices,)``."""
    gt, pred = _check(gt, pred)
    return np.array([np.linalg.norm(g - p) ** 2 / np.linalg.norm(g) ** 2 for g, p in zip(gt, pred)])


def psnr_per_slice(gt: np.ndarray, pred: np.ndarray, maxval: Optional[float] = None) -> np.ndarray:
    """PSNR of each slice (dB), ``(slices,)``, with the volume's max as data range."""
    gt, pred = _check(gt, pred)
    data_range = _range(gt, maxval)
    return np.array([peak_signal_noise_ratio(g, p, data_range=data_range) for g, p in zip(gt, pred)])


def ssim_per_slice(gt: np.ndarray, pred: np.ndarray, maxval: Optional[float] = None) -> np.ndarray:
    """SSIM of each 2-D slice, ``(slices,)``, with the volume's max as data range."""
    gt, pred = _check(gt, pred)
    data_range = _range(gt, maxval)
    return np.array([structural_similarity(g, p, data_range=data_range) for g, p in zip(gt, pred)])
