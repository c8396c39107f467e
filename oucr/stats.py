"""``oucr stats``: paired comparisons of a reference method (OUCR) with every other method.

Unit of inference
    The test **volume** (one subject). Slices of one volume share anatomy, noise
    and reconstruction behaviour, so they are not independent observations; every
    p-value below treats the volumes as the independent units, at both levels.

Pairing
    For each level (``volume``, ``slice``), dataset, acceleration and metric, the
    reference is compared with each other method on exactly the same units (an inner
    join on ``volume``, or on ``volume, slice``). A method that lacks units the
    reference has, has units the reference lacks, has duplicated keys, or has a
    replicate that covers only part of the units is a :class:`~oucr.errors.DataError`
    naming the group; nothing is dropped silently. Networks may be trained several
    times with different initialisation seeds (column ``replicate``; absent means
    replicate 0): each method's metric is first averaged over *its own* replicates per
    unit, then paired. Differences are **reference minus method** in metric units, so
    a positive difference means the reference scored higher; for ``nmse`` (the only
    metric where lower is better) a *negative* difference means the reference is better.
    Differences within floating-point rounding of the metric values (16 machine
    epsilons of their magnitude) are treated as exact zeros. Inputs that mix
    evaluation conditions (column ``condition``) are refused: one condition at a time.

Volume-level tests (``level = volume``)
    * Wilcoxon signed-rank test, two-sided, ``scipy.stats.wilcoxon`` with its defaults
      (zeros dropped, no continuity correction). SciPy uses the exact null
      distribution for up to 50 tie-free, zero-free differences (``wilcoxon_method =
      exact``), the normal approximation above 50 (``normal``), and for up to 50
      differences with ties or zeros a permutation or normal method depending on its
      version (``ties-or-zeros``). All differences zero: no test (NaN, method ``none``).
    * Paired t-test, two-sided: ``t = mean / (sd / sqrt(n))`` with ``n - 1`` degrees of
      freedom, identical to ``scipy.stats.ttest_rel`` whenever the differences vary.
      Differences that are all equal to a non-zero constant (sd 0) give ``t = +/-inf``
      and ``p = 0``: the data are as far from "mean zero" as data can be, and reporting
      p = 1 would invert the evidence. All differences zero: NaN (no evidence either way).
    * Floors: with n non-zero, tie-free differences the smallest two-sided exact
      Wilcoxon p-value is ``2 / 2**n`` (every difference in favour of the same method),
      0.125 at n = 4. ``wilcoxon_min_p`` is the p-value the test as computed here (same
      method, ties and zeros) gives when every difference has the same sign, and
      ``wilcoxon_min_p_holm = min(1, family_size * wilcoxon_min_p)`` is the smallest
      Holm-adjusted value the comparison can reach (it is the first, most-multiplied
      step of Holm's procedure). The t-test has no such floor.

Slice-level evidence (``level = slice``)
    The pooled mean of the per-slice differences (every slice weighs the same) with a
    **hierarchical bootstrap** CI: resample the volumes with replacement, then, within
    each drawn volume, its slices with replacement, and recompute the pooled mean.
    Its p-value comes from a **cluster sign-flip randomisation test**: under the null
    hypothesis that the two methods are exchangeable on every volume, swapping their
    labels on one volume flips the sign of all of its slice differences together, so
    the statistic ``sum of slice differences`` is compared with its values under all
    ``2**n`` volume-wise sign flips (exact, ``signflip_method = exact``, for n <= 16
    volumes) or under ``--bootstrap`` random ones (``monte-carlo``, p =
    ``(1 + hits) / (1 + draws)``, which is valid). It never treats the slices of a
    volume as independent: its floor is the same ``2 / 2**n`` as the Wilcoxon test's
    (``signflip_min_p``, ``signflip_min_p_holm``). A bootstrap p-value is not reported:
    bootstrap tests are only asymptotically valid, and with 4 volumes there are 35
    distinct volume resamples. Slices whose metric is not finite for either method
    (per-slice NMSE of an all-zero reference slice, for instance) are left out of that
    metric's slice-level row and counted in ``n_excluded``; at the volume level a
    non-finite metric is a DataError.

Bootstrap
    Percentile intervals (``inverted_cdf`` order statistics of the resampled values, no
    interpolation, so +/-inf resamples are handled) at 95 % of ``--bootstrap`` resamples
    (default 2000) of the volumes, for the mean difference and for Cohen's d_z =
    ``mean / sd`` of the volume differences (+/-inf for a constant non-zero difference,
    the limit of the ratio, which keeps its direction; NaN when all differences are
    zero). The random generator of each dataset x acceleration x level group is seeded
    from ``--seed`` and the group's identity (SHA-256 of ``level|dataset|acceleration``),
    and volumes are put in sorted order first, so the same inputs give the same numbers
    and a byte-identical CSV, whatever the row order of the inputs or the other methods
    present. All methods and metrics of a group share the resamples (common random
    numbers).

Families (Holm-Bonferroni)
    One family per (``table``, ``metric``, ``level``, test), spanning every dataset x
    acceleration x method of that table. ``table`` is ``table2`` when the other method
    is an ablation variant (:data:`oucr.names.ABLATION_VARIANTS` other than the full
    model), else ``table1``. Every planned comparison counts in the family size m, also
    one whose p-value is undefined (NaN, e.g. all differences zero), which is
    conservative: it is the same as giving it p = 1.

Replicates
    ``n_replicates_reference`` and ``n_replicates_method`` count the replicates averaged.
    ``sign_agree`` of ``sign_pairs``: over every pair (i, j) of a reference replicate i
    and a method replicate j, how many pairs' mean difference (over the same units) has
    the same sign as the replicate-averaged mean difference.

Output columns (one row per level x table x dataset x acceleration x metric x method)
    ``level`` (volume, slice), ``table`` (table1, table2), ``dataset``, ``acceleration``,
    ``metric``, ``higher_is_better``, ``method``, ``reference``,
    ``n`` (paired volumes), ``n_slices`` (paired slices used; slice rows only),
    ``n_excluded`` (slices left out as non-finite; slice rows only),
    ``n_replicates_reference``, ``n_replicates_method``,
    ``mean_reference``, ``mean_method``, ``mean_diff`` (reference minus method),
    ``ci_low``, ``ci_high`` (bootstrap CI of ``mean_diff``; hierarchical at slice level),
    ``cohen_dz``, ``dz_ci_low``, ``dz_ci_high`` (volume rows only),
    ``t_stat``, ``t_p``, ``t_p_holm``,
    ``wilcoxon_stat``, ``wilcoxon_method``, ``wilcoxon_p``, ``wilcoxon_p_holm``,
    ``wilcoxon_min_p``, ``wilcoxon_min_p_holm`` (volume rows only),
    ``signflip_method``, ``signflip_p``, ``signflip_p_holm``, ``signflip_min_p``,
    ``signflip_min_p_holm`` (slice rows only),
    ``family_size`` (comparisons in this row's Holm families),
    ``sign_agree``, ``sign_pairs``, ``n_bootstrap``, ``seed``, ``confidence``.
    Columns that do not apply to a row are empty.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

import numpy as np
import pandas as pd

from oucr import names
from oucr.errors import DataError
from oucr.io import atomic_path
from oucr.metric_files import LOWER_IS_BETTER, METRICS, read_metric_files
from oucr.paired_tests import (
    EXACT_SIGNFLIP_MAX_VOLUMES,
    cohen_dz,
    holm,
    paired_t,
    paired_wilcoxon,
    percentile_interval,
    rounding_tolerance,
    signflip_p,
    signflip_patterns,
    snap_zeros,
)

log = logging.getLogger(__name__)


#: join keys of each level
KEYS: Dict[str, List[str]] = {"volume": ["volume"], "slice": ["volume", "slice"]}
LEVELS: Tuple[str, ...] = ("volume", "slice")
REFERENCE = names.OUCR
DEFAULT_BOOTSTRAP = 2000
DEFAULT_SEED = 2021
CONFIDENCE = 0.95
#: bootstrap resamples drawn per block (fixed: the random stream depends on it)
_BLOCK = 250
#: ablation variants that make a comparison part of Table 2
TABLE2_METHODS = frozenset(v for v in names.ABLATION_VARIANTS if v != names.OUCR_FULL)

COLUMNS: List[str] = [
    "level", "table", "dataset", "acceleration", "metric", "higher_is_better", "method", "reference",
    "n", "n_slices", "n_excluded", "n_replicates_reference", "n_replicates_method",
    "mean_reference", "mean_method", "mean_diff", "ci_low", "ci_high", "cohen_dz", "dz_ci_low", "dz_ci_high",
    "t_stat", "t_p", "t_p_holm",
    "wilcoxon_stat", "wilcoxon_method", "wilcoxon_p", "wilcoxon_p_holm", "wilcoxon_min_p", "wilcoxon_min_p_holm",
    "signflip_method", "signflip_p", "signflip_p_holm", "signflip_min_p", "signflip_min_p_holm",
    "family_size", "sign_agree", "sign_pairs", "n_bootstrap", "seed", "confidence",
]
_INT_COLUMNS = ["acceleration", "n", "n_slices", "n_excluded", "n_replicates_reference", "n_replicates_method",
                "family_size", "sign_agree", "sign_pairs", "n_bootstrap", "seed"]
#: (p column, Holm column) per test, and the floors adjusted with the same family size
_TESTS = {"t": ("t_p", "t_p_holm"), "wilcoxon": ("wilcoxon_p", "wilcoxon_p_holm"),
          "signflip": ("signflip_p", "signflip_p_holm")}
_FLOORS = {"wilcoxon_min_p": "wilcoxon_min_p_holm", "signflip_min_p": "signflip_min_p_holm"}


# ----------------------------------------------------------------------------- seeding

def group_seed(seed: int, *identity: object) -> np.random.SeedSequence:
    """Seed of one group, from the fixed ``seed`` and the group's identity (stable across runs and machines)."""
    digest = hashlib.sha256("|".join(map(str, identity)).encode()).digest()  # UTF-8
    words = [int(w) for w in np.frombuffer(digest[:16], dtype="<u4")]
    return np.random.SeedSequence([int(seed), *words])


