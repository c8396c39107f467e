"""``oucr stats``: paired significance tests of OUCR against every other method.

For every dataset, acceleration, metric (PSNR, SSIM, NMSE) and pairing level
(per slice and per volume), OUCR is compared with each other method on exactly
the same slices/volumes (an inner join on the keys; a method missing some of
them is an error, not a silent drop): Wilcoxon signed-rank test and paired
t-test (``scipy.stats``), each Holm-corrected over the comparisons of one
family (dataset x acceleration x metric x level x test), with the mean paired
difference (OUCR minus the other method; for NMSE lower is better) and its 95 %
confidence interval from the t distribution, and Cohen's d_z as effect size.

Output columns: ``dataset,acceleration,metric,level,method,reference,n,mean_reference,
mean_method,mean_diff,ci_low,ci_high,cohen_dz,t_stat,t_p,t_p_holm,wilcoxon_stat,
wilcoxon_p,wilcoxon_p_holm``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Iterable, List, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from oucr.errors import DataError
from oucr.io import atomic_path

log = logging.getLogger(__name__)

METRICS = ("psnr", "ssim", "nmse")
KEYS = {"slice": ["volume", "slice"], "volume": ["volume"]}
REFERENCE = "OUCR"


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaNs are left out of the family and stay NaN)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        out[idx] = running
    return out


def paired_comparison(reference: np.ndarray, other: np.ndarray, confidence: float = 0.95) -> dict:
    """Paired statistics of ``reference - other``.

    Returns:
        dict with n, means, mean difference and CI, Cohen's d_z, t-test and Wilcoxon results.
    """
    reference = np.asarray(reference, dtype=float)
    other = np.asarray(other, dtype=float)
    if reference.shape != other.shape:
        raise ValueError(f"paired samples differ in length: {reference.shape} vs {other.shape}")
    finite = np.isfinite(reference) & np.isfinite(other)
    reference, other = reference[finite], other[finite]
    diff = reference - other
    n = diff.size
    row = {"n": n, "mean_reference": reference.mean() if n else np.nan,
           "mean_method": other.mean() if n else np.nan, "mean_diff": diff.mean() if n else np.nan}
    sd = diff.std(ddof=1) if n > 1 else np.nan
    if n > 1 and sd > 0:
        half = sps.t.ppf(0.5 + confidence / 2, n - 1) * sd / np.sqrt(n)
        t = sps.ttest_rel(reference, other)
        row.update(ci_low=diff.mean() - half, ci_high=diff.mean() + half, cohen_dz=diff.mean() / sd,
                   t_stat=float(t.statistic), t_p=float(t.pvalue))
    else:
        row.update(ci_low=row["mean_diff"], ci_high=row["mean_diff"], cohen_dz=np.nan, t_stat=np.nan,
                   t_p=np.nan if n < 2 else 1.0)
    if n > 0 and np.any(diff != 0):
        w = sps.wilcoxon(reference, other)
        row.update(wilcoxon_stat=float(w.statistic), wilcoxon_p=float(w.pvalue))
    else:
        row.update(wilcoxon_stat=np.nan, wilcoxon_p=np.nan if n == 0 else 1.0)
    return row


def significance_table(per_slice: pd.DataFrame, per_volume: pd.DataFrame, reference: str = REFERENCE) -> pd.DataFrame:
    """Compare ``reference`` with every other method (columns in the module docstring).

    Args:
        per_slice: concatenated per-slice metrics of ``oucr evaluate``.
        per_volume: concatenated per-volume metrics.
        reference: the method every other one is compared with.

    Raises:
        DataError: when a method lacks slices/volumes that the reference has.
    """
    rows: List[dict] = []
    for level, frame in (("slice", per_slice), ("volume", per_volume)):
        keys = KEYS[level]
        for (dataset, acc), group in frame.groupby(["dataset", "acceleration"], sort=True):
            ref = group[group["method"] == reference]
            if ref.empty:
                continue
            for method in sorted(set(group["method"]) - {reference}):
                other = group[group["method"] == method]
                merged = ref.merge(other, on=keys, suffixes=("_ref", "_other"), validate="one_to_one")
                if len(merged) != len(ref) or len(merged) != len(other):
                    raise DataError(
                        f"{dataset} x{acc}",
                        f"{method} and {reference} were evaluated on different {level}s "
                        f"({len(other)} vs {len(ref)}, {len(merged)} in common)",
                    )
                for metric in METRICS:
                    stats_row = paired_comparison(merged[f"{metric}_ref"].to_numpy(), merged[f"{metric}_other"].to_numpy())
                    rows.append({"dataset": dataset, "acceleration": int(acc), "metric": metric, "level": level,
                                 "method": method, "reference": reference, **stats_row})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    for test in ("t", "wilcoxon"):
        table[f"{test}_p_holm"] = np.nan
        for _, idx in table.groupby(["dataset", "acceleration", "metric", "level"]).groups.items():
            table.loc[idx, f"{test}_p_holm"] = holm(table.loc[idx, f"{test}_p"].to_numpy())
    cols = ["dataset", "acceleration", "metric", "level", "method", "reference", "n", "mean_reference",
            "mean_method", "mean_diff", "ci_low", "ci_high", "cohen_dz", "t_stat", "t_p", "t_p_holm",
            "wilcoxon_stat", "wilcoxon_p", "wilcoxon_p_holm"]
    return table[cols]


def read_metric_files(paths: Iterable[Path]) -> pd.DataFrame:
    """Concatenate metric CSVs written by ``oucr evaluate``."""
    frames = []
    for p in dict.fromkeys(Path(q) for q in paths):  # a file named twice counts once
        if not p.is_file():
            raise DataError(p, "metrics file does not exist")
        frames.append(pd.read_csv(p))
    if not frames:
        raise DataError("(none)", "no metrics files given")
    frame = pd.concat(frames, ignore_index=True)
    keys = [c for c in ("method", "dataset", "acceleration", "volume", "slice") if c in frame.columns]
    duplicated = frame.duplicated(subset=keys)
    if duplicated.any():
        first = frame.loc[duplicated, keys].iloc[0].to_dict()
        raise DataError(", ".join(map(str, paths)), f"{int(duplicated.sum())} duplicated metric rows, e.g. {first}")
    return frame


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr stats``."""
    parser.add_argument("--slices", nargs="+", type=Path, required=True, help="per-slice metric CSVs")
    parser.add_argument("--volumes", nargs="+", type=Path, required=True, help="per-volume metric CSVs")
    parser.add_argument("--reference", default=REFERENCE, help="the method compared with all others")
    parser.add_argument("--out", type=Path, required=True, help="output CSV")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr stats``."""
    table = significance_table(read_metric_files(args.slices), read_metric_files(args.volumes), args.reference)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    log.info("wrote %d comparisons to %s", len(table), args.out)
    return 0
