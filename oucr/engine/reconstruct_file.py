"""``oucr reconstruct-file``: reconstruct a researcher's own files with a trained model.

One command instead of ``oucr prepare`` (with a test-only split) + ``oucr masks`` +
``oucr reconstruct`` + ``oucr evaluate``: each input file gives ``<name>.h5`` in the
fastMRI submission layout (:func:`oucr.recon_io.write_reconstruction`), ``<name>.nii.gz``
for NIfTI inputs, and one row of ``metrics.csv`` (PSNR, SSIM, NMSE, HaarPSI, VIF with
fastMRI ``evaluate.py`` semantics, :func:`oucr.engine.evaluate.score_volume`).

The inputs, their masks and their geometry are :mod:`oucr.engine.reconstruct_file_inputs`
(:class:`~oucr.engine.reconstruct_file_inputs.Acquisition`), the command line
:mod:`oucr.engine.reconstruct_file_cli`; this module fits each acquisition to the
network's grid, runs the network and writes the outputs.

Padding (the rule for sizes that are not multiples of the model's ``size_multiple``)
    The image is extended to the next multiples and the result brought back:

    * rows (the fully sampled readout): zero rows in image space, cropped off afterwards --
      exact for any column mask, and the pixel size the network sees is unchanged;
    * columns (the undersampled phase encoding): zero, *unsampled* columns at both edges of
      k-space (the DC column stays the centre column), dropped from the output's k-space
      afterwards. Zero columns in image space would be unsound: they change the k-space
      grid spacing by ``W / W'``, so the measured columns would no longer be columns of the
      padded image's k-space and data consistency would enforce the wrong values. Padding
      k-space keeps every measured column on the grid (it interpolates the image by
      ``W' / W`` in the phase direction, a few per cent at most), so data consistency still
      holds exactly on the measured columns after the crop back.

    ``--no-pad`` refuses such sizes instead.

Errors: missing files, unknown suffixes and clashing output names are refused before
anything is reconstructed. Everything written in ``--out`` goes through
:func:`oucr.io.atomic_path` (``<name>.h5`` and ``<name>.nii.gz`` are both complete before
either is renamed into place): when the third of five files is bad, the results of the first two stay
(``metrics.csv`` is rewritten after each file and holds this run's rows), nothing of the
third is left, and the run stops with one :class:`~oucr.errors.DataError` naming the file
and the problem (exit status 2).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import h5py
import numpy as np
import pandas as pd

from oucr.data.volumes import nifti_from_stack, volume_name
from oucr.engine.reconstruct_file_inputs import (
    MASK_KEY,
    UNCROPPED_KEY,
    Acquisition,
    MaskRequest,
    input_kind,
    parse_slices,
    read_input,
)
from oucr.errors import ConfigError, DataError
from oucr.fft import center_crop, fft2c, ifft2c
from oucr.io import atomic_path
from oucr.masks import realised_acceleration

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.csv"
METRIC_NAMES = ("nmse", "psnr", "ssim", "haarpsi", "vif")
METRICS_COLUMNS = ("volume", "input", "method", "model", "mask_source", "acceleration", "realised_acceleration",
                   "n_slices", "reference") + METRIC_NAMES


# ---------------------------------------------------------------------------------- geometry

def network_grid(shape: Sequence[int], multiple: int) -> Tuple[int, int]:
    """``(H, W)`` rounded up to multiples of ``multiple``."""
    m = max(int(multiple), 1)
    return tuple(-(-int(n) // m) * m for n in shape)  # type: ignore[return-value]


def _column_offset(width: int, grid_width: int) -> int:
    # centred k-space holds DC at index W // 2: pad so that it stays the centre column
    return grid_width // 2 - width // 2


def extend_to_grid(kspace: np.ndarray, mask: np.ndarray, grid: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """Extend k-space ``(S, H, W)`` and its column mask to ``grid`` (module docstring: padding).

    Rows: zero rows in image space (fully sampled: exact). Columns: zero, unsampled
    k-space columns at both edges, DC kept in the centre column.

    Returns:
        ``(kspace (S, H', W'), mask (W',))``; the inputs themselves when nothing is added.
    """
    _, h, w = kspace.shape
    gh, gw = grid
    if gh > h:
        top = (gh - h) // 2
        image = np.zeros(kspace.shape[:1] + (gh, w), np.complex64)
        image[:, top:top + h] = ifft2c(kspace)
        kspace = fft2c(image).astype(np.complex64)
    if gw > w:
        left = _column_offset(w, gw)
        wide = np.zeros(kspace.shape[:2] + (gw,), np.complex64)
        wide[..., left:left + w] = kspace
        wide_mask = np.zeros(gw, np.uint8)
        wide_mask[left:left + w] = mask
        kspace, mask = wide, wide_mask
    return kspace, mask


def restore_from_grid(image: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """Undo :func:`extend_to_grid` on a reconstructed image ``(S, H', W')`` -> ``(S, H, W)``.

    The added k-space columns are dropped (so the k-space of the result is the
    network's on the original columns, the measurement on the sampled ones), then the
    added rows are cropped off in image space.
    """
    _, gh, gw = image.shape
    h, w = shape
    if gw > w:
        left = _column_offset(w, gw)
        image = ifft2c(fft2c(image)[..., left:left + w]).astype(np.complex64)
    if gh > h:
        top = (gh - h) // 2
        image = image[:, top:top + h]
    return np.ascontiguousarray(image)


# ---------------------------------------------------------------------------------- reconstruction

class MeasuredSlices:
    """The slices of one acquisition as :class:`oucr.data.dataset.SliceDataset` items.

    Each item is built exactly as the dataset builds a test item
    (:func:`oucr.physics.normalised_measurement`, then the zero-filled image), so
    :func:`oucr.engine.inference.predict_volumes` drives it like a prepared store.
    """

    def __init__(self, volume: str, kspace: np.ndarray, mask: np.ndarray) -> None:
        import torch

        self.volume = volume
        self.kspace = np.ascontiguousarray(kspace, dtype=np.complex64)
        self.mask = torch.from_numpy(mask.astype(np.float32)).reshape(1, -1)
        self.slice_index = [(volume, i) for i in range(kspace.shape[0])]

    def __len__(self) -> int:
        return self.kspace.shape[0]

    def __getitem__(self, index: int) -> Dict[str, Any]:
        import torch

        from oucr.fft import complex_to_channels
        from oucr.physics import normalised_measurement, zero_filled

        measured, norm = normalised_measurement(torch.from_numpy(self.kspace[index]), self.mask)
        image = complex_to_channels(zero_filled(measured).unsqueeze(0))[0]
        # predict_volumes also denormalises a target; there is none here, the image stands in
        return {"masked_kspace": measured, "mask": self.mask, "image": image, "target": image,
                "norm": torch.tensor(norm, dtype=torch.float32), "volume": self.volume, "slice": index}


@dataclass
class Reconstruction:
    """The result for one acquisition.

    Args:
        full: complex64 ``(S, H, W)`` on the acquisition grid (data consistent on the mask).
        output: complex64 ``(S, h, w)``, the centre crop written as ``reconstruction``.
        grid: the network grid ``(H', W')``.
    """

    full: np.ndarray
    output: np.ndarray
    grid: Tuple[int, int]


def reconstruct_acquisition(model: Any, acq: Acquisition, device: Any, batch_size: int = 4, amp: str = "none",
                            pad: bool = True) -> Reconstruction:
    """Run the network over every slice of ``acq`` (module docstring: geometry, padding).

    Raises:
        DataError: naming the file if the model cannot take its size (``pad=False`` and a
            size that is not a multiple of the model's ``size_multiple``, or the model refuses).
    """
    from oucr.engine.inference import predict_volumes

    _, h, w = acq.kspace.shape
    multiple = int(getattr(model, "size_multiple", 1))
    grid = network_grid((h, w), multiple)
    method = type(model).__name__
    if grid != (h, w) and not pad:
        raise DataError(acq.path, f"slices of {h} x {w} do not fit {method}: height and width must be multiples of "
                                  f"{multiple}; drop --no-pad to extend them (rows in image space, columns in k-space)")
    if grid != (h, w):
        log.info("%s: %d x %d extended to %d x %d for %s (multiples of %d)", acq.path, h, w, *grid, method, multiple)
    kspace, mask = extend_to_grid(acq.kspace, acq.mask, grid)
    data = MeasuredSlices(acq.name, kspace, mask)
    try:
        results = list(predict_volumes(model, data, device, batch_size, amp))
    except ValueError as err:  # ReconModel.check_input: a size or shape the network refuses
        raise DataError(acq.path, f"the model cannot reconstruct slices of {h} x {w}: {err}") from err
    [(_, image, _)] = results
    full = restore_from_grid(image, (h, w))
    output = np.ascontiguousarray(center_crop(full, acq.output_size))
    return Reconstruction(full=full, output=output, grid=grid)


def score(acq: Acquisition, output: np.ndarray) -> Dict[str, float]:
    """PSNR, SSIM, NMSE, HaarPSI, VIF of the magnitude output against the reference (NaN without one)."""
    from oucr.engine.evaluate import score_volume

    if acq.reference is None:
        return {k: float("nan") for k in METRIC_NAMES}
    recon = np.abs(output).astype(np.float32)
    values, _ = score_volume(acq.reference, recon, None, acq.reference, 0.25)
    return {k: float(values[k]) for k in METRIC_NAMES}


def check_model_fits(meta: Dict[str, Any], model_file: Path, acq: Acquisition, dataset: Optional[str]) -> None:
    """Warn when the model was trained for another dataset or acceleration (this command's purpose)."""
    trained_on, trained_at = meta.get("dataset"), meta.get("acceleration")
    if trained_at is not None and int(trained_at) != acq.acceleration:
        log.warning("%s was trained at %sx; %s is reconstructed at %dx", model_file, trained_at, acq.path,
                    acq.acceleration)
    if dataset is not None and trained_on is not None and str(trained_on) != dataset:
        log.warning("%s was trained on %s; the inputs are %s", model_file, trained_on, dataset)


def write_outputs(out_dir: Path, acq: Acquisition, rec: Reconstruction, attrs: Dict[str, Any], method: str,
                  dataset: str) -> List[Path]:
    """Write ``<name>.h5`` (and ``<name>.nii.gz`` for NIfTI inputs) atomically, together."""
    from oucr.recon_io import write_reconstruction

    h5_path = out_dir / f"{acq.name}.h5"
    written = [h5_path]
    with atomic_path(h5_path) as tmp_h5:
        write_reconstruction(tmp_h5, rec.output, method, dataset, acq.acceleration, slices=acq.slices, **attrs)
        with h5py.File(tmp_h5, "a") as f:
            f.create_dataset(MASK_KEY, data=acq.mask.astype(np.uint8))
            if rec.full.shape != rec.output.shape:
                f.create_dataset(UNCROPPED_KEY, data=rec.full.astype(np.complex64))
        if acq.nifti is None:
            return written
        nii_path = out_dir / f"{acq.name}.nii.gz"
        with atomic_path(nii_path) as tmp_nii:
            # slices left out by --slices are zero; the h5 attribute `slices` lists the reconstructed ones
            stack = np.zeros((acq.nifti.n_slices,) + rec.output.shape[1:], np.float32)
            stack[acq.slices] = np.abs(rec.output)
            tmp_nii.write_bytes(nifti_from_stack(acq.nifti, stack, f"oucr reconstruct-file {method} "
                                                 f"x{acq.acceleration}"))
        written.append(nii_path)
    return written


def reconstruct_files(
    model_file: Path,
    inputs: Sequence[Path],
    out_dir: Path,
    request: Optional[MaskRequest] = None,
    slices: Optional[str] = None,
    size: Optional[Sequence[int]] = None,
    h5_key: str = "image",
    dataset: Optional[str] = None,
    pad: bool = True,
    device: str = "auto",
    batch_size: int = 4,
    amp: Optional[str] = None,
) -> pd.DataFrame:
    """Reconstruct each input file with a trained model and write its outputs into ``out_dir``.

    Args:
        model_file: ``model.pt`` of ``oucr train``.
        inputs: fastMRI single-coil HDF5, magnitude HDF5 or NIfTI files.
        out_dir: receives ``<name>.h5``, ``<name>.nii.gz`` (NIfTI inputs) and ``metrics.csv``.
        request: the mask options (default: each file's own mask).
        slices: ``--slices`` specification (default all slices).
        size: reconstruction size of fastMRI inputs (default the header's).
        h5_key: image dataset of magnitude HDF5 inputs.
        dataset: what the inputs are (recorded; compared with the model's training dataset).
        pad: extend sizes the model cannot take (module docstring); False refuses them.
        device, batch_size: inference settings.
        amp: ``none`` or ``bf16``; default the model's training precision.

    Returns:
        the rows of ``metrics.csv``.

    Raises:
        DataError: naming the bad file; the outputs of the files before it stay.
        ConfigError: bad options.
    """
    from oucr.engine.checkpoint import load_trained_model
    from oucr.engine.runtime import device_description, select_device

    request = request or MaskRequest()
    request.check()
    if batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    parts = parse_slices(slices)
    if size is not None and (len(size) != 2 or min(int(s) for s in size) < 1):
        raise ConfigError(f"--recon-size needs two positive integers, got {size}")
    paths = [Path(p) for p in inputs]
    names: Dict[str, Path] = {}
    for p in paths:
        input_kind(p)
        other = names.setdefault(volume_name(p), p)
        if other != p:
            raise DataError(p, f"gives the same output name {volume_name(p)!r} as {other}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} exists and is not a folder")
    dev = select_device(device)
    model, meta = load_trained_model(Path(model_file), dev)
    method = str(meta.get("display_name") or meta["method"])
    amp = amp or str((meta.get("training") or {}).get("amp", "none"))
    log.info("%s: %s trained on %s at %sx, reconstructing in %s on %s", model_file, method, meta.get("dataset"),
             meta.get("acceleration"), amp, device_description(dev))
    rows: List[Dict[str, Any]] = []
    for path in paths:
        t0 = time.perf_counter()
        acq = read_input(path, request, parts, size, h5_key)
        check_model_fits(meta, Path(model_file), acq, dataset)
        realised = realised_acceleration(acq.mask)
        log.info("%s: %s mask, %dx nominal, realised acceleration %.2f", path, acq.mask_source, acq.acceleration,
                 realised)
        rec = reconstruct_acquisition(model, acq, dev, batch_size, amp, pad)
        values = score(acq, rec.output)
        attrs = {"model_file": str(model_file), "input_file": str(path), "input_format": acq.format,
                 "mask_source": acq.mask_source, "realised_acceleration": float(realised),
                 "acquisition_grid": f"{acq.kspace.shape[1]} x {acq.kspace.shape[2]}",
                 "network_grid": f"{rec.grid[0]} x {rec.grid[1]}", "geometry": acq.geometry,
                 "reference": acq.reference_name, "amp": amp, "device": device_description(dev),
                 "replicate": int(meta.get("replicate", 0)), **acq.mask_attrs}
        write_outputs(out_dir, acq, rec, attrs, method, dataset or "")
        rows.append({"volume": acq.name, "input": str(path), "method": method, "model": str(model_file),
                     "mask_source": acq.mask_source, "acceleration": acq.acceleration,
                     "realised_acceleration": realised, "n_slices": int(rec.output.shape[0]),
                     "reference": acq.reference_name, **values})
        with atomic_path(out_dir / METRICS_FILE) as tmp:
            pd.DataFrame(rows, columns=list(METRICS_COLUMNS)).to_csv(tmp, index=False)
        if acq.reference is None:
            log.info("%s: %d slices -> %s in %.1f s; no metrics (%s)", path, rec.output.shape[0], out_dir,
                     time.perf_counter() - t0, acq.reference_name)
        else:
            log.info("%s: %d slices -> %s in %.1f s; PSNR %.2f dB, SSIM %.4f against %s", path, rec.output.shape[0],
                     out_dir, time.perf_counter() - t0, values["psnr"], values["ssim"], acq.reference_name)
    return pd.DataFrame(rows, columns=list(METRICS_COLUMNS))