# ----------------------------------------------------------------------------- collecting paired data

def table_of(method: str) -> str:
    """``table2`` for an ablation variant, ``table1`` for everything else."""
    return "table2" if method in TABLE2_METHODS else "table1"


def _method_rank(method: str) -> Tuple[int, str]:
    order = [names.ZERO_FILLED] + names.TABLE1_METHODS + names.ABLATION_VARIANTS
    # the name breaks ties only among methods outside the known order (known ranks are unique)
    return (order.index(method), method) if method in order else (len(order), method)


@dataclass
class _Group:
    """One level x dataset x acceleration: the reference's units and every method's values."""

    level: str
    dataset: str
    acceleration: int
    units: pd.DataFrame  # key columns, sorted
    #: method -> metric -> (replicates, units) values
    values: Dict[str, Dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.dataset} x{self.acceleration} ({self.level} level)"


def _key_index(frame: pd.DataFrame, keys: List[str]) -> pd.Index:
    return pd.MultiIndex.from_frame(frame[keys]) if len(keys) > 1 else pd.Index(frame[keys[0]])


def _examples(index: pd.Index, k: int = 3) -> str:
    return ", ".join(str(v) for v in list(index[:k])) + (", ..." if len(index) > k else "")


def _collect(frame: pd.DataFrame, level: str, reference: str) -> List[_Group]:
    """Check the pairing of every method with the reference and gather their values.

    Raises:
        DataError: duplicated keys, different units, or a replicate covering part of them.
    """
    keys = KEYS[level]
    missing = [c for c in ("method", "dataset", "acceleration", *keys) if c not in frame.columns]
    if missing:
        raise DataError(f"{level} metrics", f"missing columns {missing}")
    # an absent replicate (column or value) is replicate 0: untrained methods have only that one
    replicate = frame["replicate"].fillna(0).astype(int) if "replicate" in frame.columns else 0
    frame = frame.assign(replicate=replicate)
    metrics = [m for m in METRICS if m in frame.columns]
    groups = []
    for (dataset, acc), g in frame.groupby(["dataset", "acceleration"]):  # rows are ordered at the end
        where = f"{dataset} x{acc} ({level} level)"
        duplicated = g.duplicated(["method", *keys, "replicate"])
        if duplicated.any():
            first = g.loc[duplicated, ["method", *keys, "replicate"]].iloc[0].to_dict()
            raise DataError(where, f"{int(duplicated.sum())} duplicated rows, e.g. {first}")
        ref = g[g["method"] == reference]
        if ref.empty:
            log.warning("%s: no rows of the reference %s; its methods are not compared", where, reference)
            continue
        units = ref[keys].drop_duplicates().sort_values(keys)  # unique keys: any sort kind; read by position
        unit_index = _key_index(units, keys)
        group = _Group(level, str(dataset), int(acc), units)
        row_unit = unit_index.get_indexer(_key_index(g, keys))  # -1: a unit the reference lacks
        values = g[metrics].to_numpy(dtype=float)  # pragma: no mutate (the reader made them float64)
        methods, replicates = g["method"].to_numpy(), g["replicate"].to_numpy()
        for method in sorted(set(methods)):
            mine = methods == method
            present = np.zeros(len(units), dtype=bool)
            present[row_unit[mine & (row_unit >= 0)]] = True
            extra = g.loc[mine & (row_unit < 0), keys].drop_duplicates()
            if not present.all() or len(extra):
                lacks = unit_index[~present]
                raise DataError(where, (
                    f"{method} and {reference} were evaluated on different {level}s: {method} lacks "
                    f"{len(lacks)} of the reference's {len(unit_index)} ({_examples(lacks)}) and has "
                    f"{len(extra)} the reference lacks ({_examples(_key_index(extra, keys))})"))
            per_replicate = []
            for replicate in sorted(set(replicates[mine])):
                rows = mine & (replicates == replicate)
                if rows.sum() != len(units):  # no duplicates and no foreign units: a count short is a gap
                    raise DataError(where, f"replicate {replicate} of {method} covers {int(rows.sum())} of the "
                                           f"{len(units)} {level}s; every replicate must cover all of them")
                block = np.empty((len(units), len(metrics)))
                block[row_unit[rows]] = values[rows]
                per_replicate.append(block)
            stacked = np.stack(per_replicate)  # (replicates, units, metrics)
            group.values[str(method)] = {m: stacked[:, :, i] for i, m in enumerate(metrics)}
        groups.append(group)
    return groups


