"""``oucr tables``: Table 1, Table 2 and the significance summary from the pipeline's files.

Every number comes from a file the pipeline wrote: per-volume metrics of
``oucr evaluate`` (mean and sample standard deviation over test volumes), the
parameter counts of ``oucr params`` (counted from the instantiated models at the
widths that were trained), and the paired tests of ``oucr stats``. The paper's
values (:mod:`oucr.paper`) stand beside ours with the difference. When the config
says ``demo: true`` every view is labelled as demo numbers, which are not
comparable with the paper's.

Outputs in ``--out-dir``:
- ``table1.csv`` (tidy, one row per method x dataset x acceleration), ``table1.md``, ``table1.tex``;
- ``table2.csv``, ``table2.md``, ``table2.tex`` (the ablation);
- ``significance.md`` (from ``significance.csv``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from oucr.config import load_config
from oucr.errors import DataError
from oucr.io import atomic_write_text
from oucr.paper import reported
from oucr.stats import read_metric_files

log = logging.getLogger(__name__)

ZERO_FILLED = "Zero-filled"
OUCR_FULL = "UC-CRNN + OC-CRNN + RM (OUCR)"
DEMO_NOTE = (
    "DEMO numbers: small networks trained for minutes on synthetic virtual subjects derived from the "
    "MNI152 template, at a reduced image size. They exercise the pipeline and are NOT comparable "
    "with the paper's values shown beside them."
)

TABLE1_COLUMNS = [
    "method", "params", "paper_params", "dataset", "paper_dataset", "acceleration", "realised_acceleration",
    "n_volumes", "psnr_mean", "psnr_sd", "ssim_mean", "ssim_sd", "nmse_mean", "nmse_sd",
    "paper_psnr", "paper_ssim", "delta_psnr", "delta_ssim", "label",
]


def summarise(per_volume: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample SD of PSNR, SSIM, NMSE per method x dataset x acceleration."""
    g = per_volume.groupby(["method", "dataset", "acceleration"], sort=False)
    out = g.agg(
        n_volumes=("volume", "nunique"),
        realised_acceleration=("realised_acceleration", "mean"),
        psnr_mean=("psnr", "mean"), psnr_sd=("psnr", "std"),
        ssim_mean=("ssim", "mean"), ssim_sd=("ssim", "std"),
        nmse_mean=("nmse", "mean"), nmse_sd=("nmse", "std"),
    )
    return out.reset_index()


def _paper_value(table: str, method: str, paper_dataset: Optional[str], acc: int, col: str) -> float:
    rep = reported()
    row = rep[(rep["table"] == table) & (rep["method"] == method) & (rep["dataset"] == paper_dataset)
              & (rep["acceleration"] == acc)]
    return float(row[col].iloc[0]) if len(row) else np.nan


def _params_lookup(params: Optional[pd.DataFrame]) -> Dict[str, Any]:
    if params is None:
        return {}
    return {r["method"]: r for _, r in params.iterrows()}


def _result_row(summary: pd.DataFrame, table: str, method: str, evaluated_as: str, dataset: str,
                paper_dataset: Optional[str], acc: int, params: Any, paper_params: Any, label: str) -> Dict[str, Any]:
    """One tidy row: our mean/SD from ``summary`` beside the paper's value and the difference."""
    hit = summary[(summary["method"] == evaluated_as) & (summary["dataset"] == dataset)
                  & (summary["acceleration"] == acc)]
    if hit.empty:
        raise DataError(f"{dataset} x{acc}", f"no evaluated results for {method}")
    row = hit.iloc[0].to_dict()
    paper_psnr = _paper_value(table, method, paper_dataset, acc, "psnr")
    paper_ssim = _paper_value(table, method, paper_dataset, acc, "ssim")
    row.update({
        "method": method, "params": params, "paper_params": paper_params, "paper_dataset": paper_dataset,
        "paper_psnr": paper_psnr, "paper_ssim": paper_ssim,
        "delta_psnr": row["psnr_mean"] - paper_psnr, "delta_ssim": row["ssim_mean"] - paper_ssim,
        "label": label,
    })
    return row


def _counts(plookup: Mapping[str, Any], method: str) -> tuple:
    p = plookup.get(method)
    if p is None:
        return pd.NA, pd.NA
    return _int_or_na(p["params"]), _int_or_na(p["paper_params"])


