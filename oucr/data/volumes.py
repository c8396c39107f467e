"""Reader of magnitude volumes (brain NIfTI, or HDF5), the paper's HPKS protocol.

HPKS is magnitude-only: k-space is simulated by the FFT of each slice, and the
reference is the magnitude image itself (zero phase). Any public brain T1 set
in NIfTI (IXI, BraTS, OASIS) takes the same path.

Orientation and slices:
- NIfTI volumes are reoriented to the closest canonical (RAS+) orientation, so
  axial slices lie along the third axis; each slice is shown with anterior up.
- HDF5 volumes are read from a configurable key and are taken as
  ``(slices, H, W)`` stacks of axial slices.
- :func:`axial_from_ras` is that convention and :func:`ras_from_axial` its inverse.
  :func:`read_nifti_stack` orients a NIfTI volume the same way on its native voxel
  grid (no resampling) and :func:`nifti_from_stack` writes such a stack back onto the
  input's voxels (``oucr reconstruct-file`` writes its NIfTI outputs with it).
- The paper used 15 axial slices with brain per subject. A pixel is tissue when
  it exceeds :data:`TISSUE_LEVEL` times the volume's 99th intensity percentile
  (a robust maximum, blind to a few hot voxels); a slice "has tissue" when at
  least :data:`TISSUE_AREA_FRACTION` of its pixels are tissue; the
  ``slices_per_volume`` central slices among those are kept (all of them when
  fewer exist).

Size: one in-plane window per volume, centred on the bounding box of the tissue
of the chosen slices (plus :data:`MARGIN` pixels), with the aspect ratio of the
configured size ``(h, w)``: exactly ``(h, w)`` when the tissue fits (a plain crop,
no interpolation), otherwise the smallest window of that aspect ratio holding the
tissue, resampled down to ``(h, w)`` with anti-aliasing (scikit-image ``resize``,
linear). Images are never upsampled; a configured size larger than the slices is
an error. Parts of the window outside the slice are zero. NIfTI slices with
non-square pixels are first resampled (linearly) along their coarser axis to the
finer spacing (:func:`square_pixels`); HDF5 stacks are taken as square-pixelled.

Every problem with a file (unreadable NIfTI or HDF5, missing key, wrong
dimensions, NaN/Inf, blank volume, size larger than the data) raises one
:class:`oucr.errors.DataError` naming the file.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from oucr.data.store import PreparedVolume
from oucr.errors import DataError
from oucr.io import open_hdf5

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


def axial_from_ras(data: np.ndarray) -> np.ndarray:
    """RAS-ordered voxels ``(x, y, z)`` as axial slices ``(z, y, x)``, anterior at the top of each slice (a view)."""
    return np.flip(np.transpose(data, (2, 1, 0)), axis=1)


def ras_from_axial(stack: np.ndarray) -> np.ndarray:
    """The inverse of :func:`axial_from_ras`: axial slices ``(z, y, x)`` back to voxels ``(x, y, z)`` (a view)."""
    return np.transpose(np.flip(stack, axis=1), (2, 1, 0))


def check_magnitude(path: Union[str, Path], stack: np.ndarray) -> None:
    """Refuse a magnitude volume that no method can use.

    Raises:
        DataError: naming ``path`` if ``stack`` is empty, holds NaN or Inf, or has no positive intensity.
    """
    if stack.size == 0:
        raise DataError(path, "the volume is empty")
    if not np.isfinite(stack).all():
        raise DataError(path, "the volume contains NaN or Inf values")
    if stack.max() <= 0:
        raise DataError(path, "the volume has no positive intensity (blank image)")


def load_axial_stack(path: Union[str, Path], h5_key: str = "image") -> np.ndarray:
    """Read a magnitude volume as float32 axial slices ``(slices, H, W)``.

    Raises:
        DataError: unreadable file, missing key, wrong dimensions, or NaN/Inf values.
    """
    path = Path(path)
    if path.name.endswith(NIFTI_SUFFIXES):
        import nibabel as nib

        try:
            img = nib.load(str(path))
            shape = img.shape
        except Exception as err:  # nibabel raises many types for broken files (zlib, EOF, header)
            raise DataError(path, f"unreadable NIfTI file ({type(err).__name__}: {err})") from err
        if len(shape) == 4 and shape[3] == 1:
            img = img.slicer[..., 0]
        elif len(shape) != 3:
            raise DataError(path, f"expected a 3-D volume, got shape {shape}")
        try:
            img = nib.as_closest_canonical(img)
            data = np.asarray(img.dataobj, dtype=np.float32)
        except Exception as err:  # truncated or corrupt image data (zlib, EOF, ...)
            raise DataError(path, f"unreadable NIfTI file ({type(err).__name__}: {err})") from err
        stack = axial_from_ras(data)
        stack = square_pixels(stack, float(img.header.get_zooms()[1]), float(img.header.get_zooms()[0]))
    elif path.name.endswith(HDF5_SUFFIXES):
        import h5py

        with open_hdf5(path) as f:
            if h5_key not in f or not isinstance(f[h5_key], h5py.Dataset):
                raise DataError(path, f"missing dataset {h5_key!r} (keys: {', '.join(f.keys()) or 'none'})")
            stack = np.asarray(f[h5_key][()])
        if np.iscomplexobj(stack):
            stack = np.abs(stack)
        if stack.ndim != 3:
            raise DataError(path, f"{h5_key!r} must be (slices, H, W), got shape {stack.shape}")
    else:
        raise DataError(path, "not a NIfTI (.nii, .nii.gz) or HDF5 (.h5) file")
    stack = np.ascontiguousarray(stack, dtype=np.float32)
    check_magnitude(path, stack)
    return stack


@dataclass
class NiftiGrid:
    """A NIfTI input's image object and how its voxels map onto axial slices (:func:`read_nifti_stack`)."""

    image: Any
    shape: Tuple[int, ...]
    to_canonical: np.ndarray
    n_slices: int
    notes: List[str] = field(default_factory=list)


