"""Which networks a configuration trains: the one enumeration the workflow and ``oucr plan`` share.

A *run* is one trained configuration, named by a slug: each network of Table 1
(``unet``, ``oucr``, ...), each Table 2 variant on the ablation dataset and
acceleration (``uc-crnn-rm``, ...), and each point of the iteration sweep other
than the default J (``oucr-j3``). Table 1 and Table 2 runs are trained
``replicates`` times (different initialisation, the same data stream); sweep
points once (the J curve is supplementary). No torch import (the Snakefile reads
this).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Tuple

from oucr.names import CS, OUCR, OUCR_FULL, method_slug, sweep_name


@dataclass(frozen=True)
class Run:
    """One trained configuration (all its replicates)."""

    run: str  #: folder name, e.g. ``oucr-j3``
    method: str  #: the model to build, e.g. ``OUCR`` or ``UC-CRNN + RM``
    display: str  #: the name in tables and figures, e.g. ``OUCR J=3``
    replicates: int
    sets: Tuple[str, ...] = field(default=())  #: config overrides, e.g. ``models.OUCR.iterations=3``


def default_iterations(config: Mapping[str, Any]) -> int:
    """OUCR's configured J (the constructor default, 5, when not set)."""
    return int(((config.get("models") or {}).get(OUCR) or {}).get("iterations", 5))


def networks(config: Mapping[str, Any]) -> List[str]:
    """The Table 1 methods that are trained (all but CS)."""
    return [m for m in config.get("methods") or [] if m != CS]


def run_registry(config: Mapping[str, Any]) -> Dict[str, Run]:
    """Every run of the config by name (Table 1, Table 2, J sweep), each once."""
    replicates = int(config.get("replicates", 1))
    runs: Dict[str, Run] = {}

    def add(run: Run) -> None:
        runs.setdefault(run.run, run)

    for m in networks(config):
        add(Run(method_slug(m), m, m, replicates))
    for v in (config.get("ablation") or {}).get("variants") or []:
        method = OUCR if v == OUCR_FULL else v
        add(Run(method_slug(v), method, method, replicates))
    for j in (config.get("iterations_sweep") or {}).get("values") or []:
        if int(j) == default_iterations(config):
            add(Run("oucr", OUCR, OUCR, replicates))
        else:
            add(Run(f"oucr-j{int(j)}", OUCR, sweep_name(j), 1, (f"models.OUCR.iterations={int(j)}",)))
    return runs


def _at(section: Mapping[str, Any], dataset: str, acc: int) -> bool:
    return bool(section) and dataset == section.get("dataset") and int(acc) == int(section.get("acceleration", 4))


def table1_runs(config: Mapping[str, Any]) -> List[str]:
    return [method_slug(m) for m in networks(config)]


def ablation_runs(config: Mapping[str, Any]) -> List[str]:
    return [method_slug(v) for v in (config.get("ablation") or {}).get("variants") or []]


def sweep_runs(config: Mapping[str, Any]) -> List[str]:
    default = default_iterations(config)
    runs = [("oucr" if int(j) == default else f"oucr-j{int(j)}")
            for j in (config.get("iterations_sweep") or {}).get("values") or []]
    if runs and "oucr" not in runs:
        runs.append("oucr")  # the default J is a point of the curve too
    return runs


def runs_for(config: Mapping[str, Any], dataset: str, acc: int) -> List[str]:
    """Every run trained on one dataset at one acceleration."""
    runs = list(table1_runs(config))
    if _at(config.get("ablation") or {}, dataset, acc):
        runs += ablation_runs(config)
    if _at(config.get("iterations_sweep") or {}, dataset, acc):
        runs += sweep_runs(config)
    return list(dict.fromkeys(runs))


def trainings(config: Mapping[str, Any]) -> List[Tuple[str, int, Run, int]]:
    """Every training job: ``(dataset, acceleration, run, replicate)`` in a stable order."""
    registry = run_registry(config)
    out = []
    for dataset in config.get("datasets") or {}:
        for acc in sorted(int(a) for a in config.get("accelerations") or {}):
            for name in runs_for(config, dataset, acc):
                run = registry[name]
                out += [(dataset, acc, run, rep) for rep in range(run.replicates)]
    return out
