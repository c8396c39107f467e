"""The ``oucr bench`` rows that cost ``oucr plan``'s jobs: reading the CSV, choosing a run's row, measuring.

:func:`choose_row` picks the row of a run at the dataset's image size (square; its
larger side, :func:`bench_size`), at the batch of one process, else the nearest batch:

- a row under the run's own name comes first (a sweep point's display name, an
  ablation variant's name: ``oucr bench --methods "UC-CRNN + RM"``);
- an ablation variant without one uses OUCR's row (an upper bound: each variant is
  OUCR with branches removed);
- a point ``J`` of the iteration sweep uses OUCR's row with time scaled by
  ``J / default J`` (the CRNN iterations dominate the cost; the scaling is approximate).

Rows that failed (``error``) do not count. A method missing from the bench is
measured on the spot (:func:`measure_missing`, :func:`oucr.engine.bench.run_bench`, which
imports torch) when ``oucr plan --measure`` is given; otherwise its cost is unknown.
No torch at import.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import pandas as pd

from oucr.io import read_csv_file
from oucr.names import ABLATION_VARIANTS, OUCR, sweep_iterations
from oucr.runs import Run

#: columns a bench CSV must have
BENCH_COLUMNS = ("method", "size", "batch_size", "train_slices_per_s", "infer_ms_per_slice", "peak_mem_mb")


def read_bench(path: Path) -> pd.DataFrame:
    """Read an ``oucr bench`` CSV; rows with an ``error`` are dropped.

    Raises:
        DataError: naming the file if it is missing, unreadable or lacks a column.
    """
    path = Path(path)
    bench = read_csv_file(path, "bench file", BENCH_COLUMNS,
                          f"; write one with `oucr bench --config CONFIG --size N --out {path}`, or give --measure")
    if "error" in bench.columns:
        bench = bench[bench["error"].isna()]
    for column in ("size", "batch_size"):
        bench[column] = pd.to_numeric(bench[column], errors="coerce")
    return bench.reset_index(drop=True)


def bench_row(bench: Optional[pd.DataFrame], method: str, size: int, batch: int,
              need_training: bool = True) -> Optional[Dict[str, Any]]:
    """The bench row of ``method`` at ``size``: the one at ``batch`` if any, else the nearest batch."""
    if bench is None or bench.empty:
        return None
    rows = bench[(bench["method"] == method) & (bench["size"] == size)]
    column = "train_slices_per_s" if need_training else "infer_ms_per_slice"
    rows = rows[pd.to_numeric(rows[column], errors="coerce") > 0]
    if rows.empty:
        return None
    distance = (rows["batch_size"].astype(float) / batch).map(lambda r: abs(math.log(r)) if r > 0 else math.inf)
    return rows.loc[distance.idxmin()].to_dict()


def bench_size(size: Tuple[int, int]) -> int:
    """The bench size (square images) that costs a dataset of ``size``: its larger side."""
    return int(max(size))


def measure_missing(config: Mapping[str, Any], bench: Optional[pd.DataFrame], wanted: Dict[Tuple, List[str]],
                    device: str, threads: Optional[int], min_seconds: float) -> Optional[pd.DataFrame]:
    """``bench`` plus rows of ``oucr bench`` run here for ``{(size, batch, amp, checkpointing): [methods]}``."""
    from oucr.engine.bench import run_bench  # imports torch: only when measuring

    frames = [] if bench is None else [bench]
    for (size, batch, amp, checkpointing), methods in wanted.items():
        frame = run_bench(config, list(dict.fromkeys(methods)), size, device, threads, batch, amp, checkpointing,
                          min_seconds, loader=False)
        if "error" in frame.columns:
            frame = frame[frame["error"].isna()]
        frame = frame.assign(measured="here")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else bench


def choose_row(bench: Optional[pd.DataFrame], run: Run, size: int, batch: int, default_j: int
               ) -> Tuple[Optional[Dict[str, Any]], str, float, float, List[str]]:
    """The bench row that costs ``run``, and how it is scaled.

    A row under the run's own name comes first (a sweep point's display name, an
    ablation variant's name); a sweep point falls back to OUCR's row with time scaled
    by ``J / default J``, an ablation variant to OUCR's row unscaled (an upper bound).

    Returns:
        ``(row or None, name of the row used, time scale, memory scale, notes)``.
    """
    if run.display != run.method:
        row = bench_row(bench, run.display, size, batch)
        if row is not None:
            return row, run.display, 1.0, 1.0, []
    if run.sets and run.method == OUCR:
        j = sweep_iterations(run.display, default_j)
        scale = j / default_j
        row = bench_row(bench, OUCR, size, batch)
        memory = "scaled likewise" if j > default_j else "unscaled"
        note = (f"{run.display}: OUCR's bench row (J={default_j}) with time scaled by J/{default_j} = {scale:.2f} "
                f"(approximate: the CRNN iterations dominate); memory {memory} (an upper bound)")
        return row, OUCR, scale, max(1.0, scale), [note] if row is not None else []
    row = bench_row(bench, run.method, size, batch)
    if row is None and run.method in ABLATION_VARIANTS:
        row = bench_row(bench, OUCR, size, batch)
        note = (f"{run.display}: not in the bench, OUCR's row used (an upper bound: the variant is OUCR without "
                f"some branches); bench it with `oucr bench --methods \"{run.method}\"`")
        return row, OUCR, 1.0, 1.0, [note] if row is not None else []
    return row, run.method, 1.0, 1.0, []
