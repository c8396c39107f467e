"""The Markdown summary of the significance table written by ``oucr stats`` (what its n can support, in words)."""

from __future__ import annotations

import itertools
from typing import Optional

import numpy as np
import pandas as pd

from oucr.paired_tests import wilcoxon_floor
from oucr.stats import DEFAULT_BOOTSTRAP, REFERENCE, table_of
from oucr.text_tables import to_markdown


def _fmt_p(p: float) -> str:
    return "-" if pd.isna(p) else f"{p:.3g}"


def _fmt_num(v: float, metric: str) -> str:
    if pd.isna(v):
        return "-"
    if np.isinf(v):
        return f"{v:+}"
    return f"{v:+.2e}" if metric == "nmse" else f"{v:+.{3 if metric == 'psnr' else 4}f}"


def _fmt_dz(v: float) -> str:
    if pd.isna(v):
        return "-"
    return f"{v:+.2f}"  # +inf and -inf format as such


def _interval(v: float, low: float, high: float, fmt) -> str:
    return f"{fmt(v)} [{fmt(low)}, {fmt(high)}]"


def _needed_volumes(m: int, alpha: float = 0.05) -> int:
    """Smallest n whose Wilcoxon floor, times the family size m, is below ``alpha``."""
    # Equivalent mutants: starting at 2 (the floor of n = 1 is 1) and `<=` (a dyadic m * 2^(1-n)
    # never equals a decimal alpha such as 0.05 exactly).
    return next(n for n in itertools.count(1) if m * wilcoxon_floor(n) < alpha)  # pragma: no mutate


def _power_sentence(rows: pd.DataFrame, table_name: str, test: str, unit: str) -> str:
    """What the numbers of volumes of ``rows`` allow for ``test`` ('wilcoxon' or 'signflip'), in words."""
    floor_col = f"{test}_min_p"
    label = "two-sided Wilcoxon" if test == "wilcoxon" else "cluster sign-flip"
    sentences = []
    for n in sorted(rows["n"].dropna().astype(int).unique()):
        sub = rows[rows["n"] == n]
        m = int(sub["family_size"].max())
        floor = float(sub[floor_col].min()) if sub[floor_col].notna().any() else wilcoxon_floor(n)
        floor_holm = min(1.0, m * floor)
        reachable = floor_holm < 0.05
        text = (f"With n = {n} test volumes per comparison the smallest {label} p-value is {_fmt_p(floor)}, "
                f"{_fmt_p(floor_holm)} after Holm over the {m} comparison{'s' if m != 1 else ''} per metric of "
                f"{table_name}")
        if test == "signflip" and (sub["signflip_method"] == "monte-carlo").any():
            text += f" (with {int(sub['n_bootstrap'].max())} random sign flips the floor is 1 / (flips + 1); " \
                    f"raise --bootstrap to lower it)"
        if reachable:
            hits = int((sub[f"{test}_p_holm"] < 0.05).sum())
            text += (f": p < 0.05 is reachable; {hits} of the {len(sub)} {unit} comparisons have a "
                     f"Holm-adjusted {label} p < 0.05.")
        else:
            text += (f": no comparison can reach p < 0.05, whatever the methods; read the differences and "
                     f"intervals as descriptive. At least {_needed_volumes(m)} volumes per comparison would be "
                     f"needed before a Holm-adjusted p < 0.05 were attainable.")
        sentences.append(text)
    return " ".join(sentences)


def _has_replicates(rows: pd.DataFrame) -> bool:
    return bool(((rows["n_replicates_reference"] > 1) | (rows["n_replicates_method"] > 1)).any())


def _volume_view(rows: pd.DataFrame) -> pd.DataFrame:
    view = pd.DataFrame({
        "Dataset": rows["dataset"], "Acc": rows["acceleration"], "Metric": rows["metric"], "vs": rows["method"],
        "n": rows["n"],
        "mean diff [95% CI]": [_interval(r.mean_diff, r.ci_low, r.ci_high, lambda v, m=r.metric: _fmt_num(v, m))
                               for r in rows.itertuples()],
        "d_z [95% CI]": [_interval(r.cohen_dz, r.dz_ci_low, r.dz_ci_high, _fmt_dz) for r in rows.itertuples()],
        "Wilcoxon p (Holm)": [f"{_fmt_p(r.wilcoxon_p)} ({_fmt_p(r.wilcoxon_p_holm)})" for r in rows.itertuples()],
        "t-test p (Holm)": [f"{_fmt_p(r.t_p)} ({_fmt_p(r.t_p_holm)})" for r in rows.itertuples()],
    })
    if _has_replicates(rows):
        view["replicate sign agreement"] = [
            f"{int(r.sign_agree)}/{int(r.sign_pairs)}" if r.sign_pairs > 1 else "-" for r in rows.itertuples()]
    return view


