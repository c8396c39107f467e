"""``oucr tables``: Table 1, Table 2 and the significance summary from the pipeline's files.

Every number comes from a file the pipeline wrote: per-volume metrics of
``oucr evaluate``, the parameter counts of ``oucr params``, the paired tests of
``oucr stats``, and the cost of each run (its Snakemake benchmark file, its
``info.json`` and its reconstruction folder's ``timing.json``).

Aggregation (:func:`summarise`). A method trained ``K`` times (replicates) has,
per replicate, the mean of its per-volume values; the table reports the mean of
those replicate means (``<metric>_mean``), the SD across replicates
(``<metric>_rep_sd``, empty for one replicate), and the SD over test volumes of the
replicate-averaged per-volume values (``<metric>_sd``, the paper's spread).

Paper comparison (:func:`oucr.config.paper_reference`). A dataset is compared with a paper
column only when it is the paper's own data (``paper_dataset: fastMRI`` on fastMRI
files) or declared a stand-in (``stand_in: true``); the header then says
"stand-in for HPKS". ``paper_dataset`` absent or ``none`` means no paper column.
When the config says ``demo: true`` every view is labelled as demo numbers.

Outputs in ``--out-dir``:
- ``table1.csv`` (tidy, one row per method x dataset x acceleration, columns
  :data:`TABLE1_COLUMNS`), ``table1.md``, ``table1.tex``; with replicates, the Markdown
  files end with a section of across-replicate SDs (:func:`replicate_spread`);
- ``table2.csv``, ``table2.md``, ``table2.tex`` (the ablation);
- ``significance.md`` (from ``significance.csv``);
- ``provenance.md``: the commits, package versions and devices behind the numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from oucr.config import load_config, paper_label, paper_reference
from oucr.errors import DataError
from oucr.io import atomic_path, atomic_write_text, read_csv_file
from oucr.names import ZERO_FILLED, evaluated_as
from oucr.paper import reported
from oucr.metric_files import read_metric_files
from oucr.stats_markdown import significance_markdown
from oucr.text_tables import to_latex, to_markdown

log = logging.getLogger(__name__)

DEMO_NOTE = (
    "DEMO numbers: small networks trained for minutes on synthetic virtual subjects derived from the "
    "MNI152 template, at a reduced image size. They exercise the pipeline and are NOT comparable "
    "with the paper's values shown beside them."
)
METRICS = ("psnr", "ssim", "nmse", "haarpsi", "vif")
PARAMS_FOOTNOTE = ("Params counts the parameters as the method's public reference code does; where that code "
                   "defines layers its forward pass never calls (Kiu-net), the parameters actually used are "
                   "in brackets.")

TABLE1_COLUMNS = (
    ["method", "params", "params_used", "paper_params", "dataset", "paper_dataset", "acceleration",
     "realised_acceleration", "n_volumes", "n_replicates"]
    + [f"{m}_{s}" for m in METRICS for s in ("mean", "sd", "rep_sd")]
    + ["paper_psnr", "paper_ssim", "delta_psnr", "delta_ssim", "train_hours", "train_device",
       "infer_ms_per_slice", "label"]
)


def summarise(per_volume: pd.DataFrame) -> pd.DataFrame:
    """Means over replicates of per-volume means, SD over volumes and across replicates (module docstring).

    Returns:
        one row per method x dataset x acceleration: ``n_volumes``, ``n_replicates``,
        ``realised_acceleration`` and ``<metric>_mean/_sd/_rep_sd`` for each metric present.
    """
    frame = per_volume.copy()
    if "replicate" not in frame:
        frame["replicate"] = 0  # pragma: no mutate (any constant: one replicate)
    keys = ["method", "dataset", "acceleration"]
    present = [m for m in METRICS if m in frame.columns]
    rows = []
    for key, group in frame.groupby(keys, sort=False):  # pragma: no mutate (sort=None is as falsy)
        row: Dict[str, Any] = dict(zip(keys, key))
        per_rep = group.groupby("replicate")[present].mean()
        per_vol = group.groupby("volume")[present].mean()  # replicate-averaged per-volume values
        row["n_volumes"] = int(group["volume"].nunique())
        row["n_replicates"] = int(group["replicate"].nunique())
        row["realised_acceleration"] = float(group.drop_duplicates("volume")["realised_acceleration"].mean()) \
            if "realised_acceleration" in group else np.nan
        for m in present:
            row[f"{m}_mean"] = float(per_rep[m].mean())
            # the sample SD of a single value is NaN (pandas, ddof=1): no SD from one volume or one replicate
            row[f"{m}_sd"] = float(per_vol[m].std(ddof=1))
            row[f"{m}_rep_sd"] = float(per_rep[m].std(ddof=1))
        rows.append(row)
    return pd.DataFrame(rows)


def paper_value(table: str, method: str, paper_dataset: Optional[str], acc: int, col: str) -> float:
    """The paper's reported value, NaN when the paper has none (or no paper column applies)."""
    if paper_dataset is None:
        return np.nan
    rep = reported()
    row = rep[(rep["table"] == table) & (rep["method"] == method) & (rep["dataset"] == paper_dataset)
              & (rep["acceleration"] == acc)]
    return float(row[col].iloc[0]) if len(row) else np.nan