@dataclass
class _Column:
    """One comparison of one metric: the replicate values of both methods over the units."""

    method: str
    metric: str
    reference_values: np.ndarray  # (R_ref, units)
    method_values: np.ndarray  # (R_method, units)


def _columns(group: _Group, reference: str) -> List[_Column]:
    """The comparisons of a group, metrics that a method lacks entirely left out (with a log line)."""
    out = []
    ref = group.values[reference]
    # the columns share the resamples, so their order moves only the last bit of BLAS sums: kept fixed,
    # with the rows ordered at the end (another key is an equivalent mutant but for that last bit)
    for method in sorted(set(group.values) - {reference}, key=_method_rank):  # pragma: no mutate
        for metric in METRICS:
            if metric not in ref:
                continue
            a, b = ref[metric], group.values[method][metric]
            if np.isnan(a).all() or np.isnan(b).all():
                log.info("%s: %s not recorded for %s or %s; not compared", group.where, metric, method, reference)
                continue
            out.append(_Column(method, metric, a, b))
    return out


def _sign_agreement(reference_values: np.ndarray, method_values: np.ndarray, used: np.ndarray,
                    mean_diff: float, tol: float) -> Tuple[int, int]:
    """Replicate pairs whose mean difference (over ``used`` units) has the sign of ``mean_diff``."""
    ref_means = reference_values[:, used].mean(axis=1)
    method_means = method_values[:, used].mean(axis=1)
    pair_means = snap_zeros(ref_means[:, None] - method_means[None, :], tol)
    target = 0.0 if abs(mean_diff) <= tol else np.sign(mean_diff)
    return int(np.sum(np.sign(pair_means) == target)), int(pair_means.size)