def table1(config: Mapping[str, Any], per_volume: pd.DataFrame, params: Optional[pd.DataFrame]) -> pd.DataFrame:
    """Tidy Table 1: Zero-filled plus the config's methods on every dataset x acceleration."""
    methods = [ZERO_FILLED] + list(config.get("methods") or [])
    label = "demo" if config.get("demo") else "experiment"
    summary = summarise(per_volume)
    plookup = _params_lookup(params)
    rows = []
    for dataset, section in (config.get("datasets") or {}).items():
        paper_dataset = (section or {}).get("paper_dataset")
        for acc in sorted(int(a) for a in (config.get("accelerations") or {})):
            for method in methods:
                params, paper_params = _counts(plookup, method)
                rows.append(_result_row(summary, "table1", method, method, dataset, paper_dataset, acc,
                                        params, paper_params, label))
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)


def table2(config: Mapping[str, Any], per_volume: pd.DataFrame, params: Optional[pd.DataFrame]) -> pd.DataFrame:
    """Tidy Table 2: the ablation variants on the ablation dataset and acceleration."""
    ablation = config.get("ablation") or {}
    variants = list(ablation.get("variants") or [])
    if not variants:
        return pd.DataFrame(columns=TABLE1_COLUMNS)
    dataset, acc = ablation.get("dataset"), int(ablation.get("acceleration", 4))
    paper_dataset = ((config.get("datasets") or {}).get(dataset) or {}).get("paper_dataset")
    summary = summarise(per_volume)
    plookup = _params_lookup(params)
    label = "demo" if config.get("demo") else "experiment"
    rows = []
    for variant in variants:
        evaluated_as = "OUCR" if variant == OUCR_FULL else variant
        params, _ = _counts(plookup, variant)
        rows.append(_result_row(summary, "table2", variant, evaluated_as, dataset, paper_dataset, acc,
                                params, pd.NA, label))
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)


def _int_or_na(v: Any) -> Any:
    return pd.NA if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA else int(v)


def _fmt(mean: float, sd: float, digits: int) -> str:
    if pd.isna(mean):
        return "-"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" if not pd.isna(sd) else f"{mean:.{digits}f}"


def _fmt_paper(v: float, digits: int) -> str:
    return "-" if pd.isna(v) else f"{v:.{digits}f}"


def _fmt_params(v: Any) -> str:
    return "-" if v is pd.NA or v is None or (isinstance(v, float) and np.isnan(v)) else f"{int(v) / 1e6:.3f} M"


