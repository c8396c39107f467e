"""Perceptual image-quality metrics for MR magnitude images: HaarPSI and pixel-domain VIF.

Both metrics agree better with radiologists' scores than PSNR or SSIM (see
``docs/metrics.md``). They are implemented here once, in NumPy/SciPy, following
the authors' reference code line by line; their values match those programs to
better than 1e-13 on the fixtures of ``tests/test_perceptual.py``.

* :func:`haarpsi` - the Haar wavelet-based perceptual similarity index
  (Reisenhofer, Bosse, Kutyniok & Wiegand 2018) with the constants
  ``C = 5``, ``alpha = 4.9`` that Karner et al. (2024, arXiv:2410.24098) chose
  for medical images (the original natural-image constants are
  ``C = 30``, ``alpha = 4.2``). Symmetric in its two images, in ``(0, 1]``.
* :func:`vif_pixel` - the multi-scale pixel-domain visual information fidelity
  VIFp of Sheikh & Bovik's ``vifp_mscale.m`` (Sheikh & Bovik 2006), noise
  variance ``sigma_nsq = 2``. Not symmetric: the first image is the reference,
  and a contrast-enhanced image can score above 1.

Intensity scale. Both reference programs work on grey values in ``[0, 255]``
and their constants (HaarPSI's ``C``; VIF's ``sigma_nsq`` and its 1e-10
thresholds) are absolute numbers on that scale. So both images are first
converted to float64 and multiplied by ``255 / data_range``: a reference whose
values span ``[0, data_range]`` is mapped onto ``[0, 255]``, which is exactly
what Karner et al.'s HaarPSI does with its ``[0, 1]`` inputs (it multiplies by
255). A prediction outside ``[0, data_range]`` is NOT clipped: it is scaled by
the same factor and the same formulas are evaluated on it, which is what the
MATLAB and NumPy reference programs compute when given values outside
``[0, 255]`` (Karner et al.'s program refuses such inputs). Clipping would hide
errors (an overshoot above the reference maximum would count as a perfect
maximum), and :mod:`oucr.metrics` scores predictions as given too, so all
metrics judge the same array.

Volumes. :func:`haarpsi_per_slice` and :func:`vif_per_slice` take real
``(slices, H, W)`` volumes and use the *volume's* ``gt.max()`` (or ``maxval``)
as the data range of every slice, like :func:`oucr.metrics.ssim_per_slice`;
:func:`haarpsi_volume` / :func:`vif_volume` are the means of the per-slice values.
Scaling both volumes by a constant leaves every value unchanged (up to rounding).

Undefined cases return ``nan`` (as the reference programs' 0/0 does): HaarPSI
when both images have no scale-3 Haar coefficient anywhere (both all zero), VIF
when the reference has no local variance at any scale (a flat slice).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from scipy.ndimage import correlate1d

from oucr.metrics import _check as _check_volumes
from oucr.metrics import check_real_pair
from oucr.metrics import _range as _volume_range

HAARPSI_C_MEDICAL = 5.0
HAARPSI_ALPHA_MEDICAL = 4.9
HAAR_SCALES = 3  # filters of 2, 4 and 8 pixels; scales 1-2 give the similarity, scale 3 the weights
VIF_SIGMA_NSQ = 2.0  # variance of the visual noise on the 0..255 scale, vifp_mscale.m's value
VIF_SCALES = 4
VIF_MIN_SIZE = 41  # the smallest side for which all four 'valid'-filtered scales are non-empty
_VIF_EPS = 1e-10  # vifp_mscale.m's thresholds on variances (0..255 scale)
_GREY_MAX = 255.0


def _check_images(gt: np.ndarray, pred: np.ndarray, data_range: float) -> Tuple[np.ndarray, np.ndarray]:
    """Both images as float64 on the 0..255 scale; raises ValueError on bad shapes or range."""
    gt, pred = check_real_pair(gt, pred, 2, "images", "2-D images shaped (H, W)")
    data_range = float(data_range)
    if not np.isfinite(data_range) or data_range <= 0:
        raise ValueError(f"data_range must be a positive finite number, got {data_range}")
    scale = _GREY_MAX / data_range
    return gt.astype(np.float64) * scale, pred.astype(np.float64) * scale


# ----------------------------------------------------------------------------- HaarPSI


def _window_sum(x: np.ndarray, lo: int, hi: int, axis: int) -> np.ndarray:
    """``out[i] = x[i + lo] + ... + x[i + hi]`` along ``axis``, zeros beyond the edges."""
    n = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (max(0, -lo), max(0, hi))
    padded = np.pad(x, pad)
    start = max(0, -lo)
    out = np.zeros_like(x)
    for t in range(lo, hi + 1):
        index = [slice(None)] * x.ndim
        index[axis] = slice(start + t, start + t + n)
        out += padded[tuple(index)]
    return out


def _subsample(x: np.ndarray) -> np.ndarray:
    """2 x 2 mean then every second pixel over the last two axes.

    MATLAB ``conv2(x, ones(2)/4, 'same')(1:2:end, 1:2:end)``: pixel ``(i, j)`` of the
    filtered image is the mean of ``x[i:i+2, j:j+2]`` (zeros beyond the last
    row/column, which only matters for odd sizes).
    """
    box = _window_sum(_window_sum(x, 0, 1, axis=-2), 0, 1, axis=-1) / 4.0
    return box[..., ::2, ::2]


def _haar_coefficients(x: np.ndarray, scale: int, axis: int) -> np.ndarray:
    """Haar wavelet coefficients of one scale over the last two axes: MATLAB ``conv2(x, filter, 'same')``.

    The filter of scale ``s`` is ``2**-s`` times a ``2**s x 2**s`` block whose first
    half (along ``axis``) is -1 and second half +1; ``axis=-2`` (rows) is the
    reference code's ``haarFilter``, ``axis=-1`` its transpose. With MATLAB's
    ``'same'`` alignment for even sizes (``m = 2**s``, ``h = m/2``), coefficient
    ``(i, j)`` for ``axis=-2`` is ``2**-s * (sum of rows i-h+1..i - sum of rows
    i+1..i+h)`` over columns ``j-h+1..j+h``, with zeros outside the image.
    """
    half = 2 ** (scale - 1)
    across = -1 if axis == -2 else -2
    band = _window_sum(x, -(half - 1), half, axis=across)
    upper = _window_sum(band, -(half - 1), 0, axis=axis)
    lower = _window_sum(band, 1, half, axis=axis)
    return (upper - lower) * 2.0 ** (-scale)


def haarpsi(
    gt: np.ndarray,
    pred: np.ndarray,
    data_range: float,
    C: float = HAARPSI_C_MEDICAL,
    alpha: float = HAARPSI_ALPHA_MEDICAL,
) -> float:
    """HaarPSI of two 2-D magnitude images, in ``(0, 1]`` (1: identical); symmetric.

    The computation is Reisenhofer et al.'s reference ``HaarPSI.m`` / ``haarPsi.py``
    (grey-scale branch) with ``C`` and ``alpha`` as parameters:

    1. both images are converted to float64 and scaled by ``255 / data_range`` (no
       clipping, see the module docstring: ``C`` is defined on the 0..255 scale);
    2. each is subsampled once by a 2 x 2 mean and dyadic decimation (the reference's
       viewing-distance preprocessing, always on), so a 64 x 64 slice is scored at
       32 x 32 and a 320 x 320 one at 160 x 160;
    3. Haar coefficients of 3 scales (filters of 2, 4 and 8 pixels) in 2 orientations
       are computed by MATLAB ``conv2(..., 'same')``: zero padding outside the image
       and, for these even filter sizes, MATLAB's alignment (see
       :func:`_haar_coefficients`), so the values equal the reference's at the edges too;
    4. per orientation, the local similarity is the mean over scales 1 and 2 of
       ``(2|a||b| + C) / (a^2 + b^2 + C)``, and the weight is ``max(|a|, |b|)`` of scale 3;
    5. the score is ``(logit(sum(sigmoid(alpha * s) * w) / sum(w)) / alpha) ** 2``.

    Args:
        gt: reference image ``(H, W)``, real.
        pred: distorted image, same shape.
        data_range: the value that is mapped to 255 (for a volume: its ``gt.max()``).
        C: similarity constant on the 0..255 scale (5 for medical images, 30 natural).
        alpha: sigmoid steepness (4.9 for medical images, 4.2 natural).

    Returns:
        The score; ``nan`` if both images are all zero (no weight anywhere).

    Raises:
        ValueError: complex input, not 2-D, shapes differ, or non-positive ``data_range``,
            ``C`` or ``alpha``.
    """
    if not (C > 0 and alpha > 0):
        raise ValueError(f"C and alpha must be positive, got C={C}, alpha={alpha}")
    pair = _subsample(np.stack(_check_images(gt, pred, data_range)))  # (2, h, w): reference, distorted
    weighted_sum = 0.0
    weight_total = 0.0
    for axis in (-2, -1):
        coeffs = [np.abs(_haar_coefficients(pair, s, axis)) for s in range(1, HAAR_SCALES + 1)]
        weights = np.maximum(coeffs[-1][0], coeffs[-1][1])
        similarity = sum((2.0 * c[0] * c[1] + C) / (c[0] ** 2 + c[1] ** 2 + C) for c in coeffs[:2]) / 2.0
        weighted_sum += float(np.sum(weights / (1.0 + np.exp(-alpha * similarity))))
        weight_total += float(np.sum(weights))
    if weight_total == 0.0:
        return float("nan")
    mean = weighted_sum / weight_total
    return float((np.log(mean / (1.0 - mean)) / alpha) ** 2)


# ----------------------------------------------------------------------------- VIF


def _gaussian_window(size: int) -> np.ndarray:
    """1-D factor of MATLAB ``fspecial('gaussian', size, size / 5)`` (sums to 1).

    fspecial's 2-D window is the outer product of this with itself: its truncation
    of values below ``eps * max`` never applies at these sizes (the smallest corner
    value is ~4e-3 of the maximum).
    """
    sigma = size / 5.0
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x ** 2) / (2.0 * sigma ** 2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(outer(window, window), x, 'valid')`` over the last two axes (odd symmetric window)."""
    r = window.size // 2
    rows = correlate1d(x, window, axis=-2, mode="constant")[..., r:x.shape[-2] - r, :]
    return correlate1d(rows, window, axis=-1, mode="constant")[..., r:x.shape[-1] - r]