def read_costs(benchmarks: Sequence[Path], infos: Sequence[Path], recon_dirs: Sequence[Path]) -> pd.DataFrame:
    """Cost of each trained replicate: training hours and device, inference ms per slice.

    The three lists describe the same runs in the same order (the workflow builds them so):
    Snakemake's ``benchmark:`` file of the training job (its ``s`` column, the job's wall
    time), the run's ``info.json`` (identity and device) and its reconstruction folder
    (``timing.json``).

    Raises:
        DataError: naming the file that is missing or unreadable, or lists of unequal length.
    """
    if not (len(benchmarks) == len(infos) == len(recon_dirs)):
        raise DataError("(cost inputs)", f"{len(benchmarks)} benchmark files, {len(infos)} info files and "
                        f"{len(recon_dirs)} reconstruction folders: they must describe the same runs")
    rows = []
    for bench, info_path, recon in zip(map(Path, benchmarks), map(Path, infos), map(Path, recon_dirs)):
        info = _read_json(info_path, "training info file")
        timing = _read_json(recon / "timing.json", "reconstruction timing file")
        timings = read_csv_file(bench, "Snakemake benchmark file", ("s",), sep="\t")
        seconds = pd.to_numeric(timings["s"], errors="coerce")
        if seconds.empty or not np.isfinite(seconds.iloc[0]):
            raise DataError(bench, "Snakemake benchmark file has no numeric seconds (column s) in its first row")
        seconds = float(seconds.iloc[0])
        rows.append({"method": info["method"], "dataset": info["dataset"], "acceleration": int(info["acceleration"]),
                     "train_hours": seconds / 3600.0, "train_device": info["device"],
                     "infer_ms_per_slice": 1e3 * float(timing["seconds_per_slice"])})
    if not rows:
        return pd.DataFrame(columns=["method", "dataset", "acceleration", "train_hours", "train_device",
                                     "infer_ms_per_slice"])
    frame = pd.DataFrame(rows)
    # sort=None is as falsy as False: that mutant is equivalent
    return frame.groupby(["method", "dataset", "acceleration"], sort=False).agg(  # pragma: no mutate
        train_hours=("train_hours", "mean"), train_device=("train_device", lambda d: ", ".join(sorted(set(d)))),
        infer_ms_per_slice=("infer_ms_per_slice", "mean")).reset_index()


