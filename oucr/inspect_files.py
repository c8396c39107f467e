"""The files of ``oucr inspect``: feature maps (HDF5) and receptive fields (CSV or JSON).

Their layout is described in :mod:`oucr.models.inspect`. No torch import here, so
that drawing Fig. 1 from the files starts fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence, Union

import numpy as np

from oucr.errors import DataError
from oucr.io import atomic_path, open_hdf5


def write_features(path: Path, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any]) -> None:
    """Write the features file (module docstring) atomically."""
    import h5py

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for key, value in arrays.items():
                f.create_dataset(key, data=value, compression="gzip" if value.size > 4096 else None)
            for key, value in attrs.items():
                f.attrs[key] = value


def write_receptive_fields(path: Path, results: Sequence[Any]) -> None:
    """Write the receptive-field table (CSV, or JSON records for a ``.json`` name) atomically.

    Args:
        results: :class:`oucr.models.inspect.ReceptiveField` records (anything with ``row()``).
    """
    import pandas as pd

    table = pd.DataFrame([r.row() for r in results])
    with atomic_path(path) as tmp:
        if Path(path).suffix.lower() == ".json":
            tmp.write_text(json.dumps(table.to_dict(orient="records"), indent=1) + "\n")
        else:
            table.to_csv(tmp, index=False)


def read_features(path: Union[str, Path], everything: bool = False) -> Dict[str, np.ndarray]:
    """Read a features file: ``{"input", "oc", "uc"}`` (branches present), or every dataset.

    Raises:
        DataError: if the file is missing or not a features file.
    """
    path = Path(path)
    with open_hdf5(path, "feature-map file", "; run `oucr inspect`") as f:
        if "input" not in f:
            raise DataError(path, "not a features file of `oucr inspect` (no 'input' dataset)")
        keys = list(f) if everything else [k for k in ("input", "oc", "uc") if k in f]
        return {k: f[k][()] for k in keys}