def _base_row(group: _Group, column: _Column, reference: str, n_bootstrap: int, seed: int) -> dict:
    return {"level": group.level, "table": table_of(column.method), "dataset": group.dataset,
            "acceleration": group.acceleration, "metric": column.metric,
            "higher_is_better": column.metric not in LOWER_IS_BETTER, "method": column.method,
            "reference": reference, "n_replicates_reference": column.reference_values.shape[0],
            "n_replicates_method": column.method_values.shape[0], "n_bootstrap": n_bootstrap, "seed": seed,
            "confidence": CONFIDENCE}


# ----------------------------------------------------------------------------- the two levels

def _volume_rows(group: _Group, reference: str, n_bootstrap: int, seed: int) -> List[dict]:
    columns = _columns(group, reference)
    if not columns:
        return []
    n = len(group.units)
    diffs, tols, rows = [], [], []
    for column in columns:
        ref_avg = column.reference_values.mean(axis=0)
        method_avg = column.method_values.mean(axis=0)
        bad = ~(np.isfinite(ref_avg) & np.isfinite(method_avg))
        if bad.any():
            raise DataError(group.where, (
                f"{column.metric} is not finite for {column.method} or {reference} on "
                f"{int(bad.sum())} volumes ({_examples(pd.Index(group.units['volume'][bad]))})"))
        tol = rounding_tolerance(column.reference_values, column.method_values)
        d = snap_zeros(ref_avg - method_avg, tol)
        t_stat, t_p = paired_t(d, tol)
        w_stat, w_p, w_min, w_method = paired_wilcoxon(d)
        sd = float(d.std(ddof=1)) if n > 1 else np.nan
        agree, pairs = _sign_agreement(column.reference_values, column.method_values, np.ones(n, bool),
                                       float(d.mean()), tol)
        rows.append({**_base_row(group, column, reference, n_bootstrap, seed), "n": n,
                     "mean_reference": float(ref_avg.mean()), "mean_method": float(method_avg.mean()),
                     "mean_diff": float(d.mean()), "cohen_dz": float(cohen_dz(d.mean(), sd, tol)),
                     "t_stat": t_stat, "t_p": t_p, "wilcoxon_stat": w_stat, "wilcoxon_method": w_method,
                     "wilcoxon_p": w_p, "wilcoxon_min_p": w_min, "sign_agree": agree, "sign_pairs": pairs})
        diffs.append(d)
        tols.append(tol)
    differences = np.stack(diffs, axis=1)  # (volumes, K)
    tol_row = np.asarray(tols)
    rng = np.random.default_rng(group_seed(seed, group.level, group.dataset, group.acceleration))
    means, dzs = [], []
    for start in range(0, n_bootstrap, _BLOCK):
        picks = rng.integers(n, size=(min(_BLOCK, n_bootstrap - start), n))  # [0, n)
        resampled = differences[picks]  # (block, volumes, K)
        mean = resampled.mean(axis=1)
        means.append(mean)
        if n > 1:
            dzs.append(cohen_dz(mean, resampled.std(axis=1, ddof=1), tol_row[None, :]))
    mean_low, mean_high = percentile_interval(np.concatenate(means), CONFIDENCE)
    if dzs:
        dz_low, dz_high = percentile_interval(np.concatenate(dzs), CONFIDENCE)
    else:
        dz_low = dz_high = np.full(len(rows), np.nan)  # pragma: no mutate (None cells are written empty alike)
    for k, row in enumerate(rows):
        row.update(ci_low=mean_low[k], ci_high=mean_high[k], dz_ci_low=dz_low[k], dz_ci_high=dz_high[k])
    return rows


