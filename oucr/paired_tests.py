"""The paired tests, corrections and intervals of ``oucr stats``, on arrays of differences.

What each function computes and why (the volume as the unit, the floors of small n, the
sign-flip test of the slice level, Holm families) is set out in :mod:`oucr.stats`, which
applies them to the metric files.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Optional, Sequence, Tuple

import numpy as np
from scipy import stats as sps

#: sign-flip tests enumerate all 2**n patterns up to this many volumes
EXACT_SIGNFLIP_MAX_VOLUMES = 16
#: differences within this many machine epsilons of the metric values are zero
_ROUNDING_EPS = 16.0


def holm(pvalues: Sequence[float], family_size: Optional[int] = None) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values.

    Args:
        pvalues: raw p-values of one family; NaN marks a comparison without a test.
        family_size: m; defaults to ``len(pvalues)``, so a NaN entry still counts in the
            family (as if its p were 1: conservative). NaN entries stay NaN.

    Returns:
        adjusted p-values, ``max_{j <= k} min(1, (m - j + 1) p_(j))`` for the k-th smallest.

    Raises:
        ValueError: if ``family_size`` is smaller than the number of defined p-values.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)  # pragma: no mutate (None fills a float array with NaN too)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(p) if family_size is None else int(family_size)
    if m < len(valid):
        raise ValueError(f"family size {m} is smaller than the {len(valid)} p-values given")
    if len(valid) == 0:
        return out
    order = valid[np.argsort(p[valid])]  # tied p-values get the same adjusted value in any order
    steps = np.minimum(1.0, (m - np.arange(len(order))) * p[order])
    out[order] = np.maximum.accumulate(steps)
    return out


def rounding_tolerance(*values: np.ndarray) -> float:
    """Scale below which a difference of these values is floating-point rounding."""
    scale = max((float(np.max(np.abs(v))) for v in values if np.size(v)), default=0.0)
    return _ROUNDING_EPS * np.finfo(float).eps * scale


def snap_zeros(diff: np.ndarray, tol: float) -> np.ndarray:
    return np.where(np.abs(diff) <= tol, 0.0, diff)


def cohen_dz(mean: np.ndarray, sd: np.ndarray, tol: float) -> np.ndarray:
    """``mean / sd``; +/-inf where sd is zero (within ``tol``) and the mean is not, NaN where both are."""
    mean = np.asarray(mean)
    sd = np.asarray(sd)
    with np.errstate(divide="ignore", invalid="ignore"):
        dz = mean / sd
    flat = sd <= tol
    dz = np.where(flat, np.copysign(np.inf, mean), dz)  # the next line makes a flat zero mean NaN
    return np.where(flat & (np.abs(mean) <= tol), np.nan, dz)


def paired_t(diff: np.ndarray, tol: float = 0.0) -> Tuple[float, float]:
    """Two-sided paired t-test of ``diff`` against mean zero.

    Args:
        diff: paired differences (finite).
        tol: differences and SDs at or below this are zero (floating-point rounding).

    Returns:
        ``(t, p)``; ``(+/-inf, 0.0)`` for a constant non-zero difference, NaNs for all-zero
        differences or fewer than two pairs.
    """
    diff = np.asarray(diff, dtype=float)  # pragma: no mutate (lists of ints would do as well; the cast documents it)
    n = diff.size
    if n < 2:
        return np.nan, np.nan
    mean, sd = float(diff.mean()), float(diff.std(ddof=1))
    if sd <= tol:
        return (np.nan, np.nan) if abs(mean) <= tol else (math.copysign(np.inf, mean), 0.0)
    t = mean / (sd / math.sqrt(n))
    return t, float(2.0 * sps.t.sf(abs(t), n - 1))


def wilcoxon_method(diff: np.ndarray) -> str:
    """The null distribution ``scipy.stats.wilcoxon`` (defaults) uses for these differences."""
    diff = np.asarray(diff, dtype=float)  # pragma: no mutate (as above)
    absolute = np.abs(diff)
    if absolute.size > 50:
        return "normal"
    return "ties-or-zeros" if _has_ties_or_zeros(absolute) else "exact"


def _has_ties_or_zeros(absolute: np.ndarray) -> bool:
    return bool(np.any(absolute == 0) or len(np.unique(absolute)) < absolute.size)


def paired_wilcoxon(diff: np.ndarray) -> Tuple[float, float, float, str]:
    """Two-sided Wilcoxon signed-rank test of ``diff`` (SciPy defaults) and its floor.

    Returns:
        ``(statistic, p, min_p, method)``, where ``min_p`` is the p-value of the same test
        when every difference keeps its size but favours the same side. NaNs when every
        difference is zero.
    """
    diff = np.asarray(diff, dtype=float)  # pragma: no mutate (lists of ints would do as well; the cast documents it)
    if diff.size == 0 or not np.any(diff != 0):
        return np.nan, np.nan, np.nan, "none"
    method = wilcoxon_method(diff)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SciPy warns about small n and ties; the method column says it
        result = sps.wilcoxon(diff)
        absolute = np.abs(diff)
        # without ties or zeros the floor depends on n alone (2 / 2**n when exact): the cached value is the
        # same number, so testing every case the long way is an equivalent mutant
        if _has_ties_or_zeros(absolute):  # pragma: no mutate
            floor = float(sps.wilcoxon(absolute).pvalue)
        else:
            floor = wilcoxon_floor(diff.size)
    return float(result.statistic), float(result.pvalue), floor, method


@functools.lru_cache(maxsize=None)
def wilcoxon_floor(n: int) -> float:
    """Smallest two-sided Wilcoxon p-value for ``n`` tie-free, non-zero paired differences."""
    if n < 1:
        return np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(sps.wilcoxon(np.arange(1.0, n + 1)).pvalue)


def signflip_patterns(n_volumes: int, n_draws: int, rng: np.random.Generator) -> Tuple[np.ndarray, bool]:
    """Sign patterns of the cluster sign-flip test: all ``2**n`` (exact) or ``n_draws`` random ones.

    Returns:
        ``(patterns (P, n_volumes) of +/-1, exact)``.
    """
    if n_volumes <= EXACT_SIGNFLIP_MAX_VOLUMES:
        bits = (np.arange(2 ** n_volumes)[:, None] >> np.arange(n_volumes)[None, :]) & 1
        return 1.0 - 2.0 * bits, True
    return rng.choice(np.array([-1.0, 1.0]), size=(n_draws, n_volumes)), False


def signflip_p(volume_sums: np.ndarray, patterns: np.ndarray, exact: bool) -> np.ndarray:
    """Two-sided p-values of the cluster sign-flip test, one per column of ``volume_sums`` (n, K).

    The statistic is the sum over volumes of each volume's summed slice differences; a
    column whose sums are all zero gives NaN.
    """
    sums = np.atleast_2d(np.asarray(volume_sums).T).T
    observed = np.abs(sums.sum(axis=0))
    tol = 1e-9 * np.abs(sums).sum(axis=0)
    threshold = observed - tol
    # `>` is the same test: tol > 0 wherever p is defined, so only |stat| == observed - tol exactly differs
    hits = (np.abs(patterns @ sums) >= threshold).sum(axis=0)  # pragma: no mutate
    p = hits / len(patterns) if exact else (1.0 + hits) / (1.0 + len(patterns))
    return np.where(np.any(sums != 0, axis=0), p, np.nan)


def percentile_interval(samples: np.ndarray, confidence: float) -> Tuple[np.ndarray, np.ndarray]:
    """Percentile interval of each column, ignoring NaN resamples."""
    alpha = (1.0 - confidence) / 2.0
    samples = np.asarray(samples)
    low = np.full(samples.shape[1], np.nan)
    high = np.full(samples.shape[1], np.nan)
    for k in range(samples.shape[1]):
        column = samples[:, k][~np.isnan(samples[:, k])]
        if column.size:
            low[k], high[k] = np.quantile(column, [alpha, 1.0 - alpha], method="inverted_cdf")
    return low, high