def read_nifti_stack(path: Union[str, Path]) -> Tuple[np.ndarray, NiftiGrid]:
    """A NIfTI volume as float32 axial slices ``(S, H, W)`` on its native voxel grid.

    The slices are oriented as :func:`load_axial_stack` orients them
    (closest canonical RAS, axial along the third axis, anterior up), but in-plane
    pixels are not resampled to square ones, so :func:`nifti_from_stack` maps the
    result back onto the input's voxels exactly.

    Raises:
        DataError: unreadable file, not 3-D, NaN/Inf, or a blank volume.
    """
    import nibabel as nib
    from nibabel.orientations import apply_orientation, io_orientation

    try:
        img = nib.load(str(path))
        shape = tuple(img.shape)
    except Exception as err:  # nibabel raises many types for broken files (zlib, EOF, header)
        raise DataError(path, f"unreadable NIfTI file ({type(err).__name__}: {err})") from err
    if not (len(shape) == 3 or (len(shape) == 4 and shape[3] == 1)):
        raise DataError(path, f"expected a 3-D volume, got shape {shape}")
    try:
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(shape[:3])
    except Exception as err:  # truncated or corrupt image data
        raise DataError(path, f"unreadable NIfTI file ({type(err).__name__}: {err})") from err
    to_canonical = io_orientation(img.affine)
    stack = np.ascontiguousarray(axial_from_ras(apply_orientation(data, to_canonical)), dtype=np.float32)
    check_magnitude(path, stack)
    grid = NiftiGrid(image=img, shape=shape, to_canonical=to_canonical, n_slices=stack.shape[0])
    zooms = [float(z) for z in img.header.get_zooms()[:3]]
    canon_zooms = [zooms[int(axis)] for axis in np.argsort(to_canonical[:, 0])]
    if abs(canon_zooms[1] / canon_zooms[0] - 1) > 0.01:
        note = (f"pixels are {canon_zooms[1]:g} x {canon_zooms[0]:g} mm, kept as they are (the pipeline resamples to "
                "square pixels for training)")
        grid.notes.append(note)
        log.warning("%s: %s", path, note)
    return stack, grid


def nifti_from_stack(grid: NiftiGrid, stack: np.ndarray, description: str) -> bytes:
    """The gzipped NIfTI bytes of ``stack`` (``(S, H, W)`` as :func:`read_nifti_stack` orients it).

    The image has the input's voxel grid, affine and header (data type float32, no scaling).
    """
    from nibabel.orientations import apply_orientation, axcodes2ornt, ornt_transform

    data = apply_orientation(ras_from_axial(stack), ornt_transform(axcodes2ornt(("R", "A", "S")), grid.to_canonical))
    data = np.ascontiguousarray(data, dtype=np.float32).reshape(grid.shape)
    header = grid.image.header.copy()
    header.set_data_dtype(np.float32)
    header.set_slope_inter(None, None)
    header["descrip"] = description.encode()[:79]
    out = type(grid.image)(data, grid.image.affine, header)
    return gzip.compress(out.to_bytes(), compresslevel=6, mtime=0)


def tissue_level(stack: np.ndarray) -> float:
    """Intensity above which a pixel counts as tissue (module docstring)."""
    robust_max = float(np.percentile(stack, 99))
    return TISSUE_LEVEL * (robust_max if robust_max > 0 else float(stack.max()))


