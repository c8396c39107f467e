"""The cost of a configuration's trainings: one row per training job, the totals, a greedy schedule.

For every training job of :func:`oucr.runs.trainings` (dataset, acceleration, run,
replicate) one row of :data:`COLUMNS`:

- ``train_slices``: training slices per epoch (:mod:`oucr.data.slice_counts`: from the
  prepared store, estimated from the raw folders, or given; the ``source`` column says
  which). ``training.train_slices`` caps the count.
- ``steps``: optimiser steps, ``epochs x ceil(slices / (batch_size x accumulate))``.
- ``s_per_step``: from the bench row (``oucr bench`` CSV; which row costs which run is
  :mod:`oucr.engine.plan_bench`'s) of the run's method at the dataset's image size:
  ``accumulate x b / train_slices_per_s``, with ``b`` the batch of one process,
  ``ceil(batch_size / nproc)`` (communication between processes is not counted). A row
  measured at another batch is scaled by slices (a constant slices-per-second rate is
  assumed). A run without a row has an unknown cost and is left out of the totals. A
  row measured with other ``amp``, ``checkpointing``, ``compile`` or ``deterministic``
  settings than the training's is used and said so. Per-epoch overheads the bench does
  not see (data loading, the first step, the validation metrics on the CPU) are not counted.
- ``val_s_per_epoch``: validation slices (capped by ``training.val_volumes``) x the
  bench's batch-1 inference latency, shared over ``nproc`` processes (an upper bound:
  validation runs batched).
- ``hours``: ``epochs x (steps per epoch x s_per_step + val_s_per_epoch) / 3600``;
  ``gpu_hours``: ``hours x nproc``.
- ``peak_mem_gb``: the bench's ``peak_mem_mb`` (memory a training step allocates
  above the model, on the bench's device) scaled linearly with the batch of one
  process when the bench was measured at another batch (an estimate); ``fits``
  compares it with ``--gpu-memory`` (GiB).

Totals: GPU-hours of the protocol (the sum of ``gpu_hours``), and the wall time on
``--gpus N`` GPUs of a greedy schedule (:func:`greedy_wall_hours`: longest job first,
each job on the ``nproc`` GPUs that free up first; trainings do not depend on each
other). Short notes add the test reconstructions (test slices x inference latency per
job) and CS (tuning and test slices x the CS row's latency, over ``--cpus`` cores) when
the bench has the rows.

Every assumption behind a row is a numbered note (:class:`Notes`; the ``notes`` column
holds their text). No torch at import.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import pandas as pd

from oucr.config import training_config, with_overrides
from oucr.data.slice_counts import SliceCounts, dataset_counts
from oucr.engine.plan_bench import bench_row, bench_size, choose_row, measure_missing
from oucr.errors import ConfigError, DataError
from oucr.names import CS
from oucr.runs import Run, default_iterations, trainings

#: columns of the plan table (and of the CSV that ``--out`` writes)
COLUMNS = [
    "dataset", "acceleration", "run", "display", "replicate", "nproc", "train_slices", "val_slices", "source",
    "epochs", "batch_size", "accumulate", "steps", "s_per_step", "val_s_per_epoch", "hours", "gpu_hours",
    "peak_mem_gb", "fits", "bench", "notes",
]


class Notes:
    """Numbered assumption lines, each text once."""

    def __init__(self) -> None:
        self.texts: List[str] = []

    def add(self, text: str) -> int:
        if text not in self.texts:
            self.texts.append(text)
        return self.texts.index(text) + 1


@dataclass
class Plan:
    """The cost plan of a config: one row per training job, the notes and the totals."""

    table: pd.DataFrame
    notes: List[str]
    totals: List[str]
    gpu_hours: float
    wall_hours: float
    row_notes: List[List[int]] = field(default_factory=list)  #: note numbers of each row
    recon_gpu_hours: float = math.nan  #: test reconstructions of every job of known cost
    cs_cpu_hours: float = math.nan  #: CS tuning and test reconstructions (NaN: not estimated)


def greedy_wall_hours(jobs: Sequence[Tuple[float, int]], gpus: int) -> float:
    """Wall time of ``(hours, gpus needed)`` jobs on ``gpus`` GPUs, longest job first.

    Each job starts when the ``n`` GPUs that free up first are all free and holds them
    for its hours.

    Raises:
        ConfigError: if ``gpus`` is below 1 or a job needs more GPUs than there are.
    """
    if gpus < 1:
        raise ConfigError(f"--gpus must be at least 1, got {gpus}")
    free = [0.0] * gpus
    for hours, n in sorted(jobs, key=lambda j: -j[0]):
        if n > gpus:
            raise ConfigError(f"a job needs {n} GPUs (training.nproc) but the plan has --gpus {gpus}")
        free.sort()
        start = free[n - 1]
        free[:n] = [start + hours] * n
    return max(free)


def _flag(value: Any) -> str:
    """A bench's bool/str cell as the config spells it."""
    return value.strip().lower() if isinstance(value, str) else str(value).lower()


