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

Inputs are used as given (no dtype conversion), so the values equal fastMRI's on
the same arrays. A perfect reconstruction has NMSE 0, SSIM 1 and PSNR ``inf``
(NumPy warns about the division by zero); a slice whose reference is all zero
has an undefined per-slice NMSE (``nan``).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from skimage.metrics import structural_similarity

#: scikit-image's promotion of image dtypes before its error measures (``_supported_float_type``)
_FLOAT_TYPES = {"e": np.float32, "f": np.float32, "d": np.float64}


def peak_signal_noise_ratio(image_true: np.ndarray, image_test: np.ndarray, data_range: float) -> float:
    """scikit-image's ``peak_signal_noise_ratio`` with a given data range, operation for operation.

    The same dtype promotion (float16/float32 stay float32, others become float64),
    the same float64-accumulated mean squared error, the same formula: equal to it bit
    for bit (tested). Written out here because importing scikit-image's
    ``simple_metrics`` module imports ``scipy.stats``, which costs every metric-computing
    process about 1.5 s of start-up.
    """
    # a missing default (None) would promote to float64 as well: that mutant is equivalent
    float_type = np.result_type(*(_FLOAT_TYPES.get(np.dtype(a.dtype).char, np.float64)  # pragma: no mutate
                                  for a in (image_true, image_test)))
    # both cast in one expression: casting either alone gives the same difference
    a, b = (np.asarray(image, dtype=float_type) for image in (image_true, image_test))
    err = np.mean((a - b) ** 2, dtype=np.float64)
    return 10 * np.log10((float(data_range) ** 2) / err)


def check_real_pair(gt: np.ndarray, pred: np.ndarray, ndim: int, noun: str,
                    layout: str) -> Tuple[np.ndarray, np.ndarray]:
    """Both inputs as arrays; raises ValueError unless they are real, ``ndim``-dimensional and alike.

    Args:
        gt, pred: reference and reconstruction.
        ndim: the dimensions they must have.
        noun: what they are, for the messages ("volumes", "images").
        layout: their expected shape in words, e.g. "volumes shaped (slices, H, W)".
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if np.iscomplexobj(gt) or np.iscomplexobj(pred):
        raise ValueError(f"metrics take magnitude (real) {noun}; apply np.abs to complex images first")
    if gt.ndim != ndim:
        raise ValueError(f"expected {layout}, got gt shape {gt.shape}")
    if gt.shape != pred.shape:
        raise ValueError(f"shape mismatch: gt {gt.shape} vs pred {pred.shape}")
    return gt, pred


def _check(gt: np.ndarray, pred: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Both volumes as arrays; raises ValueError unless they are real and shaped (slices, H, W) alike."""
    return check_real_pair(gt, pred, 3, "volumes", "volumes shaped (slices, H, W)")


def _range(gt: np.ndarray, maxval: Optional[float]) -> float:
    # gt.max() keeps gt's dtype (float32 for fastMRI files), as in fastMRI: scikit-image
    # computes its SSIM constants in that precision, so a float() here shifts SSIM by ~1e-9
    return gt.max() if maxval is None else maxval


def nmse(gt: np.ndarray, pred: np.ndarray) -> float:
    """Normalised mean squared error ``||gt - pred||^2 / ||gt||^2`` of a volume.

    Args:
        gt: reference magnitudes ``(slices, H, W)``.
        pred: reconstructed magnitudes, same shape.
    """
    gt, pred = _check(gt, pred)
    return float(np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2)


def psnr(gt: np.ndarray, pred: np.ndarray, maxval: Optional[float] = None) -> float:
    """Peak signal-to-noise ratio of a volume in dB, over all its voxels at once.

    Args:
        gt: reference magnitudes ``(slices, H, W)``.
        pred: reconstructed magnitudes, same shape.
        maxval: data range; ``gt.max()`` of the volume when None.
    """
    gt, pred = _check(gt, pred)
    return float(peak_signal_noise_ratio(gt, pred, data_range=_range(gt, maxval)))


def ssim(gt: np.ndarray, pred: np.ndarray, maxval: Optional[float] = None) -> float:
    """Mean over slices of the 2-D SSIM of each slice (7 x 7 window), fastMRI's volume SSIM.

    Args:
        gt: reference magnitudes ``(slices, H, W)``.
        pred: reconstructed magnitudes, same shape.
        maxval: data range for every slice; ``gt.max()`` of the volume when None.
    """
    return float(np.mean(ssim_per_slice(gt, pred, maxval)))


def nmse_per_slice(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """NMSE of each slice, ``(slices,)``, each normalised by its own reference's energy."""
    gt, pred = _check(gt, pred)
    return np.array([np.linalg.norm(g - p) ** 2 / np.linalg.norm(g) ** 2 for g, p in zip(gt, pred)], dtype=np.float64)


def psnr_per_slice(gt: np.ndarray, pred: np.ndarray, maxval: Optional[float] = None) -> np.ndarray:
    """PSNR of each slice in dB, ``(slices,)``.

    The data range is the volume's ``gt.max()`` (or ``maxval``), not the slice's, so
    slices are compared on the scale fastMRI's volume metrics use.
    """
    gt, pred = _check(gt, pred)
    data_range = _range(gt, maxval)
    # each value is already a float64 (the error is accumulated in float64)
    return np.array([peak_signal_noise_ratio(g, p, data_range=data_range) for g, p in zip(gt, pred)])


def ssim_per_slice(gt: np.ndarray, pred: np.ndarray, maxval: Optional[float] = None) -> np.ndarray:
    """SSIM of each 2-D slice, ``(slices,)``; their mean is :func:`ssim`.

    The data range is the volume's ``gt.max()`` (or ``maxval``), not the slice's.
    """
    gt, pred = _check(gt, pred)
    data_range = _range(gt, maxval)
    # scikit-image averages the SSIM map in float64, so each value is a float64 already
    return np.array([structural_similarity(g, p, data_range=data_range) for g, p in zip(gt, pred)])
