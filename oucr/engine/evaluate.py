"""``oucr evaluate``: NMSE, PSNR and SSIM of a folder of reconstructions.

Metrics follow fastMRI's ``evaluate.py`` (:mod:`oucr.metrics`): per volume on
magnitudes, PSNR over the volume with the volume's max as range, SSIM the mean
of per-slice SSIMs with the volume's max as range. Per-slice values are kept
for the paired tests and box plots. Each row carries the volume's realised
acceleration (from the fixed masks file) and provenance: method, dataset,
acceleration, git commit, package versions and the device that reconstructed it.

Outputs (tidy CSV):
- volumes: ``method,dataset,acceleration,volume,n_slices,nmse,psnr,ssim,realised_acceleration,git_commit,versions,device``
- slices: ``method,dataset,acceleration,volume,slice,nmse,psnr,ssim,psnr_low,ssim_low,psnr_high,ssim_high,
  realised_acceleration,git_commit,versions,device``, where ``*_low`` / ``*_high`` compare
  reconstruction and reference restricted to the low / high k-space band (paper Fig. 4,
  :mod:`oucr.analysis`; the central ``band_fraction`` of each axis is "low").
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from oucr import metrics
from oucr.analysis import BANDS, kspace_band
from oucr.data.fixed_masks import read_fixed_masks
from oucr.errors import DataError
from oucr.recon_io import locate_reconstruction, read_reconstruction
from oucr.provenance import git_commit, package_versions
from oucr.io import atomic_path

log = logging.getLogger(__name__)


def realised_accelerations(masks_file: Path) -> dict:
    """``{volume: realised acceleration}`` from a fixed masks file."""
    from oucr.masks import realised_acceleration

    return {name: realised_acceleration(mask) for name, mask in read_fixed_masks(masks_file).items()}


def evaluate_folder(
    recon_dirs: Sequence[Path],
    store_dir: Path,
    method: str,
    dataset: str,
    acceleration: int,
    masks_file: Optional[Path] = None,
    split: str = "test",
    band_fraction: float = 0.25,
) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Score every volume of ``split`` against its reconstruction in ``recon_dirs``.

    Returns:
        ``(per_volume, per_slice)`` DataFrames (columns in the module docstring).

    Raises:
        DataError: a reconstruction is missing or has the wrong shape.
    """
    from oucr.data.store import PreparedStore

    store = PreparedStore(store_dir)
    volumes = store.volumes(split)
    if not volumes:
        raise DataError(store_dir, f"the {split} split is empty")
    accel = realised_accelerations(masks_file) if masks_file is not None else {}
    provenance = {"git_commit": git_commit(), "versions": package_versions()}
    vol_rows, slice_rows = [], []
    for volume in volumes:
        recon_path = locate_reconstruction(recon_dirs, volume)
        recon, attrs = read_reconstruction(recon_path)
        target = np.abs(store.load(volume)["target"]).astype(np.float32)
        if recon.shape != target.shape:
            raise DataError(recon_path, f"reconstruction shape {recon.shape} differs from the target's {target.shape}")
        if not np.isfinite(recon).all():
            raise DataError(recon_path, "reconstruction contains NaN or Inf")
        common = {
            "method": method,
            "dataset": dataset,
            "acceleration": int(acceleration),
            "volume": volume,
        }
        tail = {
            "realised_acceleration": accel.get(volume, np.nan),
            **provenance,
            "device": str(attrs.get("device", "")),
        }
        vol_rows.append({
            **common,
            "n_slices": recon.shape[0],
            "nmse": metrics.nmse(target, recon),
            "psnr": metrics.psnr(target, recon),
            "ssim": metrics.ssim(target, recon),
            **tail,
        })
        per_slice = {
            "nmse": metrics.nmse_per_slice(target, recon),
            "psnr": metrics.psnr_per_slice(target, recon),
            "ssim": metrics.ssim_per_slice(target, recon),
        }
        for band in BANDS:
            t_band = kspace_band(target, band, band_fraction)
            r_band = kspace_band(recon, band, band_fraction)
            per_slice[f"psnr_{band}"] = metrics.psnr_per_slice(t_band, r_band)
            per_slice[f"ssim_{band}"] = metrics.ssim_per_slice(t_band, r_band)
        for s in range(recon.shape[0]):
            slice_rows.append({**common, "slice": s, **{k: float(v[s]) for k, v in per_slice.items()}, **tail})
    per_volume = pd.DataFrame(vol_rows)
    log.info("%s %s x%d: PSNR %.2f +- %.2f dB, SSIM %.4f +- %.4f over %d volumes", method, dataset, acceleration,
             per_volume["psnr"].mean(), per_volume["psnr"].std(), per_volume["ssim"].mean(),
             per_volume["ssim"].std(), len(per_volume))
    return per_volume, pd.DataFrame(slice_rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr evaluate``."""
    parser.add_argument("--recon", type=Path, nargs="+", required=True,
                        help="folder(s) of <volume>.h5 reconstructions (CS writes several chunk folders)")
    parser.add_argument("--store", type=Path, required=True, help="prepared store with the targets")
    parser.add_argument("--masks", type=Path, help="fixed masks file (for the realised acceleration)")
    parser.add_argument("--method", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--acceleration", type=int, required=True)
    parser.add_argument("--split", default="test", choices=["val", "test"])
    parser.add_argument("--out-volumes", type=Path, required=True, help="per-volume CSV")
    parser.add_argument("--out-slices", type=Path, required=True, help="per-slice CSV")
    parser.add_argument("--band-fraction", type=float, default=0.25,
                        help="side of the low-frequency k-space window relative to the image (Fig. 4)")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr evaluate``."""
    per_volume, per_slice = evaluate_folder(
        args.recon, args.store, args.method, args.dataset, args.acceleration, args.masks, args.split,
        args.band_fraction,
    )
    with atomic_path(args.out_volumes) as tmp:
        per_volume.to_csv(tmp, index=False)
    with atomic_path(args.out_slices) as tmp:
        per_slice.to_csv(tmp, index=False)
    return 0