def make_plan(
    config: Mapping[str, Any],
    bench: Optional[pd.DataFrame] = None,
    bench_path: Optional[Path] = None,
    gpus: int = 1,
    gpu_memory: Optional[float] = None,
    measure: bool = False,
    device: str = "auto",
    threads: Optional[int] = None,
    min_seconds: float = 2.0,
    given_slices: Optional[Mapping[str, Tuple[int, int, int]]] = None,
    cpus: Optional[int] = None,
) -> Plan:
    """The cost plan of every training job of ``config`` (module docstring).

    Args:
        config: a loaded config.
        bench: an ``oucr bench`` table (:func:`oucr.engine.plan_bench.read_bench`), or None.
        bench_path: the file it came from (for messages).
        gpus: GPUs of the wall-time schedule.
        gpu_memory: GiB per GPU for the ``fits`` column (None: not checked).
        measure: benchmark methods the bench lacks on the local ``device``.
        device, threads, min_seconds: settings of that measurement (``oucr bench``'s).
        given_slices: ``{dataset: (train, val, test)}`` instead of the store or the raw folders.
        cpus: cores of the CS estimate (default: this machine's).

    Returns:
        the plan.

    Raises:
        DataError: a bench without rows at a dataset's size (without ``measure``), or a
            missing data folder.
        ConfigError: an invalid config, or a job needing more GPUs than ``gpus``.
    """
    if gpus < 1:
        raise ConfigError(f"--gpus must be at least 1, got {gpus}")
    jobs = trainings(config)
    if not jobs:
        raise ConfigError("the config trains nothing (no networks in methods, no ablation or sweep)")
    given_slices = dict(given_slices or {})
    unknown = sorted(set(given_slices) - set(config.get("datasets") or {}))
    if unknown:
        raise ConfigError(f"--slices names dataset(s) {', '.join(unknown)} that the config does not have")
    counts = {d: dataset_counts(config, d, given_slices.get(d)) for d in dict.fromkeys(j[0] for j in jobs)}
    default_j = default_iterations(config)

    def settings(run: Run):
        t = training_config(with_overrides(config, run.sets), run.method)
        return t, math.ceil(t.batch_size / t.nproc)

    # the bench rows every job needs, measured here when asked
    sizes = sorted({bench_size(c.size) for c in counts.values()})
    if bench is not None and not measure:
        for s in sizes:
            if not (bench["size"] == s).any():
                have = ", ".join(str(int(v)) for v in sorted(bench["size"].dropna().unique())) or "none"
                raise DataError(bench_path or "bench", f"no row at size {s} (sizes in the file: {have}); run "
                                f"`oucr bench --config CONFIG --size {s}`, or give --measure")
    if measure:
        wanted: Dict[Tuple, List[str]] = {}
        for dataset, _, run, _ in jobs:
            t, per_process = settings(run)
            s = bench_size(counts[dataset].size)
            if bench_row(bench, run.method, s, per_process) is None:
                wanted.setdefault((s, per_process, t.amp, t.checkpointing), []).append(run.method)
        if CS in (config.get("methods") or []):
            for s in sizes:
                if bench_row(bench, CS, s, 1, need_training=False) is None:
                    t = training_config(config)
                    wanted.setdefault((s, 1, t.amp, t.checkpointing), []).append(CS)
        if wanted:
            bench = measure_missing(config, bench, wanted, device, threads, min_seconds)

    notes = Notes()
    rows, row_notes, test_recon_h = [], [], 0.0
    devices = set()
    for dataset, acc, run, rep in jobs:
        t, per_process = settings(run)
        c = counts[dataset]
        s = bench_size(c.size)
        mine = [notes.add(c.note)]
        if max(c.size) != min(c.size):
            mine.append(notes.add(f"'{dataset}' is {c.size[0]} x {c.size[1]}: costed with the bench at {s} x {s}, "
                                  "an upper bound"))
        slices = c.train if t.train_slices is None else min(c.train, t.train_slices)
        if t.train_slices is not None and t.train_slices < c.train:
            mine.append(notes.add(f"{run.display}: training.train_slices caps an epoch at {t.train_slices} slices"))
        val_slices = c.val_slices(t.val_volumes)
        steps_per_epoch = math.ceil(slices / (t.batch_size * t.accumulate))
        row, name, scale, mem_scale, texts = choose_row(bench, run, s, per_process, default_j)
        mine += [notes.add(text) for text in texts]
        record: Dict[str, Any] = {
            "dataset": dataset, "acceleration": acc, "run": run.run, "display": run.display, "replicate": rep,
            "nproc": t.nproc, "train_slices": slices, "val_slices": val_slices, "source": c.source,
            "epochs": t.epochs, "batch_size": t.batch_size, "accumulate": t.accumulate,
            "steps": t.epochs * steps_per_epoch,
        }
        if row is None and bench is None:
            mine.append(notes.add("no bench given: costs unknown; give --bench BENCH.csv (`oucr bench`) or --measure"))
        if row is None:
            if bench is not None:
                mine.append(notes.add(
                    f"{run.method}: no bench row at {s} x {s}, cost unknown (left out of the totals); "
                    f"bench it (`oucr bench --size {s} --methods \"{run.method}\"`) or give --measure"))
            record.update({"s_per_step": math.nan, "val_s_per_epoch": math.nan, "hours": math.nan,
                           "gpu_hours": math.nan, "peak_mem_gb": math.nan, "fits": "?", "bench": ""})
        else:
            b0 = int(row["batch_size"])
            devices.add(str(row.get("device", "unknown device")))
            if row.get("measured") == "here":
                mine.append(notes.add(f"{name} at {s} x {s}: measured here (--measure) on {row.get('device')}"))
            if b0 != per_process:
                mine.append(notes.add(
                    f"{name}: bench at batch {b0}, scaled to {per_process} slices per process by slices (time at a "
                    "constant slices/s; memory linear in the batch: an estimate)"))
                mem_scale *= per_process / b0
            if t.nproc > 1:
                mine.append(notes.add(f"{run.display}: {t.nproc} processes of {per_process} slices per micro-batch; "
                                      "communication between them not counted"))
            for what, want in (("amp", t.amp), ("checkpointing", t.checkpointing), ("compile", t.compile),
                               ("deterministic", t.deterministic)):
                if what in row and not pd.isna(row[what]) and _flag(row[what]) != _flag(want):
                    mine.append(notes.add(f"{name}: bench measured with {what} {row[what]}, the training uses "
                                          f"{_flag(want)}: not adjusted"))
            s_per_step = scale * t.accumulate * per_process / float(row["train_slices_per_s"])
            infer_s = scale * float(row["infer_ms_per_slice"]) / 1e3
            val_s = val_slices * infer_s / t.nproc
            hours = t.epochs * (steps_per_epoch * s_per_step + val_s) / 3600.0
            peak_gb = mem_scale * float(row["peak_mem_mb"]) / 1024.0
            fits = "" if gpu_memory is None or math.isnan(peak_gb) else ("yes" if peak_gb <= gpu_memory else "NO")
            record.update({"s_per_step": s_per_step, "val_s_per_epoch": val_s, "hours": hours,
                           "gpu_hours": hours * t.nproc, "peak_mem_gb": peak_gb, "fits": fits,
                           "bench": f"{name}@{s}/b{b0}"})
            test_recon_h += c.test * infer_s / 3600.0
        record["notes"] = " | ".join(notes.texts[i - 1] for i in dict.fromkeys(mine))
        rows.append(record)
        row_notes.append(list(dict.fromkeys(mine)))
    table = pd.DataFrame(rows, columns=COLUMNS)

    # general notes
    if devices:
        notes.add(f"timings and memory measured on {', '.join(sorted(devices))}; on other hardware they differ: "
                  "bench there (`oucr bench` on the training machine)")
    if any(d.startswith("cpu") for d in devices):
        notes.add("peak memory of a CPU bench is the growth of the resident set: only a rough guide to GPU memory")
    notes.add("hours = epochs x (steps per epoch x s/step + validation s/epoch); validation: val slices x batch-1 "
              "inference latency / nproc (an upper bound, it runs batched); peak memory: what a training step "
              "allocates above the model on the bench device, without the CUDA context")

    known = table[table["hours"].notna()]
    gpu_hours = float(known["gpu_hours"].sum())
    wall = greedy_wall_hours(list(zip(known["hours"].astype(float), known["nproc"].astype(int), strict=True)), gpus)
    totals = [(f"training: {len(table)} jobs; {gpu_hours:,.1f} GPU-hours ({gpu_hours / 24:,.2f} GPU-days), sum of "
               "hours x nproc" + (f" over the {len(known)} jobs of known cost" if len(known) < len(table) else "")),
              (f"wall time on {gpus} GPU{'s' if gpus != 1 else ''}: {wall:,.1f} h ({wall / 24:,.2f} days), greedy "
               "schedule, longest job first")]
    if len(known) < len(table):
        missing = sorted(set(table.loc[table["hours"].isna(), "display"]))
        totals.append(f"unknown cost: {len(table) - len(known)} jobs ({', '.join(missing)}) are not in the totals")
    slices_seen = int((table["epochs"] * table["train_slices"]).sum())
    totals.append(f"work: {int(table['steps'].sum()):,} optimiser steps, {slices_seen:,} training slices "
                  "(epochs x slices) over every job")
    if gpu_memory is not None:
        over = table[table["fits"] == "NO"]
        checked = int(table["fits"].isin(["yes", "NO"]).sum())
        if not checked:
            totals.append(f"memory: not checked against {gpu_memory:g} GiB (no job of known memory)")
        elif over.empty:
            totals.append(f"memory: the {checked} jobs of known memory fit {gpu_memory:g} GiB")
        else:
            totals.append(f"memory: {len(over)} jobs exceed {gpu_memory:g} GiB "
                          f"({', '.join(sorted(set(over['display'])))})")
    if len(known):
        totals.append(f"test reconstruction (not in the totals): ~{test_recon_h:,.3g} GPU-hours, test slices x "
                      "batch-1 inference latency over every job")
    cs_cpu_hours, cs_note = _cs_cost(config, bench, counts, cpus)
    totals.append(cs_note)
    totals.append("evaluation (PSNR/SSIM/NMSE on the CPU), statistics, tables and figures: not estimated")
    return Plan(table=table, notes=notes.texts, totals=totals, gpu_hours=gpu_hours, wall_hours=wall,
                row_notes=row_notes, recon_gpu_hours=test_recon_h if len(known) else math.nan,
                cs_cpu_hours=cs_cpu_hours)