def _read_json(path: Path, what: str) -> Dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(path, f"{what} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(path, f"not a readable {what} ({err})") from err


def dataset_order(config: Mapping[str, Any]) -> List[str]:
    """Datasets in ``figures.dataset_order`` first (those configured), then the rest in config order."""
    configured = list(config.get("datasets") or {})
    first = [d for d in ((config.get("figures") or {}).get("dataset_order") or []) if d in configured]
    return first + [d for d in configured if d not in first]


def _row(summary: pd.DataFrame, table: str, method: str, dataset: str, paper: Optional[str], acc: int,
         label: str) -> Dict[str, Any]:
    hit = summary[(summary["method"] == evaluated_as(method)) & (summary["dataset"] == dataset)
                  & (summary["acceleration"] == acc)]
    if hit.empty:
        raise DataError(f"{dataset} x{acc}", f"no evaluated results for {method}")
    row = hit.iloc[0].to_dict()
    row.update({"method": method, "paper_dataset": paper, "label": label,
                "paper_psnr": paper_value(table, method, paper, acc, "psnr"),
                "paper_ssim": paper_value(table, method, paper, acc, "ssim")})
    row["delta_psnr"] = row["psnr_mean"] - row["paper_psnr"]
    row["delta_ssim"] = row["ssim_mean"] - row["paper_ssim"]
    return row


def _with_params_and_cost(rows: List[Dict[str, Any]], params: Optional[pd.DataFrame],
                          costs: Optional[pd.DataFrame]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    lookup = {} if params is None else {r["method"]: r for _, r in params.iterrows()}
    for col, src in (("params", "params"), ("params_used", "params_used"), ("paper_params", "paper_params")):
        frame[col] = [_int_or_na(lookup[m].get(src)) if m in lookup else pd.NA for m in frame["method"]]
    if costs is not None and not costs.empty:
        # pragma: the keys are the only shared columns today; naming them keeps a future shared column out
        frame = frame.merge(costs, how="left", on=["method", "dataset", "acceleration"])  # pragma: no mutate
    return frame.reindex(columns=TABLE1_COLUMNS)


def table1(config: Mapping[str, Any], per_volume: pd.DataFrame, params: Optional[pd.DataFrame],
           costs: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Tidy Table 1: Zero-filled plus the config's methods on every dataset x acceleration."""
    methods = [ZERO_FILLED] + list(config.get("methods") or [])
    label = "demo" if config.get("demo") else "experiment"
    summary = summarise(per_volume)
    rows = []
    for dataset in dataset_order(config):
        paper = paper_reference(config["datasets"][dataset], dataset)
        for acc in sorted(int(a) for a in (config.get("accelerations") or {})):
            rows += [_row(summary, "table1", m, dataset, paper, acc, label) for m in methods]
    return _with_params_and_cost(rows, params, costs)


def table2(config: Mapping[str, Any], per_volume: pd.DataFrame, params: Optional[pd.DataFrame]) -> pd.DataFrame:
    """Tidy Table 2: the ablation variants on the ablation dataset and acceleration."""
    ablation = config.get("ablation") or {}
    variants = list(ablation.get("variants") or [])
    if not variants:
        return pd.DataFrame(columns=TABLE1_COLUMNS)
    dataset, acc = ablation["dataset"], int(ablation.get("acceleration", 4))
    paper = paper_reference(config["datasets"][dataset], dataset)
    label = "demo" if config.get("demo") else "experiment"
    summary = summarise(per_volume)
    frame = _with_params_and_cost([_row(summary, "table2", v, dataset, paper, acc, label) for v in variants],
                                  params, None)
    frame["paper_params"] = pd.NA
    return frame


def _int_or_na(v: Any) -> Any:
    return pd.NA if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else int(v)


def fmt_value(value: Any, digits: int) -> str:
    """``value`` with ``digits`` decimals, ``-`` when it is missing."""
    return "-" if pd.isna(value) else f"{value:.{digits}f}"


def fmt_mean_sd(mean: float, sd: float, digits: int) -> str:
    """``mean ± sd`` (just the mean when the SD is undefined, ``-`` when there is no mean)."""
    text = fmt_value(mean, digits)
    return text if pd.isna(mean) or pd.isna(sd) else f"{text} ± {sd:.{digits}f}"


def fmt_params(count: Any, used: Any = pd.NA) -> str:
    """Millions with three decimals; the used count in brackets with a marker when it differs."""
    if count is pd.NA or count is None or (isinstance(count, float) and np.isnan(count)):
        return "-"
    text = f"{int(count) / 1e6:.3f} M"
    if not pd.isna(used) and int(used) != int(count):
        text += f" ({int(used) / 1e6:.3f} M used)*"
    return text


def paper_shaped(t1: pd.DataFrame, config: Mapping[str, Any]) -> pd.DataFrame:
    """Wide view like the paper's Table 1, one row per method, plus the training hours per cell."""
    rows = []
    for method, g in t1.groupby("method", sort=False):  # pragma: no mutate (sort=None is as falsy)
        row = {"Method": method, "Params": fmt_params(g["params"].iloc[0], g["params_used"].iloc[0])}
        for _, r in g.iterrows():
            key = f"{r['dataset']} {int(r['acceleration'])}x"
            header = paper_label(config["datasets"][r["dataset"]], r["dataset"])
            row[f"{key} PSNR"] = fmt_mean_sd(r["psnr_mean"], r["psnr_sd"], 2)
            if header:
                row[f"{key} PSNR {header} (Δ)"] = (
                    "-" if pd.isna(r["paper_psnr"]) else f"{r['paper_psnr']:.2f} ({r['delta_psnr']:+.2f})")
            row[f"{key} SSIM"] = fmt_mean_sd(r["ssim_mean"], r["ssim_sd"], 4)
            if header:
                row[f"{key} SSIM {header} (Δ)"] = (
                    "-" if pd.isna(r["paper_ssim"]) else f"{r['paper_ssim']:.4f} ({r['delta_ssim']:+.4f})")
            row[f"{key} train h"] = fmt_value(r["train_hours"], 2)
        rows.append(row)
    return pd.DataFrame(rows)


def replicate_spread(tidy: pd.DataFrame) -> pd.DataFrame:
    """Wide view of the across-replicate SD of each cell's test mean, one row per method.

    Args:
        tidy: a tidy table (:func:`table1` or :func:`table2`) with ``n_replicates`` and
            ``<metric>_rep_sd`` columns.

    Returns:
        Columns ``Method``, ``Replicates`` (the replicate counts of its cells) and, per
        dataset x acceleration, the PSNR (dB, two decimals) and SSIM (four decimals) SDs;
        ``-`` where a method ran once (no training, or a single replicate).
    """
    rows = []
    for method, g in tidy.groupby("method", sort=False):  # pragma: no mutate (sort=None is as falsy)
        counts = sorted({int(k) for k in g["n_replicates"]})
        row = {"Method": method, "Replicates": ", ".join(str(k) for k in counts)}
        for _, r in g.iterrows():
            key = f"{r['dataset']} {int(r['acceleration'])}x"
            row[f"{key} PSNR SD"] = fmt_value(r["psnr_rep_sd"], 2)
            row[f"{key} SSIM SD"] = fmt_value(r["ssim_rep_sd"], 4)
        rows.append(row)
    return pd.DataFrame(rows)


def _has_replicates(tidy: pd.DataFrame) -> bool:
    """Whether any cell of a tidy table averages two or more training replicates."""
    return bool((tidy["n_replicates"] > 1).any())


def _spread_section(tidy: pd.DataFrame) -> str:
    """The Markdown section of across-replicate SDs; empty when no cell has two replicates."""
    if not _has_replicates(tidy):
        return ""
    return ("\n## Across training replicates: SD of the test mean\n\n"
            "> How far a cell's mean moves between trainings that differ only in their initialisation seed "
            "(an SD from as many replicates as the Replicates column says; two give only a rough figure): "
            "a gap between two methods of that size can reverse with another seed.\n\n"
            + to_markdown(replicate_spread(tidy)))


def _notes(frame: pd.DataFrame, demo: bool) -> str:
    notes = [f"> {DEMO_NOTE}"] if demo else []
    if _has_replicates(frame):
        notes.append("> Means over training replicates; ± is the SD over test volumes of the replicate-averaged "
                     "values; the across-replicate SD is in the section below the table (and the `*_rep_sd` "
                     "columns of the CSV).")
    if any(str(v).endswith("*") for v in frame.get("Params", [])):
        notes.append(f"> \\* {PARAMS_FOOTNOTE}")
    return "\n\n".join(notes) + ("\n\n" if notes else "")


def write_tables(config: Mapping[str, Any], volume_files: Sequence[Path], params_file: Optional[Path],
                 significance_file: Optional[Path], out_dir: Path, costs: Optional[pd.DataFrame] = None) -> None:
    """Write every table file (see the module docstring)."""
    per_volume = read_metric_files(volume_files)
    params = None
    if params_file is not None:
        params = read_csv_file(params_file, "parameter-count table", ("method", "params"))
    demo = bool(config.get("demo"))
    out_dir = Path(out_dir)

    t1 = table1(config, per_volume, params, costs)
    _write_csv(t1, out_dir / "table1.csv")
    wide = paper_shaped(t1, config)
    title = "Table 1" + (" (DEMO)" if demo else "") + ": PSNR / SSIM (mean ± SD over test volumes), training hours"
    notes = _notes(t1.assign(Params=wide.set_index("Method")["Params"].reindex(t1["method"]).to_numpy()), demo)
    atomic_write_text(out_dir / "table1.md", f"# {title}\n\n{notes}{to_markdown(wide)}{_spread_section(t1)}")
    atomic_write_text(out_dir / "table1.tex", to_latex(wide, title + (". " + DEMO_NOTE if demo else ""), "tab:table1"))

    t2 = table2(config, per_volume, params)
    _write_csv(t2, out_dir / "table2.csv")
    title2 = "Table 2" + (" (DEMO)" if demo else "") + ": ablation"
    if not t2.empty:
        title2 += f" on {t2['dataset'].iloc[0]} at {int(t2['acceleration'].iloc[0])}x"
    # pragma below: the name only words a ConfigError that table1 (same datasets, checked first) raises already
    header = paper_label(config["datasets"][t2["dataset"].iloc[0]], t2["dataset"].iloc[0]) if not t2.empty else ""  # pragma: no mutate
    wide2 = pd.DataFrame({"Modules": t2["method"], "Params": [fmt_params(v) for v in t2["params"]],
                          "PSNR": [fmt_mean_sd(m, s, 2) for m, s in zip(t2["psnr_mean"], t2["psnr_sd"])],
                          "SSIM": [fmt_mean_sd(m, s, 4) for m, s in zip(t2["ssim_mean"], t2["ssim_sd"])]})
    if header:
        wide2.insert(3, f"PSNR {header}", [fmt_value(v, 2) for v in t2["paper_psnr"]])
        wide2[f"SSIM {header}"] = [fmt_value(v, 4) for v in t2["paper_ssim"]]
    table2_md = f"# {title2}\n\n{_notes(t2, demo)}{to_markdown(wide2)}{_spread_section(t2)}"
    atomic_write_text(out_dir / "table2.md", table2_md)
    atomic_write_text(out_dir / "table2.tex", to_latex(wide2, title2 + (". " + DEMO_NOTE if demo else ""), "tab:table2"))

    atomic_write_text(out_dir / "provenance.md", provenance_markdown(per_volume, train_devices(costs)))

    if significance_file is not None:
        sig = read_csv_file(significance_file, "significance table")
        atomic_write_text(out_dir / "significance.md", significance_markdown(sig, demo, DEMO_NOTE))


def train_devices(costs: Optional[pd.DataFrame]) -> List[str]:
    """The devices the Table 1 networks trained on (from their info files)."""
    if costs is None or costs.empty:
        return []
    return sorted({d.strip() for devices in costs["train_device"].dropna() for d in str(devices).split(",")})


def provenance_markdown(per_volume: pd.DataFrame, trained_on: Sequence[str] = ()) -> str:
    """Where the tables' numbers came from: commits, dirty trees, package versions, devices."""
    def values(column: str) -> List[str]:
        return sorted({str(v) for v in per_volume[column].dropna()}) if column in per_volume else []

    lines = ["# Provenance of the tables", ""]
    dirty = values("git_dirty")
    lines.append("- code commit(s) of the evaluations: " + (", ".join(f"`{c}`" for c in values("git_commit")) or "-")
                 + (" (tracked files were modified)" if "True" in dirty else ""))
    lines.append("- package versions: " + (", ".join(f"`{v}`" for v in values("versions")) or "-"))
    lines.append("- reconstructed on: " + (", ".join(values("device")) or "-"))
    lines.append("- trained on: " + (", ".join(trained_on) or "-"))
    return "\n".join(lines) + "\n"


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)  # pragma: no mutate (index=None is as falsy)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr tables``."""
    parser.add_argument("--config", required=True, help="YAML config or inline JSON (demo, methods, datasets, "
                                                        "accelerations, ablation, figures)")
    parser.add_argument("--volumes", nargs="+", type=Path, required=True, help="per-volume metric CSVs")
    parser.add_argument("--params", type=Path, help="CSV of `oucr params`")
    parser.add_argument("--significance", type=Path, help="CSV of `oucr stats`")
    parser.add_argument("--train-benchmarks", nargs="*", type=Path, default=[],
                        help="Snakemake benchmark files of the Table 1 trainings (training time)")
    parser.add_argument("--train-info", nargs="*", type=Path, default=[],
                        help="info.json of the same trainings, in the same order (identity, device)")
    parser.add_argument("--recon-timing", nargs="*", type=Path, default=[],
                        help="their reconstruction folders, in the same order (timing.json: inference time)")
    parser.add_argument("--out-dir", type=Path, required=True, help="folder receiving the table files")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr tables``."""
    # no cost files give an empty cost frame, which the tables treat as no costs
    costs = read_costs(args.train_benchmarks, args.train_info, args.recon_timing)
    write_tables(load_config(args.config), args.volumes, args.params, args.significance, args.out_dir, costs)
    return 0