def _hierarchical_weights(volume_code: np.ndarray, n_volumes: int, n_draws: int,
                          rng: np.random.Generator) -> Iterable[np.ndarray]:
    """Blocks of resample counts (draws, units): volumes with replacement, then slices within each."""
    n_units = volume_code.size
    counts = np.bincount(volume_code)  # every volume has a unit: codes 0 .. n_volumes - 1 all occur
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for start in range(0, n_draws, _BLOCK):
        block = min(_BLOCK, n_draws - start)
        picks = rng.integers(n_volumes, size=(block, n_volumes))  # [0, n_volumes)
        lengths = counts[picks].ravel()
        sizes = np.repeat(lengths, lengths)
        # a uniform slice of each drawn volume: floor(u * size) for u in [0, 1)
        within = (rng.random(sizes.size) * sizes).astype(np.int64)
        # guard against u * size rounding up to size in floating point (sizes + 1 would never bind either)
        within = np.minimum(within, sizes - 1)  # pragma: no mutate
        flat = np.repeat(offsets[picks].ravel() + n_units * np.repeat(np.arange(block), n_volumes), lengths) + within
        yield np.bincount(flat, minlength=block * n_units).reshape(block, n_units)  # integer counts


def _slice_rows(group: _Group, reference: str, n_bootstrap: int, seed: int) -> List[dict]:
    columns = _columns(group, reference)
    if not columns:
        return []
    volume_code = pd.factorize(group.units["volume"])[0]  # units are sorted by volume: codes in that order
    n_volumes = int(volume_code.max()) + 1
    rows, diffs, used_masks = [], [], []
    for column in columns:
        ref_avg = column.reference_values.mean(axis=0)
        method_avg = column.method_values.mean(axis=0)
        used = np.isfinite(ref_avg) & np.isfinite(method_avg)
        tol = rounding_tolerance(column.reference_values[:, used], column.method_values[:, used])
        d = np.where(used, snap_zeros(ref_avg - method_avg, tol), 0.0)
        n_used = int(used.sum())
        mean_diff = float(d[used].mean()) if n_used else np.nan
        agree, pairs = _sign_agreement(column.reference_values, column.method_values, used, mean_diff, tol) \
            if n_used else (0, 0)
        rows.append({**_base_row(group, column, reference, n_bootstrap, seed),
                     "n": len(np.unique(volume_code[used])), "n_slices": n_used,
                     "n_excluded": int((~used).sum()),
                     "mean_reference": float(ref_avg[used].mean()) if n_used else np.nan,
                     "mean_method": float(method_avg[used].mean()) if n_used else np.nan,
                     "mean_diff": mean_diff, "sign_agree": agree, "sign_pairs": pairs})
        diffs.append(d)
        used_masks.append(used)
    differences = np.stack(diffs, axis=1)  # (units, K), zero where not used
    used_matrix = np.stack(used_masks, axis=1)
    bootstrap_rng, flip_rng = (np.random.default_rng(s) for s in
                               group_seed(seed, group.level, group.dataset, group.acceleration).spawn(2))
    means = []
    for weights in _hierarchical_weights(volume_code, n_volumes, n_bootstrap, bootstrap_rng):
        # 0 / 0 where every drawn slice of a column was excluded (its differences are 0 there, never x / 0)
        with np.errstate(invalid="ignore"):
            means.append((weights @ differences) / (weights @ used_matrix))
    low, high = percentile_interval(np.concatenate(means), CONFIDENCE)
    volume_sums = np.zeros((n_volumes, len(columns)))
    np.add.at(volume_sums, volume_code, differences)
    patterns, exact = signflip_patterns(n_volumes, n_bootstrap, flip_rng)
    p = signflip_p(volume_sums, patterns, exact)
    floor = signflip_p(np.abs(volume_sums), patterns, exact)
    for k, row in enumerate(rows):
        row.update(ci_low=low[k], ci_high=high[k], signflip_method="exact" if exact else "monte-carlo",
                   signflip_p=p[k], signflip_min_p=floor[k])
    return rows


