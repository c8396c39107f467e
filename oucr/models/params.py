"""``oucr params``: parameter counts of every method and ablation variant of a config.

The counts come from instantiating each model with the config's widths
(``models`` section). Two counts are given per method:

* ``params``: the count as the method's public reference code counts it
  (:meth:`oucr.models.base.ReconModel.reference_parameter_count`), the number the
  paper reports and Table 1 shows; it is compared with the paper's count;
* ``params_used``: the trainable parameters the forward pass uses
  (:func:`oucr.models.base.count_parameters`).

They differ only where the reference code defines layers its forward pass never
calls (Kiu-net). The paper's counts (Table 1) and the relative difference stand
beside them. CS is not a network and is listed with empty counts so that the
table has one row per compared method.

Output: CSV (``method,params,params_used,paper_params,delta_pct``) on standard
output, or a Markdown table with ``--format md``; ``--out FILE`` writes either to
a file instead (atomically).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from oucr.config import load_config
from oucr.errors import ConfigError
from oucr.io import atomic_path
from oucr.models.base import count_parameters
from oucr.models.registry import ABLATIONS, METHODS, build_model, model_config_key
from oucr.paper import paper_params
from oucr.text_tables import to_markdown

NOT_NETWORKS = {"CS"}

#: columns of :func:`parameter_table`
COLUMNS = ["method", "params", "params_used", "paper_params", "delta_pct"]

#: marker of a reference count that differs from the used count, and its footnote
FOOTNOTE_MARK = "†"
FOOTNOTE = (
    "Params: the count as the method's public reference code counts it (every layer it defines, "
    "including layers its forward pass never calls), compared with the paper (Δ); Used: the "
    "parameters this implementation's forward pass uses."
)


def parameter_table(config: Mapping[str, Any]) -> pd.DataFrame:
    """Parameter counts of the config's methods and ablation variants beside the paper's.

    Args:
        config: a loaded config; reads ``methods``, ``ablation.variants`` and ``models``
            (constructor arguments by method name; missing entries mean the paper widths).

    Returns:
        one row per method of ``methods`` then per variant of ``ablation.variants``
        (a name listed twice appears once), columns ``method`` (paper name),
        ``params`` (the reference code's count), ``params_used`` (the parameters
        the forward pass uses), ``paper_params`` (Table 1; empty for CS and the
        ablation variants) and ``delta_pct`` (``100 (params - paper) / paper``,
        2 decimals).

    Raises:
        ConfigError: for an unknown method or variant name, or model arguments
            that the constructor rejects.
    """
    methods = config.get("methods") or []
    variants = (config.get("ablation") or {}).get("variants") or []
    models = config.get("models") or {}
    if not isinstance(methods, list) or not isinstance(variants, list):
        raise ConfigError("methods and ablation.variants must be lists of method names")
    if not isinstance(models, Mapping):
        raise ConfigError("models must map method names to constructor arguments")
    rows = []
    for name in dict.fromkeys(list(methods) + list(variants)):
        if name not in NOT_NETWORKS and name not in METHODS and name not in ABLATIONS:
            known = ", ".join(sorted(set(METHODS) | set(ABLATIONS) | NOT_NETWORKS))
            raise ConfigError(f"unknown method {name!r}; known: {known}")
        if name in NOT_NETWORKS:
            rows.append({"method": name, "params": pd.NA, "params_used": pd.NA, "paper_params": pd.NA,
                         "delta_pct": pd.NA})
            continue
        try:
            model = build_model(name, models)
        except ValueError as err:
            raise ConfigError(f"models.{model_config_key(name)}: {err}") from err
        n, used = model.reference_parameter_count(), count_parameters(model)
        paper = paper_params(name)
        delta = (round(100.0 * (n - paper) / paper, 2) or 0.0) if paper else pd.NA  # 'or 0.0': no '-0.0'
        rows.append({"method": name, "params": n, "params_used": used, "paper_params": paper if paper else pd.NA,
                     "delta_pct": delta})
    return pd.DataFrame(rows, columns=COLUMNS).astype(
        {"params": "Int64", "params_used": "Int64", "paper_params": "Int64", "delta_pct": "Float64"}
    )


def parameter_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown, counts with thousands separators.

    Rows whose reference count differs from the used count carry the marker
    :data:`FOOTNOTE_MARK` on the reference count, and a footnote line explains it.
    """
    def cell(v: Any, fmt: str) -> str:
        return "-" if pd.isna(v) else format(v, fmt)

    rows = []
    for r in table.itertuples(index=False):
        differs = not pd.isna(r.params) and not pd.isna(r.params_used) and r.params != r.params_used
        rows.append({"Method": r.method, "Params": cell(r.params, ",") + (FOOTNOTE_MARK if differs else ""),
                     "Used": cell(r.params_used, ","), "Paper": cell(r.paper_params, ","),
                     "Δ (%)": cell(r.delta_pct, "+.2f")})
    view = pd.DataFrame(rows, columns=["Method", "Params", "Used", "Paper", "Δ (%)"])
    text = to_markdown(view, align="lrrrr")
    marked = view["Params"].str.endswith(FOOTNOTE_MARK).any()
    if marked:
        text += f"\n{FOOTNOTE_MARK} {FOOTNOTE}\n"
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr params``."""
    parser.add_argument("--config", required=True, help="YAML config (its methods, ablation and models sections)")
    parser.add_argument("--format", choices=["csv", "md"], default="csv",
                        help="csv (default) or md: a Markdown table with thousands separators and a footnote")
    parser.add_argument("--out", type=Path, help="write to this file instead of standard output")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr params``."""
    table = parameter_table(load_config(args.config))
    text = parameter_markdown(table) if args.format == "md" else table.to_csv(index=False)
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(text)
    else:
        sys.stdout.write(text)
    return 0
