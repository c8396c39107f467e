"""Reconstruction files: the fastMRI submission layout shared by every method.

One HDF5 file per volume, ``<recon>/<dataset>/x<acc>/<method-slug>/<volume>.h5``,
dataset ``reconstruction`` (float32 magnitude ``(S, H, W)`` at the original
scale) and attributes ``method``, ``dataset``, ``acceleration`` (docs/ARCHITECTURE.md).
Networks, the zero-filled reference and CS all write through
:func:`write_reconstruction`; evaluation and figures read through
:func:`read_reconstruction`. No torch import here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import h5py
import numpy as np

from oucr.errors import DataError
from oucr.io import atomic_path, decoded_attrs, open_hdf5


def write_reconstruction(
    path: Union[str, Path],
    reconstruction: np.ndarray,
    method: str,
    dataset: str,
    acceleration: int,
    **attrs: object,
) -> None:
    """Write one volume's reconstruction atomically (key ``reconstruction``, float32 magnitude).

    Args:
        path: ``<recon>/<dataset>/x<acc>/<method-slug>/<volume>.h5``.
        reconstruction: magnitude ``(S, H, W)``.
        method, dataset, acceleration: stored as attributes.
        **attrs: further attributes (e.g. ``device``, ``lamda``).
    """
    reconstruction = np.asarray(reconstruction)
    if reconstruction.ndim != 3 or np.iscomplexobj(reconstruction):
        raise ValueError(f"a reconstruction must be a real (slices, H, W) array, got {reconstruction.dtype} {reconstruction.shape}")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("reconstruction", data=reconstruction.astype(np.float32))
            f.attrs["method"] = method
            f.attrs["dataset"] = dataset
            f.attrs["acceleration"] = int(acceleration)
            for k, v in attrs.items():
                f.attrs[k] = v


def locate_reconstruction(folders: Sequence[Union[str, Path]], volume: str) -> Path:
    """The file ``<volume>.h5`` in the first of ``folders`` that has it.

    CS writes its volumes into several chunk folders; networks into one.

    Raises:
        DataError: if no folder holds the volume.
    """
    for folder in folders:
        candidate = Path(folder) / f"{volume}.h5"
        if candidate.is_file():
            return candidate
    raise DataError(Path(folders[0]) / f"{volume}.h5" if folders else volume,
                    f"reconstruction of volume {volume} not found in {', '.join(map(str, folders))}")


def read_reconstruction(path: Union[str, Path]) -> tuple:
    """Read ``(reconstruction (S,H,W) float32, attrs dict)``.

    Raises:
        DataError: if the file is missing, unreadable or lacks ``reconstruction``.
    """
    p = Path(path)
    with open_hdf5(p, "reconstruction file") as f:
        if "reconstruction" not in f:
            raise DataError(p, "no 'reconstruction' dataset in the file")
        data = f["reconstruction"][()]
        attrs = decoded_attrs(f)
    if data.ndim != 3:
        raise DataError(p, f"'reconstruction' must be (slices, H, W), got shape {data.shape}")
    return data.astype(np.float32), attrs
