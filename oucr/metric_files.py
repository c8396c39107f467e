"""Reading the metric CSVs of ``oucr evaluate``: one checked reader for stats, tables, figures and robustness."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Sequence, Tuple

import numpy as np
import pandas as pd

from oucr.errors import DataError
from oucr.io import read_csv_file

#: metric columns that are compared, in output order
METRICS: Tuple[str, ...] = ("psnr", "ssim", "nmse", "haarpsi", "vif")
#: metrics where a lower value is better
LOWER_IS_BETTER = frozenset({"nmse"})
#: k-space band columns of per-slice files (checked for being numeric, not compared)
BAND_METRICS: Tuple[str, ...] = ("psnr_low", "ssim_low", "psnr_high", "ssim_high")
#: columns every metrics file must have
REQUIRED_COLUMNS: Tuple[str, ...] = ("method", "dataset", "acceleration", "volume")


def _read_one(path: Path, required: Sequence[str]) -> pd.DataFrame:
    """One metrics CSV, checked (see :func:`read_metric_files`)."""
    frame = read_csv_file(path, "metrics file", (*REQUIRED_COLUMNS, *required),
                          dtype={"method": str, "dataset": str, "volume": str})
    if not any(m in frame.columns for m in METRICS):
        raise DataError(path, f"metrics file has none of the metric columns {list(METRICS)}")
    if frame.empty:
        raise DataError(path, "metrics file has a header but no rows")
    for col in ("method", "dataset", "volume"):
        if frame[col].isna().any():
            raise DataError(path, f"empty {col} in line {int(np.flatnonzero(frame[col].isna())[0]) + 2}")
    for col in [c for c in (*METRICS, *BAND_METRICS) if c in frame.columns]:
        numeric = pd.to_numeric(frame[col], errors="coerce")
        bad = numeric.isna() & frame[col].notna()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(path, f"non-numeric {col} value {frame[col].iloc[i]!r} in line {i + 2}")
        frame[col] = numeric.astype(float)  # pragma: no mutate (astype(None) is float64 too)
    for col in [c for c in ("acceleration", "slice", "replicate") if c in frame.columns]:
        numeric = pd.to_numeric(frame[col], errors="coerce")
        bad = numeric.isna() | (numeric != np.round(numeric))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            value = frame[col].astype(object).iloc[i]  # a Python value: 4.5, not NumPy 2's np.float64(4.5)
            raise DataError(path, f"{col} must be an integer, got {value!r} in line {i + 2}")
        frame[col] = numeric.astype(int)
    return frame


def read_metric_files(paths: Iterable[Path], required: Sequence[str] = ()) -> pd.DataFrame:
    """Concatenate metric CSVs written by ``oucr evaluate``.

    Args:
        paths: the files; a file named twice (in any spelling of its path) counts once.
        required: columns needed beyond ``method, dataset, acceleration, volume``
            (e.g. ``("slice",)`` for per-slice files).

    Returns:
        the rows of every file; when any file has a ``replicate`` column, rows of files
        without one get replicate 0.

    Raises:
        DataError: naming the file, for a missing, empty or unparseable file, missing
            columns, non-numeric metric values or non-integer keys; naming the files, for
            rows duplicated on (method, dataset, acceleration[, condition], volume[, slice][, replicate]).
    """
    unique: Dict[Path, Path] = {}
    for q in paths:
        unique.setdefault(Path(q).resolve(), Path(q))
    if not unique:
        raise DataError("(none)", "no metrics files given")
    frames = []
    for path in unique.values():
        frames.append(_read_one(path, required).assign(_file=str(path)))
    frame = pd.concat(frames, ignore_index=True)
    if "replicate" in frame.columns:
        frame["replicate"] = frame["replicate"].fillna(0).astype(int)
    keys = [c for c in ("method", "dataset", "acceleration", "condition", "volume", "slice", "replicate")
            if c in frame.columns]
    duplicated = frame.duplicated(subset=keys, keep=False)
    if duplicated.any():
        clashes = frame[duplicated]
        first = clashes[keys].iloc[0].to_dict()
        files = sorted(set(clashes.loc[(clashes[keys] == pd.Series(first)).all(axis=1), "_file"]))
        raise DataError(", ".join(files), f"{int(frame.duplicated(subset=keys).sum())} duplicated metric rows, "
                                          f"e.g. {first}")
    return frame.drop(columns="_file")
