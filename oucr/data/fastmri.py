"""Reader of fastMRI single-coil HDF5 files.

A fastMRI single-coil file holds ``kspace`` (complex, ``(slices, H, W)`` with the
readout ``H`` oversampled two-fold, e.g. 640 x 368 for a 320 x 320 knee image),
``reconstruction_esc`` (float32, ``(slices, 320, 320)``), the attributes
``acquisition``, ``max``, ``norm``, ``patient_id`` and an ``ismrmrd_header`` XML
document whose ``reconSpace/matrixSize`` gives the reconstruction size.

Following the OUCR lineage, each slice's complex image is the centred inverse
FFT of its k-space, centre-cropped to the reconstruction size; this cropped
complex image is the target and its FFT the fully sampled k-space that the
masks undersample.

Slices without tissue: fastMRI knee volumes have a few noise-only slices at both
ends (the paper kept "approximately 35" per volume). With ``tissue_slices=True``
the kept slices are the contiguous run from the first to the last slice whose
target energy (sum of ``|x|^2``) is at least :data:`TISSUE_ENERGY_FRACTION` of the
volume's most energetic slice, so only the ends are trimmed; an integer keeps
that many central slices; ``False`` keeps all.

Every problem with a file (unreadable or truncated HDF5, missing key, wrong
dimensions or dtype, NaN/Inf in k-space, malformed header, a reconstruction size
larger than the k-space) raises one :class:`oucr.errors.DataError` naming the file.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import h5py
import numpy as np

from oucr.data.store import PreparedVolume
from oucr.errors import DataError
from oucr.fft import center_crop, ifft2c
from oucr.io import decoded_attrs, open_hdf5

log = logging.getLogger(__name__)

TISSUE_ENERGY_FRACTION = 0.1
_NS = {"m": "http://www.ismrm.org/ISMRMRD"}


def _attrs(path: Path, f: h5py.File) -> Dict[str, object]:
    try:
        return decoded_attrs(f)
    except (OSError, RuntimeError, UnicodeDecodeError) as err:
        raise DataError(path, f"unreadable file attributes (corrupt file?): {err}") from err


def _header_value(root: ET.Element, path: Sequence[str]) -> int:
    node = root
    for tag in path:
        found = node.find(f"m:{tag}", _NS)
        if found is None:
            found = node.find(tag)  # headers written without the namespace
        if found is None:
            raise KeyError("/".join(path))
        node = found
    return int(float(node.text or ""))


def parse_header(path: Path, xml: Union[bytes, str]) -> Dict[str, Tuple[int, int]]:
    """Encoded and reconstruction matrix sizes ``(x, y)`` from an ``ismrmrd_header``.

    Raises:
        DataError: if the XML is malformed or lacks the sizes.
    """
    if isinstance(xml, str):
        xml = xml.encode()  # ElementTree refuses text with an encoding declaration
    try:
        root = ET.fromstring(bytes(xml))
        out = {}
        for name, space in (("encoded", "encodedSpace"), ("recon", "reconSpace")):
            out[name] = (
                _header_value(root, ["encoding", space, "matrixSize", "x"]),
                _header_value(root, ["encoding", space, "matrixSize", "y"]),
            )
        return out
    except (ET.ParseError, KeyError, ValueError, TypeError) as err:
        raise DataError(path, f"ismrmrd_header is malformed or lacks matrix sizes ({err})") from err


def scan_fastmri(path: Union[str, Path]) -> Dict[str, str]:
    """Cheap metadata of a file: ``{"volume", "subject", "acquisition"}``.

    The subject is the ``patient_id`` attribute (the file stem when absent).

    Raises:
        DataError: unreadable file or missing ``kspace``.
    """
    path = Path(path)
    with open_hdf5(path) as f:
        if "kspace" not in f:
            raise DataError(path, "missing key 'kspace' (not a fastMRI single-coil file?)")
        attrs = _attrs(path, f)
    return {
        "volume": path.stem,
        "subject": str(attrs.get("patient_id") or path.stem),
        "acquisition": str(attrs.get("acquisition", "")),
    }


def _read_kspace(path: Path, f: h5py.File) -> np.ndarray:
    ds = f["kspace"]
    if not isinstance(ds, h5py.Dataset):
        raise DataError(path, "'kspace' is not a dataset")
    if ds.ndim != 3:
        raise DataError(
            path,
            f"'kspace' must be single-coil (slices, H, W), got {ds.ndim} dimensions {ds.shape}"
            + (" (multi-coil data is not supported)" if ds.ndim == 4 else ""),
        )
    if not np.issubdtype(ds.dtype, np.complexfloating):
        raise DataError(path, f"'kspace' must be complex, got dtype {ds.dtype}")
    if 0 in ds.shape:
        raise DataError(path, f"'kspace' is empty, shape {ds.shape}")
    try:
        kspace = ds[()]
    except (OSError, RuntimeError) as err:
        raise DataError(path, f"'kspace' cannot be read (truncated or corrupt file?): {err}") from err
    if not np.isfinite(kspace).all():
        bad = np.flatnonzero(~np.isfinite(kspace).all(axis=(1, 2)))
        raise DataError(path, f"'kspace' contains NaN or Inf values (slice(s) {', '.join(map(str, bad[:5]))})")
    return kspace.astype(np.complex64, copy=False)


def recon_size(path: Union[str, Path], size: Optional[Sequence[int]] = None) -> Tuple[int, int]:
    """The reconstruction size ``(H, W)``: ``size`` if given, else the header's reconSpace.

    Raises:
        DataError: no size given and the header is missing or lacks the sizes.
    """
    if size is not None:
        return int(size[0]), int(size[1])
    path = Path(path)
    with open_hdf5(path) as f:
        if "ismrmrd_header" not in f:
            raise DataError(path, "missing key 'ismrmrd_header' and no size configured for the crop")
        try:
            header = f["ismrmrd_header"][()]
        except (OSError, RuntimeError) as err:
            raise DataError(path, f"'ismrmrd_header' cannot be read: {err}") from err
    return parse_header(path, header)["recon"]


def read_fastmri(
    path: Union[str, Path],
    size: Optional[Sequence[int]] = None,
    tissue_slices: Union[bool, int] = True,
) -> PreparedVolume:
    """Read one fastMRI single-coil file into a prepared volume (split unassigned).

    Args:
        path: the ``.h5`` file.
        size: reconstruction size ``(H, W)``; default the header's reconSpace matrix
            (``x`` is the readout ``H``, ``y`` the phase encoding ``W``).
        tissue_slices: True to drop slices without tissue, an int to keep that many
            central slices, False to keep all (module docstring).

    Returns:
        the volume; its target is the centre-cropped complex image.

    Raises:
        DataError: unreadable file, missing keys, wrong dimensions, non-finite
            k-space, or a reconstruction size larger than the data.
    """
    path = Path(path)
    h, w = recon_size(path, size)
    meta = scan_fastmri(path)
    with open_hdf5(path) as f:
        kspace = _read_kspace(path, f)
    if h > kspace.shape[-2] or w > kspace.shape[-1]:
        raise DataError(
            path,
            f"reconstruction size {h} x {w} is larger than the k-space matrix {kspace.shape[-2]} x {kspace.shape[-1]}",
        )
    image = center_crop(ifft2c(kspace), (h, w))
    keep = select_tissue_slices(image, tissue_slices)
    return PreparedVolume(
        volume=meta["volume"],
        subject=meta["subject"],
        target=np.ascontiguousarray(image[keep]),
        source=str(path),
        format="fastmri",
        slices=keep,
        acquisition=meta["acquisition"],
    )


def select_tissue_slices(image: np.ndarray, tissue_slices: Union[bool, int]) -> np.ndarray:
    """Indices of the slices to keep (see the module docstring).

    Args:
        image: complex or magnitude images ``(S, H, W)``.
        tissue_slices: True (trim noise-only end slices), a count of central
            slices, or False (all).

    Returns:
        sorted int64 indices.
    """
    n = image.shape[0]
    if tissue_slices is False:
        return np.arange(n)
    if tissue_slices is True:
        energy = (np.abs(image) ** 2).sum(axis=(1, 2))
        above = np.flatnonzero(energy >= TISSUE_ENERGY_FRACTION * energy.max())
        if len(above) == 0:  # an all-zero volume: nothing to trim by
            return np.arange(n)
        return np.arange(above[0], above[-1] + 1)
    count = int(tissue_slices)
    if count < 1:
        raise ValueError(f"tissue_slices must be a positive count or a boolean, got {tissue_slices}")
    if count >= n:
        return np.arange(n)
    start = (n - count) // 2
    return np.arange(start, start + count)
