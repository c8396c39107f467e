"""The inputs of ``oucr reconstruct-file``: a researcher's own file as k-space, mask and geometry.

Each reader returns an :class:`Acquisition`, the k-space on the grid its mask applies
to, with the reference and what was done to the geometry; :mod:`oucr.engine.reconstruct_file`
runs the network over it. No torch here.

Inputs
    * raw fastMRI single-coil HDF5 (``kspace`` ``(S, H, W)`` complex, readout oversampled;
      test files also carry ``mask`` ``(W,)`` and the attributes ``acceleration`` and
      ``num_low_frequencies``), read with :func:`oucr.data.fastmri.read_fastmri`;
    * magnitude volumes (``.nii``, ``.nii.gz``, or ``.h5`` with an ``image`` dataset): the
      HPKS protocol, k-space simulated by the FFT of each slice, reference = the magnitude.

Mask
    The file's ``mask`` when it has one; otherwise (or with ``--simulate-mask``) a fastMRI
    mask drawn by :func:`oucr.masks.column_mask` at ``--acceleration`` with the centre
    fraction ``0.32 / A`` (fastMRI's pairing 0.08 at 4x, 0.04 at 8x) and the per-file seed
    :func:`oucr.masks.volume_seed` of the volume name, as ``oucr masks`` draws it.

Geometry, and why
    The networks end with hard data consistency ``(1 - m) F(x) + m k0`` on the k-space of
    the image they reconstruct, so the mask must select columns of *that* k-space.

    * File mask (fastMRI test files): the mask samples columns of the RAW k-space (368 for
      knee). The k-space of an image cropped to 320 columns is not a column subset of the
      raw one, so the image is cropped only along the readout (rows) to the reconstruction
      height -- exact, because the readout is fully sampled and any operation along the
      rows commutes with a column mask -- and keeps all raw columns. The network
      reconstructs at ``(H_recon, W_raw)`` with the file's mask; ``reconstruction`` is the
      centre ``(H_recon, W_recon)`` of that image and ``reconstruction_uncropped`` keeps the
      whole ``(H_recon, W_raw)`` image whose k-space equals the measurement on the sampled
      columns.
    * Simulated mask, fastMRI file: exactly the pipeline's geometry (``oucr prepare`` +
      ``oucr masks``): centre crop to the reconstruction size in image space, FFT, mask
      drawn on the cropped width. The result equals ``oucr reconstruct``'s for the same
      file, mask seed and model.
    * Magnitude volume: the volume's own in-plane size and native voxel grid (NIfTI
      slices are not resampled to square pixels, so the output maps voxel for voxel onto
      the input), all slices unless ``--slices``; the mask is drawn on the slice width.

Every problem with a file raises one :class:`~oucr.errors.DataError` naming it; mask
options that do not fit a file raise :class:`~oucr.errors.ConfigError`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import h5py
import numpy as np

from oucr.data.fastmri import read_fastmri, recon_size, scan_fastmri
from oucr.data.volumes import HDF5_SUFFIXES, NIFTI_SUFFIXES, NiftiGrid, load_axial_stack, read_nifti_stack, volume_name
from oucr.errors import ConfigError, DataError
from oucr.fft import fft2c
from oucr.io import decoded_attrs, open_hdf5
from oucr.masks import MASK_TYPES, column_mask, create_mask_for_mask_type, realised_acceleration, volume_seed

log = logging.getLogger(__name__)

UNCROPPED_KEY = "reconstruction_uncropped"
MASK_KEY = "mask"
#: fastMRI pairs 0.08 with 4x and 0.04 with 8x: centre fraction = this / acceleration
CENTER_FRACTION_PRODUCT = 0.32


@dataclass
class MaskRequest:
    """What the command line says about masks.

    Args:
        acceleration: nominal acceleration of a simulated mask (None: the file's mask).
        center_fraction: fully sampled centre of a simulated mask (None: ``0.32 / acceleration``).
        mask_type: ``random`` or ``equispaced_fraction``.
        seed: integer seed of a simulated mask (None: fastMRI's per-file seed).
        simulate: simulate a mask even for a file that carries one.
    """

    acceleration: Optional[int] = None
    center_fraction: Optional[float] = None
    mask_type: str = "random"
    seed: Optional[int] = None
    simulate: bool = False

    def check(self) -> None:
        """Raises ConfigError for values no mask can be drawn with."""
        if self.mask_type not in MASK_TYPES:
            raise ConfigError(f"unknown mask type {self.mask_type!r}; known: {', '.join(MASK_TYPES)}")
        if self.simulate and self.acceleration is None:
            raise ConfigError("--simulate-mask needs --acceleration")
        if self.acceleration is None:
            if self.center_fraction is not None or self.seed is not None:
                raise ConfigError("--center-fraction and --seed describe a simulated mask: give --acceleration too")
            return
        if not self.acceleration > 1:
            raise ConfigError(f"--acceleration must be greater than 1, got {self.acceleration}")
        cf = self.fraction()
        if not 0 < cf < 1 / self.acceleration:
            raise ConfigError(f"--center-fraction must lie in (0, 1/acceleration), got {cf} at {self.acceleration}x")

    def fraction(self) -> float:
        """The centre fraction of the simulated mask."""
        assert self.acceleration is not None
        if self.center_fraction is not None:
            return float(self.center_fraction)
        return CENTER_FRACTION_PRODUCT / self.acceleration


@dataclass
class Acquisition:
    """One input file as the network will see it.

    Args:
        path: the input file.
        name: the output stem (:func:`oucr.data.volumes.volume_name`).
        format: ``fastmri`` or ``magnitude``.
        kspace: complex64 ``(S, H, W)`` k-space on the acquisition grid (the mask applies to it).
        mask: uint8 ``(W,)`` column mask on that grid.
        mask_source: ``file`` or ``simulated``.
        mask_attrs: how the mask came about (acceleration, centre fraction, seed, ...).
        acceleration: nominal acceleration.
        slices: index of each slice in the source volume.
        output_size: ``(h, w)`` of the ``reconstruction`` dataset (a centre crop of the grid).
        reference: magnitude reference ``(S, h, w)``, or None.
        reference_name: where the reference comes from, or why there is none.
        geometry: what was done to the geometry, in words (stored in the file).
        nifti: the NIfTI input, to write the output in its voxel grid.
    """

    path: Path
    name: str
    format: str
    kspace: np.ndarray
    mask: np.ndarray
    mask_source: str
    mask_attrs: Dict[str, Any]
    acceleration: int
    slices: np.ndarray
    output_size: Tuple[int, int]
    reference: Optional[np.ndarray]
    reference_name: str
    geometry: str
    nifti: Optional[NiftiGrid] = None



# ---------------------------------------------------------------------------------- slices

def parse_slices(spec: Optional[str]) -> Optional[List[Tuple[int, Optional[int]]]]:
    """Parse ``--slices``: comma-separated indices and ``start:stop`` ranges (stop exclusive).

    Returns:
        ``[(start, stop)]`` pairs (one index ``i`` is ``(i, i + 1)``; ``stop`` is None for an
        open end such as ``10:``), or None for all slices.

    Raises:
        ConfigError: for an unparsable specification.
    """
    if spec is None:
        return None
    parts: List[Tuple[int, Optional[int]]] = []
    for item in spec.split(","):
        item = item.strip()
        try:
            if ":" in item:
                a, b = item.split(":", 1)
                start, stop = int(a) if a.strip() else 0, (int(b) if b.strip() else None)
            else:
                start = int(item)
                stop = start + 1
        except ValueError:
            raise ConfigError(f"--slices: cannot read {item!r}; use indices and start:stop ranges, e.g. 0,3,10:20") \
                from None
        if start < 0 or (stop is not None and stop <= start):
            raise ConfigError(f"--slices: {item!r} selects no slice (indices count from 0, stop is exclusive)")
        parts.append((start, stop))
    return parts


def select_slices(parts: Optional[List[Tuple[int, Optional[int]]]], n: int, path: Path) -> np.ndarray:
    """The sorted source indices that ``parts`` select from ``n`` slices.

    Raises:
        DataError: naming the file when an index lies beyond its slices.
    """
    if parts is None:
        return np.arange(n)
    chosen = set()
    for start, stop in parts:
        stop = n if stop is None else stop
        if start >= n or stop > n:
            raise DataError(path, f"--slices asks for slice {max(start, stop - 1)}, but the volume has {n} "
                                  f"slices (0 to {n - 1})")
        chosen.update(range(start, stop))
    return np.array(sorted(chosen), dtype=np.int64)


# ---------------------------------------------------------------------------------- masks

def simulated_mask(request: MaskRequest, width: int, name: str) -> Tuple[np.ndarray, Dict[str, Any]]:
    """The fastMRI mask ``oucr masks`` would draw for volume ``name`` at ``width`` columns."""
    assert request.acceleration is not None
    cf = request.fraction()
    func = create_mask_for_mask_type(request.mask_type, [cf], [int(request.acceleration)])
    seed = volume_seed(name) if request.seed is None else int(request.seed)
    mask, num_low = column_mask(func, width, seed=seed)
    seed_text = f"volume_seed({name!r})" if request.seed is None else str(request.seed)
    return mask, {"mask_type": request.mask_type, "center_fraction": cf, "num_low_frequencies": int(num_low),
                  "mask_seed": seed_text, "nominal_acceleration": int(request.acceleration)}


def _file_mask(path: Path, f: h5py.File, width: int) -> Tuple[np.ndarray, Dict[str, Any]]:
    """The ``mask`` dataset of a fastMRI test file, checked against the k-space width."""
    ds = f[MASK_KEY]
    if not isinstance(ds, h5py.Dataset) or ds.ndim != 1:
        raise DataError(path, f"'mask' must be a (W,) column mask, got {getattr(ds, 'shape', 'a group')}")
    mask = np.asarray(ds[()])
    if mask.shape[0] != width:
        raise DataError(path, f"'mask' has {mask.shape[0]} entries but the k-space has {width} columns")
    if not np.isin(mask, (0, 1)).all():
        raise DataError(path, "'mask' must hold only 0 and 1")
    mask = mask.astype(np.uint8)
    if not mask.any():
        raise DataError(path, "'mask' samples no column")
    attrs = decoded_attrs(f)
    realised = realised_acceleration(mask)
    nominal = int(attrs["acceleration"]) if "acceleration" in attrs else int(round(realised))
    info: Dict[str, Any] = {"nominal_acceleration": nominal}
    if "num_low_frequencies" in attrs:
        info["num_low_frequencies"] = int(attrs["num_low_frequencies"])
    return mask, info


# ---------------------------------------------------------------------------------- readers

def input_kind(path: Path) -> str:
    """What an input file is by its name: ``magnitude`` (NIfTI) or ``hdf5`` (fastMRI or magnitude).

    Raises:
        DataError: a missing file or a suffix this command does not read.
    """
    if not path.is_file():
        raise DataError(path, "input file does not exist")
    if path.name.endswith(NIFTI_SUFFIXES):
        return "magnitude"
    if not path.name.endswith(HDF5_SUFFIXES):
        raise DataError(path, "not an input this command reads: expected a fastMRI or magnitude HDF5 file (.h5) "
                              "or a NIfTI volume (.nii, .nii.gz)")
    return "hdf5"


def read_fastmri_input(path: Path, request: MaskRequest, slices: Optional[list],
                       size: Optional[Sequence[int]]) -> Acquisition:
    """Read a fastMRI single-coil file and its mask (module docstring: geometry).

    Raises:
        DataError: every problem with the file (see :mod:`oucr.data.fastmri`) or its mask.
        ConfigError: a file mask together with ``--acceleration`` but no ``--simulate-mask``,
            or no mask at all and no ``--acceleration``.
    """
    scan_fastmri(path)  # a readable file with 'kspace'
    h, w = recon_size(path, size)
    with open_hdf5(path) as f:
        raw_shape = tuple(f["kspace"].shape)
        has_mask = MASK_KEY in f
        esc = f["reconstruction_esc"][()] if "reconstruction_esc" in f else None
    use_file_mask = has_mask and not request.simulate
    if use_file_mask and request.acceleration is not None:
        raise ConfigError(f"{path} carries its own mask; pass --simulate-mask to replace it with a simulated "
                          f"{request.acceleration}x mask, or drop --acceleration")
    if not has_mask and request.acceleration is None:
        raise ConfigError(f"{path} has no 'mask' (not a fastMRI test file): give --acceleration to simulate one")
    name = volume_name(path)
    if use_file_mask:
        width = int(raw_shape[-1]) if raw_shape else w
        # crop only the readout: every raw column stays, so the file's mask still selects columns
        vol = read_fastmri(path, (h, width), tissue_slices=False)  # checks the k-space (dims, dtype, NaN, size)
        if w > width:
            raise DataError(path, f"reconstruction size {h} x {w} is wider than the k-space ({width} columns)")
        with open_hdf5(path) as f:
            mask, mask_info = _file_mask(path, f, width)
        source = "file"
        geometry = (f"readout cropped in image space to {h} rows (fully sampled: exact); reconstructed at "
                    f"{h} x {width} with the file's mask on the raw {width} columns; 'reconstruction' is the centre "
                    f"{h} x {w}, '{UNCROPPED_KEY}' the whole {h} x {width} image")
    else:
        vol = read_fastmri(path, (h, w), tissue_slices=False)
        mask, mask_info = simulated_mask(request, w, name)
        source = "simulated"
        geometry = (f"pipeline geometry: centre crop to {h} x {w} in image space, FFT, mask drawn on the {w} "
                    "cropped columns")
        if has_mask:
            log.warning("%s: its own mask is replaced by a simulated one (--simulate-mask); its k-space may already "
                        "be undersampled", path)
    keep = select_slices(slices, vol.target.shape[0], path)
    target = vol.target[keep]
    kspace = fft2c(target).astype(np.complex64)  # as the prepared store holds it (oucr.data.store.write_volume)
    reference, reference_name = None, "none: the file has no reconstruction_esc (a fastMRI test file?)"
    if esc is not None:
        if esc.shape != (vol.target.shape[0], h, w):
            reference_name = f"none: reconstruction_esc is {esc.shape}, the output {(vol.target.shape[0], h, w)}"
            log.warning("%s: %s; no metrics", path, reference_name)
        else:
            reference, reference_name = np.asarray(esc[keep], dtype=np.float32), "reconstruction_esc"
    return Acquisition(
        path=path, name=name, format="fastmri", kspace=kspace, mask=mask, mask_source=source, mask_attrs=mask_info,
        acceleration=int(mask_info.pop("nominal_acceleration")), slices=vol.slices[keep], output_size=(h, w),
        reference=reference, reference_name=reference_name, geometry=geometry,
    )


def read_magnitude_input(path: Path, request: MaskRequest, slices: Optional[list], h5_key: str) -> Acquisition:
    """Read a magnitude volume (NIfTI or HDF5) at its own size (module docstring).

    Raises:
        DataError: every problem with the file.
        ConfigError: no ``--acceleration`` (a magnitude volume carries no mask).
    """
    grid = None
    if path.name.endswith(NIFTI_SUFFIXES):
        stack, grid = read_nifti_stack(path)
    else:
        stack = load_axial_stack(path, h5_key)  # HDF5 stacks are taken as they are (no resampling)
    if request.acceleration is None:
        raise ConfigError(f"{path} is a magnitude volume and carries no mask: give --acceleration to simulate one")
    name = volume_name(path)
    keep = select_slices(slices, stack.shape[0], path)
    target = stack[keep].astype(np.complex64)  # zero phase: the HPKS protocol
    _, h, w = target.shape
    mask, info = simulated_mask(request, w, name)
    geometry = f"magnitude volume at its own size {h} x {w}; k-space = FFT of each slice; mask drawn on {w} columns"
    if grid is not None and grid.notes:
        geometry += "; " + "; ".join(grid.notes)
    return Acquisition(
        path=path, name=name, format="magnitude", kspace=fft2c(target).astype(np.complex64), mask=mask,
        mask_source="simulated", mask_attrs=info, acceleration=int(info.pop("nominal_acceleration")), slices=keep,
        output_size=(h, w), reference=np.abs(target).astype(np.float32), reference_name="input", geometry=geometry,
        nifti=grid,
    )


def read_input(path: Path, request: MaskRequest, slices: Optional[list] = None,
               size: Optional[Sequence[int]] = None, h5_key: str = "image") -> Acquisition:
    """Read any supported input file (fastMRI HDF5, magnitude HDF5, NIfTI).

    Raises:
        DataError: naming the file and the problem.
        ConfigError: mask options that do not fit the file.
    """
    path = Path(path)
    kind = input_kind(path)
    if kind == "hdf5":
        with open_hdf5(path) as f:
            keys = list(f.keys())
        if "kspace" in keys:
            kind = "fastmri"
        elif h5_key in keys:
            kind = "magnitude"
        else:
            raise DataError(path, f"neither a 'kspace' dataset (fastMRI single-coil) nor an {h5_key!r} dataset "
                                  f"(magnitude volume) in the file (keys: {', '.join(keys) or 'none'})")
    if kind == "fastmri":
        return read_fastmri_input(path, request, slices, size)
    return read_magnitude_input(path, request, slices, h5_key)
