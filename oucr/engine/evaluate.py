"""``oucr evaluate``: image-quality metrics of a folder of reconstructions.

Metrics follow fastMRI's ``evaluate.py`` (:mod:`oucr.metrics`): per volume on
magnitudes, PSNR over the volume with the volume's max as range, SSIM the mean
of per-slice SSIMs with the volume's max as range, NMSE over the volume; HaarPSI
(C = 5, alpha = 4.9) and pixel-domain VIF (:mod:`oucr.perceptual`, docs/metrics.md)
are the means of their per-slice values with the same range (VIF is NaN for
images under 41 pixels a side, where it is undefined). Per-slice values are kept for the paired statistics
and box plots. The k-space band columns (Fig. 4, :mod:`oucr.analysis`) compare the
complex reconstruction and the complex reference restricted to one band of
k-space; a file without ``reconstruction_complex`` (another tool's) gets NaN there.

Each row carries the method, dataset, acceleration, replicate, evaluation
condition (``nominal`` or a robustness perturbation), the volume's realised
acceleration (from the fixed masks file) and provenance (:mod:`oucr.provenance`:
git commit and whether the tree was dirty, package versions, and the device that
reconstructed it).

Outputs (tidy CSV):
``<metrics>`` are ``nmse,psnr,ssim,haarpsi,vif``.

- volumes: ``method,dataset,acceleration,replicate,condition,volume,n_slices,<metrics>,realised_acceleration,
  git_commit,git_dirty,versions,device``
- slices: ``method,dataset,acceleration,replicate,condition,volume,slice,source_slice,<metrics>,psnr_low,ssim_low,
  psnr_high,ssim_high,realised_acceleration,git_commit,git_dirty,versions,device``

``slice`` is the position in the prepared volume, ``source_slice`` the index in the raw file.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from oucr import metrics, perceptual
from oucr.analysis import BANDS, kspace_band
from oucr.data.fixed_masks import read_fixed_masks
from oucr.errors import DataError
from oucr.io import atomic_path
from oucr.provenance import provenance
from oucr.recon_io import has_complex_reconstruction, locate_reconstruction, read_reconstruction

log = logging.getLogger(__name__)

#: metric name -> (volume function, per-slice function, smallest image side it is defined for)
VOLUME_METRICS: Dict[str, Tuple[Callable, Callable, int]] = {
    "nmse": (metrics.nmse, metrics.nmse_per_slice, 1),
    "psnr": (metrics.psnr, metrics.psnr_per_slice, 1),
    "ssim": (metrics.ssim, metrics.ssim_per_slice, 7),
    "haarpsi": (perceptual.haarpsi_volume, perceptual.haarpsi_per_slice, 1),
    # VIF's four 'valid' Gaussian filterings drop the borders: images below 41 px have no pixel left
    "vif": (perceptual.vif_volume, perceptual.vif_per_slice, perceptual.VIF_MIN_SIZE),
}


def realised_accelerations(masks_file: Path) -> dict:
    """``{volume: realised acceleration}`` from a fixed masks file."""
    from oucr.masks import realised_acceleration

    return {name: realised_acceleration(mask) for name, mask in read_fixed_masks(masks_file).items()}


def score_volume(target: np.ndarray, recon: np.ndarray, recon_complex: Optional[np.ndarray],
                 target_complex: np.ndarray, band_fraction: float) -> Tuple[Dict[str, float], Dict[str, np.ndarray]]:
    """Every metric of one volume: ``(volume values, per-slice arrays)``.

    Args:
        target, recon: magnitudes ``(S, H, W)``.
        recon_complex, target_complex: the complex images (bands; None gives NaN bands).
        band_fraction: side of the low-frequency window (Fig. 4).
    """
    side = min(target.shape[-2:])
    volume: Dict[str, float] = {}
    per_slice: Dict[str, np.ndarray] = {}
    for name, (on_volume, on_slices, min_side) in VOLUME_METRICS.items():
        if side < min_side:  # undefined at this size (the tiny test configurations): NaN, not an error
            volume[name], per_slice[name] = np.nan, np.full(target.shape[0], np.nan)
            continue
        volume[name] = float(on_volume(target, recon))
        per_slice[name] = np.asarray(on_slices(target, recon), dtype=np.float64)
    for band in BANDS:
        if recon_complex is None:
            per_slice[f"psnr_{band}"] = per_slice[f"ssim_{band}"] = np.full(target.shape[0], np.nan)
            continue
        t_band = kspace_band(target_complex, band, band_fraction)
        r_band = kspace_band(recon_complex, band, band_fraction)
        per_slice[f"psnr_{band}"] = metrics.psnr_per_slice(t_band, r_band)
        per_slice[f"ssim_{band}"] = metrics.ssim_per_slice(t_band, r_band)
    return volume, per_slice


def evaluate_folder(
    recon_dirs: Sequence[Path],
    store_dir: Path,
    method: str,
    dataset: str,
    acceleration: int,
    masks_file: Optional[Path] = None,
    split: str = "test",
    band_fraction: float = 0.25,
    replicate: Optional[int] = None,
    condition: str = "nominal",
) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Score every volume of ``split`` against its reconstruction in ``recon_dirs``.

    Args:
        replicate: recorded in the rows; default the files' ``replicate`` attribute, else 0.
        condition: evaluation condition recorded in the rows (``nominal`` or a robustness one).

    Returns:
        ``(per_volume, per_slice)`` DataFrames (columns in the module docstring).

    Raises:
        DataError: a reconstruction is missing, unreadable, has the wrong shape or NaNs.
    """
    from oucr.data.store import PreparedStore

    store = PreparedStore(store_dir)
    volumes = store.volumes(split)
    if not volumes:
        raise DataError(store_dir, f"the {split} split is empty")
    accel = realised_accelerations(masks_file) if masks_file is not None else {}
    origin = provenance()
    vol_rows, slice_rows = [], []
    for volume in volumes:
        recon_path = locate_reconstruction(recon_dirs, volume)
        recon, attrs = read_reconstruction(recon_path)
        recon_complex = read_reconstruction(recon_path, complex_image=True)[0] \
            if has_complex_reconstruction(recon_path) else None
        target_complex = np.asarray(store.load(volume)["target"])
        target = np.abs(target_complex).astype(np.float32)
        if recon.shape != target.shape:
            raise DataError(recon_path, f"reconstruction shape {recon.shape} differs from the target's {target.shape}")
        if not np.isfinite(recon).all():
            raise DataError(recon_path, "reconstruction contains NaN or Inf")
        rep = int(attrs.get("replicate", 0)) if replicate is None else int(replicate)
        common = {"method": method, "dataset": dataset, "acceleration": int(acceleration), "replicate": rep,
                  "condition": condition, "volume": volume}
        tail = {"realised_acceleration": accel.get(volume, np.nan), **origin, "device": str(attrs.get("device", ""))}
        values, per_slice = score_volume(target, recon, recon_complex, target_complex, band_fraction)
        vol_rows.append({**common, "n_slices": recon.shape[0], **values, **tail})
        source = store.source_slices(volume)
        for s in range(recon.shape[0]):
            slice_rows.append({**common, "slice": s, "source_slice": int(source[s]),
                               **{k: float(v[s]) for k, v in per_slice.items()}, **tail})
    per_volume = pd.DataFrame(vol_rows)
    log.info("%s %s x%d (%s): PSNR %.2f +- %.2f dB, SSIM %.4f +- %.4f over %d volumes", method, dataset,
             acceleration, condition, per_volume["psnr"].mean(), per_volume["psnr"].std(), per_volume["ssim"].mean(),
             per_volume["ssim"].std(), len(per_volume))
    return per_volume, pd.DataFrame(slice_rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr evaluate``."""
    parser.add_argument("--recon", type=Path, nargs="+", required=True,
                        help="folder(s) of <volume>.h5 reconstructions (CS writes several chunk folders)")
    parser.add_argument("--store", type=Path, required=True, help="prepared store with the targets")
    parser.add_argument("--masks", type=Path, help="fixed masks file (for the realised acceleration)")
    parser.add_argument("--method", required=True, help="method name recorded in the rows (e.g. 'OUCR J=3')")
    parser.add_argument("--dataset", required=True, help="dataset name recorded in the rows")
    parser.add_argument("--acceleration", type=int, required=True, help="nominal acceleration recorded in the rows")
    parser.add_argument("--replicate", type=int, help="replicate index (default: the files' attribute, else 0)")
    parser.add_argument("--condition", default="nominal",
                        help="evaluation condition recorded in the rows (nominal, or a robustness perturbation)")
    parser.add_argument("--split", default="test", choices=["val", "test"], help="split to score (default test)")
    parser.add_argument("--out-volumes", type=Path, required=True, help="per-volume CSV")
    parser.add_argument("--out-slices", type=Path, required=True, help="per-slice CSV")
    parser.add_argument("--band-fraction", type=float, default=0.25,
                        help="side of the low-frequency k-space window relative to the image (Fig. 4; default 0.25)")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr evaluate``."""
    per_volume, per_slice = evaluate_folder(
        args.recon, args.store, args.method, args.dataset, args.acceleration, args.masks, args.split,
        args.band_fraction, args.replicate, args.condition,
    )
    with atomic_path(args.out_volumes) as tmp:
        per_volume.to_csv(tmp, index=False)
    with atomic_path(args.out_slices) as tmp:
        per_slice.to_csv(tmp, index=False)
    return 0