def _cs_cost(config: Mapping[str, Any], bench: Optional[pd.DataFrame], counts: Mapping[str, SliceCounts],
             cpus: Optional[int]) -> Tuple[float, str]:
    """CS CPU-hours, (tuning solves + test slices) x the CS row's latency per dataset and acceleration, and a note."""
    if CS not in (config.get("methods") or []):
        return math.nan, "CS: not in the methods"
    cs = config.get("cs") or {}
    tune = int(cs.get("tune_slices", 0)) * len(cs.get("lambdas") or [])
    accs = len(config.get("accelerations") or {})
    cores = int(cpus or os.cpu_count() or 1)
    cpu_h, lacking = 0.0, []
    for dataset, c in counts.items():
        row = bench_row(bench, CS, bench_size(c.size), 1, need_training=False)
        if row is None:
            lacking.append(dataset)
            continue
        cpu_h += accs * (c.test + tune) * float(row["infer_ms_per_slice"]) / 3.6e6
    if len(lacking) == len(counts):
        return math.nan, "CS: not estimated (no CS row in the bench at the datasets' sizes)"
    text = (f"CS: ~{cpu_h:,.3g} CPU-hours ({tune} tuning solves + the test slices, per dataset and acceleration, "
            f"x the bench's CS latency), ~{cpu_h / cores:,.3g} h on {cores} cores")
    return cpu_h, text + (f"; {', '.join(lacking)} not counted (no CS row at its size)" if lacking else "")
