"""Reconstruction files: the fastMRI submission layout shared by every method.

One HDF5 file per volume, ``<recon>/<dataset>/x<acc>/<run>/r<replicate>/<volume>.h5``
(:mod:`oucr.paths`):

- ``reconstruction``: float32 magnitude ``(S, H, W)`` at the original scale, the
  dataset fastMRI's ``evaluate.py`` reads;
- ``reconstruction_complex``: complex64 ``(S, H, W)``, the complex image the
  magnitude was taken of (the k-space band analysis of Fig. 4 needs it);
- attributes ``method``, ``dataset``, ``acceleration``, ``slices`` (int64 ``(S,)``: the
  index of each slice in the source volume, so a file maps back to the raw file
  slice by slice) and whatever the writer adds (``device``, ``replicate``, ``amp``, ...).

Networks, the zero-filled reference and CS all write through
:func:`write_reconstruction`; evaluation and figures read through
:func:`read_reconstruction`. No torch import here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import h5py
import numpy as np

from oucr.errors import DataError
from oucr.io import atomic_path, decoded_attrs, open_hdf5

COMPLEX_KEY = "reconstruction_complex"


def write_reconstruction(
    path: Union[str, Path],
    reconstruction: np.ndarray,
    method: str,
    dataset: str,
    acceleration: int,
    slices: Optional[Sequence[int]] = None,
    **attrs: object,
) -> None:
    """Write one volume's reconstruction atomically.

    Args:
        path: the file (``<volume>.h5`` in the method's folder).
        reconstruction: the complex images ``(S, H, W)`` (magnitude and complex are both
            written), or real magnitudes (then only ``reconstruction``).
        method, dataset, acceleration: stored as attributes.
        slices: index of each slice in the source volume (default ``0 .. S-1``).
        **attrs: further attributes (e.g. ``device``, ``lamda``).

    Raises:
        ValueError: for a reconstruction that is not ``(S, H, W)`` or slice indices of the wrong length.
    """
    reconstruction = np.asarray(reconstruction)
    if reconstruction.ndim != 3:
        raise ValueError(f"a reconstruction must be shaped (slices, H, W), got {reconstruction.shape}")
    indices = np.arange(reconstruction.shape[0]) if slices is None else np.asarray(slices, dtype=np.int64)
    if indices.shape != (reconstruction.shape[0],):
        raise ValueError(f"{len(indices)} slice indices for a reconstruction of {reconstruction.shape[0]} slices")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("reconstruction", data=np.abs(reconstruction).astype(np.float32))
            if np.iscomplexobj(reconstruction):
                f.create_dataset(COMPLEX_KEY, data=reconstruction.astype(np.complex64))
            f.attrs["method"] = method
            f.attrs["dataset"] = dataset
            f.attrs["acceleration"] = int(acceleration)
            f.attrs["slices"] = indices.astype(np.int64)
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


def read_reconstruction(path: Union[str, Path], complex_image: bool = False) -> tuple:
    """Read ``(reconstruction (S,H,W), attrs dict)``: the float32 magnitude, or the complex64 image.

    Args:
        path: the file.
        complex_image: return ``reconstruction_complex`` instead of the magnitude.

    Raises:
        DataError: if the file is missing, unreadable, lacks the dataset asked for or has
            the wrong shape.
    """
    p = Path(path)
    key = COMPLEX_KEY if complex_image else "reconstruction"
    with open_hdf5(p, "reconstruction file") as f:
        if key not in f:
            hint = " (written before complex images were kept? reconstruct again)" if complex_image else ""
            raise DataError(p, f"no {key!r} dataset in the file{hint}")
        data = f[key][()]
        attrs = decoded_attrs(f)
    if data.ndim != 3:
        raise DataError(p, f"{key!r} must be (slices, H, W), got shape {data.shape}")
    return (data.astype(np.complex64) if complex_image else data.astype(np.float32)), attrs


def has_complex_reconstruction(path: Union[str, Path]) -> bool:
    """Whether the file holds ``reconstruction_complex`` (files of other tools may not)."""
    with open_hdf5(Path(path), "reconstruction file") as f:
        return COMPLEX_KEY in f