def vif_pixel(gt: np.ndarray, pred: np.ndarray, data_range: float) -> float:
    """Pixel-domain VIF (VIFp) of ``pred`` against the reference ``gt``; 1 for identical images.

    The computation is Sheikh & Bovik's ``vifp_mscale.m``: images converted to float64
    and scaled by ``255 / data_range`` (no clipping, see the module docstring: the
    noise variance 2 and the 1e-10 thresholds are on the 0..255 scale), no other
    preprocessing. Four scales; at scale ``k = 1..4`` the Gaussian window is
    ``N = 2**(5-k) + 1`` pixels (17, 9, 5, 3) with standard deviation ``N / 5``. From
    scale 2 on, both images are first filtered with that scale's window and decimated
    by 2. Local means, variances and the covariance come from the same window; every
    filtering is ``'valid'`` (no padding: the borders are dropped, hence
    :data:`VIF_MIN_SIZE`). With the gain ``g = s12 / s1`` and the distortion variance
    ``sv = s2 - g * s12`` (clamped exactly as the reference does), VIF is the ratio
    of the sums over all scales and pixels of ``log10(1 + g^2 s1 / (sv + 2))`` and
    ``log10(1 + s1 / 2)``.

    Args:
        gt: reference image ``(H, W)``, real, both sides at least :data:`VIF_MIN_SIZE`.
        pred: distorted image, same shape.
        data_range: the value that is mapped to 255 (for a volume: its ``gt.max()``).

    Returns:
        The score (usually in ``[0, 1]``; above 1 for contrast enhancement); ``nan`` if
        ``gt`` has no local variance at any scale.

    Raises:
        ValueError: complex input, not 2-D, shapes differ, an image side below
            :data:`VIF_MIN_SIZE`, or non-positive ``data_range``.
    """
    ref, dist = _check_images(gt, pred, data_range)
    if min(ref.shape) < VIF_MIN_SIZE:
        raise ValueError(f"VIF needs images of at least {VIF_MIN_SIZE} x {VIF_MIN_SIZE} pixels, got {ref.shape}")
    pair = np.stack([ref, dist])
    num = 0.0
    den = 0.0
    for scale in range(1, VIF_SCALES + 1):
        window = _gaussian_window(2 ** (VIF_SCALES - scale + 1) + 1)
        if scale > 1:
            pair = _filter_valid(pair, window)[:, ::2, ::2]
        ref, dist = pair
        maps = np.stack([ref, dist, ref * ref, dist * dist, ref * dist])
        mu1, mu2, mean11, mean22, mean12 = _filter_valid(maps, window)
        sigma1_sq = np.maximum(mean11 - mu1 * mu1, 0.0)
        sigma2_sq = np.maximum(mean22 - mu2 * mu2, 0.0)
        sigma12 = mean12 - mu1 * mu2
        # the clamps below are vifp_mscale.m's, in its order (later ones override earlier ones)
        g = sigma12 / (sigma1_sq + _VIF_EPS)
        sv_sq = sigma2_sq - g * sigma12
        flat_ref = sigma1_sq < _VIF_EPS
        g[flat_ref] = 0.0
        sv_sq[flat_ref] = sigma2_sq[flat_ref]
        sigma1_sq[flat_ref] = 0.0
        flat_dist = sigma2_sq < _VIF_EPS
        g[flat_dist] = 0.0
        sv_sq[flat_dist] = 0.0
        negative = g < 0
        sv_sq[negative] = sigma2_sq[negative]
        g[negative] = 0.0
        sv_sq = np.maximum(sv_sq, _VIF_EPS)
        num += float(np.sum(np.log10(1.0 + g * g * sigma1_sq / (sv_sq + VIF_SIGMA_NSQ))))
        den += float(np.sum(np.log10(1.0 + sigma1_sq / VIF_SIGMA_NSQ)))
    if den == 0.0:
        return float("nan")
    return num / den


