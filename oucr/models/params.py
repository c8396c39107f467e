"""``oucr params``: parameter counts of every method and ablation variant of a config.

The counts come from instantiating each model with the config's widths
(``models`` section) and counting trainable parameters; the paper's counts
(Table 1) and the relative difference stand beside them. CS is not a network and
is listed with empty counts so that the table has one row per compared method.

Output: CSV (``method,params,paper_params,delta_pct``) on standard output, or a
Markdown table with ``--format md``; ``--out`` writes the CSV to a file instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, List, Mapping

import pandas as pd

from oucr.config import load_config
from oucr.errors import ConfigError
from oucr.io import atomic_path
from oucr.models.base import count_parameters
from oucr.models.registry import ABLATIONS, METHODS, build_model
from oucr.paper import paper_params

NOT_NETWORKS = {"CS"}


def parameter_table(config: Mapping[str, Any]) -> pd.DataFrame:
    """One row per method of ``methods`` then per variant of ``ablation.variants`` (duplicates once).

    Raises:
        ConfigError: for an unknown method or variant name.
    """
    names: List[str] = list(config.get("methods") or []) + list((config.get("ablation") or {}).get("variants") or [])
    rows = []
    for name in dict.fromkeys(names):
        if name not in NOT_NETWORKS and name not in METHODS and name not in ABLATIONS:
            known = ", ".join(sorted(set(METHODS) | set(ABLATIONS) | NOT_NETWORKS))
            raise ConfigError(f"unknown method {name!r}; known: {known}")
        paper = paper_params(name)
        if name in NOT_NETWORKS:
            rows.append({"method": name, "params": pd.NA, "paper_params": pd.NA, "delta_pct": pd.NA})
            continue
        n = count_parameters(build_model(name, config.get("models")))
        delta = (round(100.0 * (n - paper) / paper, 2) or 0.0) if paper else pd.NA  # no '-0.0'
        rows.append({"method": name, "params": n, "paper_params": paper if paper else pd.NA, "delta_pct": delta})
    return pd.DataFrame(rows, columns=["method", "params", "paper_params", "delta_pct"]).astype(
        {"params": "Int64", "paper_params": "Int64", "delta_pct": "Float64"}
    )


def to_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown, counts with thousands separators."""
    def cell(v: Any, fmt: str) -> str:
        return "-" if pd.isna(v) else format(v, fmt)

    lines = ["| Method | Params | Paper | Δ (%) |", "|---|---:|---:|---:|"]
    for r in table.itertuples(index=False):
        lines.append(f"| {r.method} | {cell(r.params, ',')} | {cell(r.paper_params, ',')} | {cell(r.delta_pct, '+.2f')} |")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr params``."""
    parser.add_argument("--config", required=True, help="YAML config (its methods, ablation and models sections)")
    parser.add_argument("--format", choices=["csv", "md"], default="csv")
    parser.add_argument("--out", type=Path, help="write to this file instead of standard output")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr params``."""
    table = parameter_table(load_config(args.config))
    text = to_markdown(table) if args.format == "md" else table.to_csv(index=False)
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(text)
    else:
        sys.stdout.write(text)
    return 0
