"""``oucr robustness``: how each method behaves off its training conditions.

Every network is trained at one acceleration (``robustness.acceleration``, 4x by
default) and its test volumes are reconstructed under three perturbations, the
same inputs for every method (zero-filled, and the Table 1 methods named in
``robustness.methods``, default all; ``robustness.datasets`` limits the datasets):

* ``acceleration``: the masks of another acceleration (``shifted_acceleration``, 8x);
* ``equispaced``: equispaced instead of random masks at the training acceleration;
* ``noise``: complex Gaussian noise added to the measured k-space at a stated SNR
  (``noise_snr_db``; :func:`oucr.physics.measurement_noise`), nominal masks.

The table gives per method, dataset and condition the PSNR/SSIM (mean over
replicates of the per-volume means, SD over volumes) and the drop from the
nominal condition (nominal minus perturbed: positive is worse), from the metric
files of ``oucr evaluate``.

Outputs: ``--out`` CSV (columns :data:`COLUMNS`) and the Markdown beside it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping

import pandas as pd

from oucr.config import ROBUSTNESS_DEFAULTS, load_config
from oucr.errors import DataError
from oucr.io import atomic_path, atomic_write_text
from oucr.names import ZERO_FILLED
from oucr.metric_files import read_metric_files
from oucr.tables import DEMO_NOTE, dataset_order, fmt_mean_sd, summarise
from oucr.text_tables import to_markdown

log = logging.getLogger(__name__)

COLUMNS = ["method", "dataset", "acceleration", "condition", "perturbation", "realised_acceleration", "n_volumes",
           "n_replicates", "psnr_mean", "psnr_sd", "ssim_mean", "ssim_sd", "psnr_nominal", "ssim_nominal",
           "psnr_drop", "ssim_drop"]


def describe(condition: str, settings: Mapping[str, Any]) -> str:
    """The perturbation of a condition in words."""
    settings = {**ROBUSTNESS_DEFAULTS, **settings}
    acc = int(settings["acceleration"])
    if condition == "acceleration":
        return f"{int(settings['shifted_acceleration'])}x random masks (trained at {acc}x)"
    if condition == "equispaced":
        return f"{acc}x equispaced masks (trained on random)"
    if condition == "noise":
        return f"{acc}x masks + complex Gaussian k-space noise at {float(settings['noise_snr_db']):g} dB SNR"
    raise DataError("robustness metrics", f"unknown condition {condition!r}")


def robustness_datasets(config: Mapping[str, Any]) -> List[str]:
    """The datasets the robustness analysis covers (``robustness.datasets``, default all), in table order."""
    chosen = (config.get("robustness") or {}).get("datasets")
    return [d for d in dataset_order(config) if chosen is None or d in chosen]


def robustness_table(config: Mapping[str, Any], nominal: pd.DataFrame, perturbed: pd.DataFrame) -> pd.DataFrame:
    """One row per method x dataset x condition (columns :data:`COLUMNS`)."""
    settings = config.get("robustness") or {}
    if "condition" not in perturbed.columns:
        raise DataError("robustness metrics", "the perturbed metric files have no 'condition' column")
    base = summarise(nominal).set_index(["method", "dataset"])
    chosen = settings.get("methods", config.get("methods") or [])
    methods = [ZERO_FILLED] + [m for m in config.get("methods") or [] if m in chosen]
    rows: List[Dict[str, Any]] = []
    for condition, group in perturbed.groupby("condition", sort=False):
        summary = summarise(group).set_index(["method", "dataset"])
        for dataset in robustness_datasets(config):
            for method in methods:
                if (method, dataset) not in summary.index:
                    raise DataError("robustness metrics", f"no {condition} results for {method} on {dataset}")
                if (method, dataset) not in base.index:
                    raise DataError("robustness metrics", f"no nominal results for {method} on {dataset}")
                s, b = summary.loc[(method, dataset)], base.loc[(method, dataset)]
                rows.append({
                    "method": method, "dataset": dataset, "acceleration": int(s["acceleration"]),
                    "condition": condition, "perturbation": describe(str(condition), settings),
                    "realised_acceleration": s["realised_acceleration"], "n_volumes": int(s["n_volumes"]),
                    "n_replicates": int(s["n_replicates"]), "psnr_mean": s["psnr_mean"], "psnr_sd": s["psnr_sd"],
                    "ssim_mean": s["ssim_mean"], "ssim_sd": s["ssim_sd"], "psnr_nominal": b["psnr_mean"],
                    "ssim_nominal": b["ssim_mean"], "psnr_drop": b["psnr_mean"] - s["psnr_mean"],
                    "ssim_drop": b["ssim_mean"] - s["ssim_mean"],
                })
    return pd.DataFrame(rows, columns=COLUMNS)


def robustness_markdown(table: pd.DataFrame, demo: bool) -> str:
    """One Markdown table per dataset: methods in rows, nominal and each condition in columns."""
    out = ["# Robustness" + (" (DEMO)" if demo else "") + ": off the training conditions\n"]
    if demo:
        out.append(f"> {DEMO_NOTE}\n")
    out.append("PSNR (dB) and SSIM, mean ± SD over test volumes; in brackets the drop from the nominal condition "
               "(positive: worse). Every method sees identical perturbed inputs.\n")
    for condition, text in table.drop_duplicates("condition")[["condition", "perturbation"]].itertuples(index=False):
        out.append(f"- **{condition}**: {text}")
    out.append("")
    for dataset, g in table.groupby("dataset", sort=False):
        rows = []
        for method, m in g.groupby("method", sort=False):
            row = {"Method": method, "nominal PSNR / SSIM":
                   f"{m['psnr_nominal'].iloc[0]:.2f} / {m['ssim_nominal'].iloc[0]:.4f}"}
            for r in m.itertuples(index=False):
                row[f"{r.condition} PSNR (drop)"] = f"{fmt_mean_sd(r.psnr_mean, r.psnr_sd, 2)} ({r.psnr_drop:+.2f})"
                row[f"{r.condition} SSIM (drop)"] = f"{fmt_mean_sd(r.ssim_mean, r.ssim_sd, 4)} ({r.ssim_drop:+.4f})"
            rows.append(row)
        acc = int(g["acceleration"].iloc[0])
        out.append(f"## {dataset}, trained at {acc}x\n\n" + to_markdown(pd.DataFrame(rows)))
    return "\n".join(out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr robustness``."""
    parser.add_argument("--config", required=True, help="YAML config or inline JSON (demo, methods, datasets, "
                                                        "robustness)")
    parser.add_argument("--nominal", nargs="+", type=Path, required=True,
                        help="per-volume metric CSVs at the training acceleration, nominal condition")
    parser.add_argument("--perturbed", nargs="+", type=Path, required=True,
                        help="per-volume metric CSVs of the robustness conditions")
    parser.add_argument("--out", type=Path, required=True, help="output CSV (the Markdown is written beside it)")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr robustness``."""
    config = load_config(args.config)
    table = robustness_table(config, read_metric_files(args.nominal), read_metric_files(args.perturbed))
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    atomic_write_text(Path(args.out).with_suffix(".md"), robustness_markdown(table, bool(config.get("demo"))))
    log.info("wrote %d rows to %s", len(table), args.out)
    return 0