def paper_shaped(t1: pd.DataFrame) -> pd.DataFrame:
    """Wide view like the paper's Table 1: one row per method, PSNR/SSIM columns per dataset x acceleration."""
    rows = []
    for method, g in t1.groupby("method", sort=False):
        row = {"Method": method, "Params": _fmt_params(g["params"].iloc[0])}
        for _, r in g.iterrows():
            key = f"{r['dataset']} {int(r['acceleration'])}x"
            row[f"{key} PSNR"] = _fmt(r["psnr_mean"], r["psnr_sd"], 2)
            row[f"{key} PSNR paper (Δ)"] = (
                "-" if pd.isna(r["paper_psnr"]) else f"{r['paper_psnr']:.2f} ({r['delta_psnr']:+.2f})")
            row[f"{key} SSIM"] = _fmt(r["ssim_mean"], r["ssim_sd"], 4)
            row[f"{key} SSIM paper (Δ)"] = (
                "-" if pd.isna(r["paper_ssim"]) else f"{r['paper_ssim']:.4f} ({r['delta_ssim']:+.4f})")
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in frame.iterrows():
        lines.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def to_latex(frame: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs LaTeX table."""
    def esc(s: Any) -> str:
        return (str(s).replace("\\", r"\textbackslash{}").replace("&", r"\&").replace("%", r"\%")
                .replace("_", r"\_").replace("#", r"\#").replace("±", r"$\pm$").replace("Δ", r"$\Delta$"))

    cols = list(frame.columns)
    out = [r"\begin{table}[t]", r"\centering", rf"\caption{{{esc(caption)}}}", rf"\label{{{label}}}",
           r"\resizebox{\textwidth}{!}{%", r"\begin{tabular}{" + "l" * len(cols) + "}", r"\toprule",
           " & ".join(esc(c) for c in cols) + r" \\", r"\midrule"]
    for _, r in frame.iterrows():
        out.append(" & ".join(esc(r[c]) for c in cols) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(out) + "\n"


def significance_markdown(sig: pd.DataFrame, demo: bool) -> str:
    """Summary of the paired tests: one line per comparison, volume and slice level, PSNR and SSIM."""
    head = "# Paired significance: OUCR against every other method\n\n"
    if demo:
        head += f"> {DEMO_NOTE}\n\n"
    head += ("Differences are OUCR minus the method (positive: OUCR better for PSNR/SSIM); 95 % CI from the "
             "t distribution; p-values Holm-corrected within each dataset x acceleration x metric x level.\n\n")
    if sig.empty:
        return head + "No comparisons.\n"
    view = sig[sig["metric"].isin(["psnr", "ssim"])].sort_values(
        ["dataset", "acceleration", "level", "metric", "method"], kind="stable").copy()
    digits = {"psnr": 3, "ssim": 5}
    view["mean diff [95% CI]"] = [
        f"{r.mean_diff:+.{digits[r.metric]}f} [{r.ci_low:+.{digits[r.metric]}f}, {r.ci_high:+.{digits[r.metric]}f}]"
        for r in view.itertuples()]
    view["Wilcoxon p (Holm)"] = [f"{p:.2e}" if not pd.isna(p) else "-" for p in view["wilcoxon_p_holm"]]
    view["t-test p (Holm)"] = [f"{p:.2e}" if not pd.isna(p) else "-" for p in view["t_p_holm"]]
    view["d_z"] = [f"{d:.2f}" if not pd.isna(d) else "-" for d in view["cohen_dz"]]
    view = view.rename(columns={"dataset": "Dataset", "acceleration": "Acc", "metric": "Metric",
                                "level": "Level", "method": "vs", "n": "n"})
    return head + to_markdown(view[["Dataset", "Acc", "Metric", "Level", "vs", "n", "mean diff [95% CI]",
                                    "Wilcoxon p (Holm)", "t-test p (Holm)", "d_z"]])


def write_tables(config: Mapping[str, Any], volume_files: Sequence[Path], params_file: Optional[Path],
                 significance_file: Optional[Path], out_dir: Path) -> None:
    """Write every table file (see the module docstring)."""
    per_volume = read_metric_files(volume_files)
    params = pd.read_csv(params_file) if params_file is not None else None
    demo = bool(config.get("demo"))
    note = f"> {DEMO_NOTE}\n\n" if demo else ""
    out_dir = Path(out_dir)

    t1 = table1(config, per_volume, params)
    _write_csv(t1, out_dir / "table1.csv")
    wide = paper_shaped(t1)
    title = "Table 1" + (" (DEMO)" if demo else "") + ": PSNR / SSIM (mean ± SD over test volumes)"
    atomic_write_text(out_dir / "table1.md", f"# {title}\n\n{note}{to_markdown(wide)}")
    atomic_write_text(out_dir / "table1.tex", to_latex(wide, title + (". " + DEMO_NOTE if demo else ""), "tab:table1"))

    t2 = table2(config, per_volume, params)
    _write_csv(t2, out_dir / "table2.csv")
    title2 = "Table 2" + (" (DEMO)" if demo else "") + ": ablation"
    if not t2.empty:
        title2 += f" on {t2['dataset'].iloc[0]} at {int(t2['acceleration'].iloc[0])}x"
    wide2 = pd.DataFrame({
        "Modules": t2["method"], "Params": [_fmt_params(v) for v in t2["params"]],
        "PSNR": [_fmt(m, s, 2) for m, s in zip(t2["psnr_mean"], t2["psnr_sd"])],
        "PSNR paper": [_fmt_paper(v, 2) for v in t2["paper_psnr"]],
        "SSIM": [_fmt(m, s, 4) for m, s in zip(t2["ssim_mean"], t2["ssim_sd"])],
        "SSIM paper": [_fmt_paper(v, 4) for v in t2["paper_ssim"]],
    })
    atomic_write_text(out_dir / "table2.md", f"# {title2}\n\n{note}{to_markdown(wide2)}")
    atomic_write_text(out_dir / "table2.tex", to_latex(wide2, title2 + (". " + DEMO_NOTE if demo else ""), "tab:table2"))

    if significance_file is not None:
        sig = pd.read_csv(significance_file)
        atomic_write_text(out_dir / "significance.md", significance_markdown(sig, demo))


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    from oucr.io import atomic_path

    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr tables``."""
    parser.add_argument("--config", required=True)
    parser.add_argument("--volumes", nargs="+", type=Path, required=True, help="per-volume metric CSVs")
    parser.add_argument("--params", type=Path, help="CSV of `oucr params`")
    parser.add_argument("--significance", type=Path, help="CSV of `oucr stats`")
    parser.add_argument("--out-dir", type=Path, required=True)


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr tables``."""
    write_tables(load_config(args.config), args.volumes, args.params, args.significance, args.out_dir)
    return 0
