"""Reader of magnitude volumes (brain NIfTI, or HDF5), the paper's HPKS protocol.

HPKS is magnitude-only: k-space is simulated by the FFT of each slice, and the
reference is the magnitude image itself (zero phase). Any public brain T1 set
in NIfTI (IXI, BraTS, OASIS) takes the same path.

Orientation and slices:
- NIfTI volumes are reoriented to the closest canonical (RAS+) orientation, so
  axial slices lie along the third axis; each slice is shown with anterior up.
- HDF5 volumes are read from a configurable key and are taken as
  ``(slices, H, W)`` stacks of axial slices.
- The paper used 15 axial slices with brain per subject. A slice "has tissue"
  when at least :data:`TISSUE_AREA_FRACTION` of its pixels exceed
  :data:`TISSUE_LEVEL` of the volume's maximum; the ``slices_per_volume``
  central slices among those are kept (all of them when fewer exist).

Size: the chosen slices are cropped to the bounding box of their tissue (plus a
margin), padded to a square, and resampled to the configured size with
anti-aliasing (scikit-image ``resize``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from oucr.data.store import PreparedVolume
from oucr.errors import DataError

log = logging.getLogger(__name__)

TISSUE_LEVEL = 0.1
TISSUE_AREA_FRACTION = 0.05
MARGIN = 4
NIFTI_SUFFIXES = (".nii", ".nii.gz")
HDF5_SUFFIXES = (".h5", ".hdf5")


def volume_name(path: Path) -> str:
    """Identifier of a file: its name without ``.nii.gz`` / ``.nii`` / ``.h5``."""
    name = path.name
    for suffix in (".nii.gz",) + NIFTI_SUFFIXES + HDF5_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def is_magnitude_file(path: Path) -> bool:
    """Whether the file name has a NIfTI or HDF5 suffix."""
    return path.name.endswith(NIFTI_SUFFIXES + HDF5_SUFFIXES)


def load_axial_stack(path: Union[str, Path], h5_key: str = "image") -> np.ndarray:
    """Read a magnitude volume as float32 axial slices ``(slices, H, W)``.

    Raises:
        DataError: unreadable file, missing key, wrong dimensions, or NaN/Inf values.
    """
    path = Path(path)
    if path.name.endswith(NIFTI_SUFFIXES):
        import nibabel as nib

        try:
            img = nib.as_closest_canonical(nib.load(str(path)))
            data = np.asarray(img.dataobj, dtype=np.float32)
        except Exception as err:  # nibabel raises many types for broken files (zlib, EOF, header)
            raise DataError(path, f"unreadable NIfTI file ({type(err).__name__}: {err})") from err
        if data.ndim == 4 and data.shape[3] == 1:
            data = data[..., 0]
        if data.ndim != 3:
            raise DataError(path, f"expected a 3-D volume, got shape {data.shape}")
        # RAS: (x, y, z) -> (z, y, x) with anterior at the top of each slice
        stack = np.flip(np.transpose(data, (2, 1, 0)), axis=1)
    elif path.name.endswith(HDF5_SUFFIXES):
        import h5py

        try:
            with h5py.File(path, "r") as f:
                if h5_key not in f:
                    raise DataError(path, f"missing key {h5_key!r} (keys: {', '.join(f.keys()) or 'none'})")
                stack = np.asarray(f[h5_key][()])
        except OSError as err:
            raise DataError(path, f"not a readable HDF5 file (truncated or corrupt?): {err}") from err
        if np.iscomplexobj(stack):
            stack = np.abs(stack)
        if stack.ndim != 3:
            raise DataError(path, f"{h5_key!r} must be (slices, H, W), got shape {stack.shape}")
    else:
        raise DataError(path, "not a NIfTI (.nii, .nii.gz) or HDF5 (.h5) file")
    stack = np.ascontiguousarray(stack, dtype=np.float32)
    if stack.size == 0:
        raise DataError(path, "the volume is empty")
    if not np.isfinite(stack).all():
        raise DataError(path, "the volume contains NaN or Inf values")
    if stack.max() <= 0:
        raise DataError(path, "the volume has no positive intensity (blank image)")
    return stack


def choose_slices(stack: np.ndarray, count: Optional[int]) -> np.ndarray:
    """Indices of the ``count`` central slices that contain tissue (module docstring)."""
    level = TISSUE_LEVEL * stack.max()
    area = (stack > level).mean(axis=(1, 2))
    candidates = np.flatnonzero(area >= TISSUE_AREA_FRACTION)
    if count is None or len(candidates) <= count:
        return candidates
    mid = (candidates[0] + candidates[-1]) / 2.0
    # the `count` candidates nearest the middle of the tissue range, in order
    nearest = candidates[np.argsort(np.abs(candidates - mid), kind="stable")[:count]]
    return np.sort(nearest)


def crop_resample(stack: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Tissue bounding box (+ margin), padded to a square, resized to ``size``."""
    from skimage.transform import resize

    level = TISSUE_LEVEL * stack.max()
    tissue = (stack > level).any(axis=0)
    rows, cols = np.flatnonzero(tissue.any(axis=1)), np.flatnonzero(tissue.any(axis=0))
    r0, r1 = max(rows[0] - MARGIN, 0), min(rows[-1] + MARGIN + 1, stack.shape[1])
    c0, c1 = max(cols[0] - MARGIN, 0), min(cols[-1] + MARGIN + 1, stack.shape[2])
    box = stack[:, r0:r1, c0:c1]
    side = max(box.shape[1:])
    pad_r, pad_c = side - box.shape[1], side - box.shape[2]
    box = np.pad(box, ((0, 0), (pad_r // 2, pad_r - pad_r // 2), (pad_c // 2, pad_c - pad_c // 2)))
    h, w = int(size[0]), int(size[1])
    if (side, side) == (h, w):
        return box.astype(np.float32)
    out = resize(box, (box.shape[0], h, w), order=1, mode="constant", anti_aliasing=side > min(h, w),
                 preserve_range=True)
    return np.clip(out, 0, None).astype(np.float32)


def read_magnitude(
    path: Union[str, Path],
    size: Sequence[int],
    slices_per_volume: Optional[int] = 15,
    h5_key: str = "image",
) -> PreparedVolume:
    """Read one magnitude volume into a prepared volume (split unassigned).

    Raises:
        DataError: for unreadable or unusable files (module docstring).
    """
    path = Path(path)
    stack = load_axial_stack(path, h5_key)
    keep = choose_slices(stack, slices_per_volume)
    if len(keep) == 0:
        raise DataError(path, "no slice contains tissue (blank or nearly blank volume)")
    image = crop_resample(stack[keep], size)
    name = volume_name(path)
    return PreparedVolume(
        volume=name, subject=name, target=image.astype(np.complex64), source=str(path),
        format="magnitude", slices=keep,
    )