def _slice_view(rows: pd.DataFrame) -> pd.DataFrame:
    view = pd.DataFrame({
        "Dataset": rows["dataset"], "Acc": rows["acceleration"], "Metric": rows["metric"], "vs": rows["method"],
        "n volumes": rows["n"], "n slices": rows["n_slices"].astype("Int64"),  # counts, also read back from CSV
        "mean slice diff [hierarchical 95% CI]": [
            _interval(r.mean_diff, r.ci_low, r.ci_high, lambda v, m=r.metric: _fmt_num(v, m))
            for r in rows.itertuples()],
        "sign-flip p (Holm)": [f"{_fmt_p(r.signflip_p)} ({_fmt_p(r.signflip_p_holm)})" for r in rows.itertuples()],
    })
    if _has_replicates(rows):
        view["replicate sign agreement"] = [
            f"{int(r.sign_agree)}/{int(r.sign_pairs)}" if r.sign_pairs > 1 else "-" for r in rows.itertuples()]
    return view


_TABLE_TITLES = {"table1": "Table 1", "table2": "Table 2 (ablation)"}


def significance_markdown(sig: pd.DataFrame, demo: bool, demo_note: Optional[str] = None) -> str:
    """The significance summary as Markdown, per table: volume rows, slice rows, what n supports.

    Args:
        sig: the CSV of ``oucr stats`` as a DataFrame.
        demo: whether these are demo numbers (then ``demo_note`` is quoted at the top).
        demo_note: the demo warning to quote.

    Returns:
        the Markdown document.
    """
    reference = str(sig["reference"].iloc[0]) if len(sig) and "reference" in sig.columns else REFERENCE
    out = [f"# Paired comparisons: {reference} against every other method\n"]
    if demo:
        out.append(f"> {demo_note or 'DEMO numbers: not comparable with the paper.'}\n")
    if sig.empty:
        return "\n".join(out + ["No comparisons.\n"])
    sig = sig.copy()
    if "table" not in sig.columns:
        sig["table"] = [table_of(m) for m in sig["method"]]
    n_boot = int(sig["n_bootstrap"].dropna().iloc[0]) if sig["n_bootstrap"].notna().any() else DEFAULT_BOOTSTRAP
    out.append(
        f"The test volume is the unit of inference. Differences are {reference} minus the method, in metric "
        f"units: positive means {reference} scored higher, which is better for PSNR, SSIM, HaarPSI and VIF; "
        f"for NMSE lower is better, so a negative NMSE difference favours {reference}. Each method's values are "
        f"first averaged over its training replicates. Intervals are percentile bootstrap 95 % intervals over "
        f"{n_boot} resamples of the volumes; d_z is the mean volume difference over its SD (+/-inf when every "
        f"volume differs by the same amount). p-values are shown raw (Holm-adjusted), Holm over every dataset x "
        f"acceleration x method of a table, separately per metric, level and test. The paired t-test has no "
        f"floor on its p-value (it can be arbitrarily small at any n >= 2), but at small n it rests entirely on "
        f"the assumption of normally distributed differences, which so few volumes cannot check.\n")
    for table_key in ("table1", "table2"):
        part = sig[sig["table"] == table_key]
        if part.empty:
            continue
        title = _TABLE_TITLES[table_key]
        out.append(f"## {title}\n")
        volume = part[part["level"] == "volume"]
        if not volume.empty:
            out.append("### Volume level (one paired value per test volume)\n")
            out.append(_power_sentence(volume, title, "wilcoxon", "volume-level") + "\n")
            out.append(to_markdown(_volume_view(volume)))
        slices = part[part["level"] == "slice"]
        if not slices.empty:
            reachable = bool((slices["signflip_min_p_holm"] < 0.05).any())
            out.append("### Slice level (" + ("clustered by volume" if reachable else "descriptive") + ")\n")
            out.append(
                "Pooled mean of the per-slice differences with a hierarchical bootstrap interval (volumes "
                "resampled, then slices within each drawn volume); p from a cluster sign-flip test that flips "
                "all slices of a volume together. The slices of one volume are not independent, so this "
                "evidence rests on the same volumes as the volume level. "
                + _power_sentence(slices, title, "signflip", "slice-level") + "\n")
            out.append(to_markdown(_slice_view(slices)))
    return "\n".join(out)