# ----------------------------------------------------------------------------- volumes


def haarpsi_per_slice(
    gt: np.ndarray,
    pred: np.ndarray,
    maxval: Optional[float] = None,
    C: float = HAARPSI_C_MEDICAL,
    alpha: float = HAARPSI_ALPHA_MEDICAL,
) -> np.ndarray:
    """HaarPSI of each 2-D slice, ``(slices,)`` float64.

    The data range of every slice is the volume's ``gt.max()`` (or ``maxval``), not the
    slice's, as in :func:`oucr.metrics.ssim_per_slice`.

    Args:
        gt: reference magnitudes ``(slices, H, W)``.
        pred: reconstructed magnitudes, same shape.
        maxval: data range; ``gt.max()`` of the volume when None.
        C, alpha: HaarPSI constants (see :func:`haarpsi`).

    Raises:
        ValueError: volumes not real, not 3-D or shaped differently; data range not positive.
    """
    gt, pred = _check_volumes(gt, pred)
    data_range = float(_volume_range(gt, maxval))
    return np.array([haarpsi(g, p, data_range, C=C, alpha=alpha) for g, p in zip(gt, pred)], dtype=np.float64)


def vif_per_slice(gt: np.ndarray, pred: np.ndarray, maxval: Optional[float] = None) -> np.ndarray:
    """Pixel-domain VIF of each 2-D slice, ``(slices,)`` float64, volume ``gt.max()`` as range.

    Args:
        gt: reference magnitudes ``(slices, H, W)``, ``H, W >= VIF_MIN_SIZE``.
        pred: reconstructed magnitudes, same shape.
        maxval: data range; ``gt.max()`` of the volume when None.

    Raises:
        ValueError: volumes not real, not 3-D, shaped differently or too small; data range
            not positive.
    """
    gt, pred = _check_volumes(gt, pred)
    data_range = float(_volume_range(gt, maxval))
    return np.array([vif_pixel(g, p, data_range) for g, p in zip(gt, pred)], dtype=np.float64)


def haarpsi_volume(
    gt: np.ndarray,
    pred: np.ndarray,
    maxval: Optional[float] = None,
    C: float = HAARPSI_C_MEDICAL,
    alpha: float = HAARPSI_ALPHA_MEDICAL,
) -> float:
    """Mean over slices of :func:`haarpsi_per_slice` (same arguments)."""
    return float(np.mean(haarpsi_per_slice(gt, pred, maxval, C=C, alpha=alpha)))


def vif_volume(gt: np.ndarray, pred: np.ndarray, maxval: Optional[float] = None) -> float:
    """Mean over slices of :func:`vif_per_slice` (same arguments)."""
    return float(np.mean(vif_per_slice(gt, pred, maxval)))