def significance_table(per_slice: pd.DataFrame, per_volume: pd.DataFrame, reference: str = REFERENCE,
                       n_bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """Compare ``reference`` with every other method at both levels (columns in the module docstring).

    Args:
        per_slice: concatenated per-slice metrics of ``oucr evaluate`` (may be empty).
        per_volume: concatenated per-volume metrics.
        reference: the method every other one is compared with.
        n_bootstrap: bootstrap resamples (and Monte-Carlo sign flips above 16 volumes).
        seed: fixed seed of every group's random generator.

    Returns:
        one row per level x table x dataset x acceleration x metric x method, in a fixed order.

    Raises:
        ValueError: ``n_bootstrap`` < 1 or ``seed`` < 0.
        DataError: the reference is absent from every group, the inputs mix evaluation
            conditions (column ``condition``), or a method is not paired exactly with it
            (see the module docstring).
    """
    if int(n_bootstrap) < 1:
        raise ValueError(f"n_bootstrap must be at least 1, got {n_bootstrap}")
    if int(seed) < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    for level, frame in (("volume", per_volume), ("slice", per_slice)):
        conditions = frame["condition"] if frame is not None and "condition" in frame.columns else None
        if conditions is not None and conditions.nunique(dropna=False) > 1:  # pragma: no mutate (None: as False)
            raise DataError(f"{level} metrics", (
                f"several evaluation conditions {sorted(map(str, conditions.unique()))}; "
                f"compare one condition at a time"))
    rows: List[dict] = []
    found_reference = False  # pragma: no mutate (None is as falsy)
    for level, frame, make_rows in (("volume", per_volume, _volume_rows), ("slice", per_slice, _slice_rows)):
        if frame is None or frame.empty:
            continue
        for group in _collect(frame, level, reference):
            found_reference = True
            rows.extend(make_rows(group, reference, int(n_bootstrap), int(seed)))
    if not found_reference:
        raise DataError("metrics files", f"the reference method {reference!r} has no rows")
    table = pd.DataFrame(rows, columns=COLUMNS)
    if table.empty:
        return table
    table = _adjust(table)
    ranks = [_method_rank(m) for m in table["method"]]  # pragma: no mutate (rows are built in this order)
    order = sorted(range(len(table)), key=lambda i: (
        LEVELS.index(table.at[i, "level"]), table.at[i, "table"], table.at[i, "dataset"],
        int(table.at[i, "acceleration"]), METRICS.index(table.at[i, "metric"]), ranks[i]))
    # pragma: drop=False would add an index column, which the column selection at the end leaves out
    table = table.iloc[order].reset_index(drop=True)  # pragma: no mutate
    for col in _INT_COLUMNS:
        table[col] = table[col].astype("Int64")
    return table[COLUMNS]


def _adjust(table: pd.DataFrame) -> pd.DataFrame:
    """Holm over each (table, metric, level, test) family; floors adjusted with the same m."""
    table = table.copy()
    for idx in table.groupby(["table", "metric", "level"]).groups.values():  # families are independent
        m = len(idx)
        table.loc[idx, "family_size"] = m
        for p_col, holm_col in _TESTS.values():
            table.loc[idx, holm_col] = holm(table.loc[idx, p_col].to_numpy())  # holm reads them as floats
        for floor_col, holm_col in _FLOORS.items():
            # pragma: the floor columns are float64 already (dtype=None reads them alike)
            table.loc[idx, holm_col] = np.minimum(1.0, m * table.loc[idx, floor_col].to_numpy(dtype=float))  # pragma: no mutate
    return table


# ----------------------------------------------------------------------------- command line

def _count(text: str, minimum: int) -> int:
    """An integer option of at least ``minimum`` (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr stats``."""
    parser.add_argument("--slices", nargs="+", type=Path, required=True,
                        help="per-slice metric CSVs of `oucr evaluate` (a file named twice counts once)")
    parser.add_argument("--volumes", nargs="+", type=Path, required=True,
                        help="per-volume metric CSVs of `oucr evaluate` (a file named twice counts once)")
    parser.add_argument("--reference", default=REFERENCE,
                        help=f"the method compared with every other one (default: {REFERENCE})")
    parser.add_argument("--out", type=Path, required=True, help="output CSV (columns in the module docstring)")
    parser.add_argument("--bootstrap", type=lambda t: _count(t, 1), default=DEFAULT_BOOTSTRAP, metavar="N",
                        help=f"bootstrap resamples per group, also the random sign flips of the slice-level test "
                             f"above {EXACT_SIGNFLIP_MAX_VOLUMES} volumes (default: {DEFAULT_BOOTSTRAP})")
    parser.add_argument("--seed", type=lambda t: _count(t, 0), default=DEFAULT_SEED,
                        help=f"non-negative seed of the bootstrap, combined with each group's identity "
                             f"(default: {DEFAULT_SEED})")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr stats``."""
    start = time.perf_counter()
    per_slice = read_metric_files(args.slices, required=("slice",))
    per_volume = read_metric_files(args.volumes)
    table = significance_table(per_slice, per_volume, args.reference, args.bootstrap, args.seed)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)  # pragma: no mutate (index=None is as falsy)
    log.info("wrote %d comparisons to %s in %.2f s", len(table), args.out, time.perf_counter() - start)
    return 0