def square_pixels(stack: np.ndarray, row_spacing: float, col_spacing: float) -> np.ndarray:
    """Resample the coarser in-plane axis of ``(S, H, W)`` slices to the finer spacing (linear).

    Returns the stack unchanged when the spacings agree within 1 %.
    """
    if row_spacing <= 0 or col_spacing <= 0 or abs(row_spacing / col_spacing - 1) <= 0.01:
        return stack
    from scipy import ndimage

    finest = min(row_spacing, col_spacing)
    return ndimage.zoom(stack, (1, row_spacing / finest, col_spacing / finest), order=1, grid_mode=True,
                        mode="grid-constant").astype(np.float32)


def choose_slices(stack: np.ndarray, count: Optional[int]) -> np.ndarray:
    """Indices of the ``count`` central slices that contain tissue (module docstring)."""
    level = tissue_level(stack)
    area = (stack > level).mean(axis=(1, 2))
    candidates = np.flatnonzero(area >= TISSUE_AREA_FRACTION)
    if count is None or len(candidates) <= count:
        return candidates
    mid = (candidates[0] + candidates[-1]) / 2.0
    # the `count` candidates nearest the middle of the tissue range, in order
    nearest = candidates[np.argsort(np.abs(candidates - mid), kind="stable")[:count]]
    return np.sort(nearest)


def crop_resample(stack: np.ndarray, size: Sequence[int], path: Union[str, Path] = "<array>") -> np.ndarray:
    """Crop (and, when the tissue is larger, downsample) slices to ``size`` (module docstring).

    Args:
        stack: magnitude slices ``(S, H, W)``.
        size: output ``(h, w)``.
        path: the source file, for error messages.

    Returns:
        float32 ``(S, h, w)``.

    Raises:
        DataError: if ``size`` is larger than the slices.
    """
    from skimage.transform import resize

    n, H, W = stack.shape
    h, w = int(size[0]), int(size[1])
    if h > H or w > W:
        raise DataError(path, f"configured size {h} x {w} is larger than the slices ({H} x {W})")
    tissue = (stack > tissue_level(stack)).any(axis=0)
    rows, cols = np.flatnonzero(tissue.any(axis=1)), np.flatnonzero(tissue.any(axis=0))
    if len(rows) == 0:
        rows, cols = np.array([0, H - 1]), np.array([0, W - 1])
    box_h = rows[-1] - rows[0] + 1 + 2 * MARGIN
    box_w = cols[-1] - cols[0] + 1 + 2 * MARGIN
    scale = max(box_h / h, box_w / w, 1.0)
    win_h, win_w = max(h, int(np.ceil(h * scale))), max(w, int(np.ceil(w * scale)))
    top = int(np.floor((rows[0] + rows[-1] + 1) / 2 - win_h / 2))
    left = int(np.floor((cols[0] + cols[-1] + 1) / 2 - win_w / 2))
    window = np.zeros((n, win_h, win_w), np.float32)
    r0, r1 = max(top, 0), min(top + win_h, H)
    c0, c1 = max(left, 0), min(left + win_w, W)
    window[:, r0 - top : r1 - top, c0 - left : c1 - left] = stack[:, r0:r1, c0:c1]
    if (win_h, win_w) == (h, w):
        return window
    out = resize(window, (n, h, w), order=1, mode="constant", anti_aliasing=True, preserve_range=True)
    return np.clip(out, 0, None).astype(np.float32)


def read_magnitude(
    path: Union[str, Path],
    size: Sequence[int],
    slices_per_volume: Optional[int] = 15,
    h5_key: str = "image",
) -> PreparedVolume:
    """Read one magnitude volume into a prepared volume (split unassigned).

    The target is the magnitude as a complex image with zero phase; the store
    derives the k-space by FFT (the HPKS protocol).

    Args:
        path: a ``.nii``, ``.nii.gz`` or ``.h5`` file (one subject).
        size: in-plane output size ``(h, w)``.
        slices_per_volume: central slices with tissue to keep (None: all with tissue).
        h5_key: dataset holding ``(slices, H, W)`` in HDF5 inputs.

    Raises:
        DataError: for unreadable or unusable files (module docstring).
    """
    path = Path(path)
    stack = load_axial_stack(path, h5_key)
    keep = choose_slices(stack, slices_per_volume)
    if len(keep) == 0:
        raise DataError(path, "no slice contains tissue (blank or nearly blank volume)")
    image = crop_resample(stack[keep], size, path)
    name = volume_name(path)
    return PreparedVolume(
        volume=name, subject=name, target=image.astype(np.complex64), source=str(path),
        format="magnitude", slices=keep,
    )
