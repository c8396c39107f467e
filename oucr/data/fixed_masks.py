"""``oucr masks``: the fixed validation/test masks of a prepared store.

Every method (networks, CS, zero-filled) is evaluated on the same masks: one
column mask per validation/test volume, drawn with fastMRI's per-volume seed
(:func:`oucr.masks.volume_seed`), shared by all slices of the volume as in
fastMRI. The file layout (docs/ARCHITECTURE.md):

- ``x<acc>.h5``: one uint8 ``(W,)`` dataset per volume, attributes
  ``num_low_frequencies``, ``realised_acceleration``, ``split``; file attributes
  ``mask_type``, ``acceleration``, ``center_fraction``;
- ``x<acc>.csv`` beside it: ``volume,split,acceleration,center_fraction,
  num_low_frequencies,realised_acceleration``.

The mask of a volume depends only on its k-space width (the manifest's ``width``,
the prepared recon-size width: 320 for fastMRI knee, not the raw 368) and its
name, so it is what fastMRI's mask function returns for that file name and width.
Both files are written under temporary names and renamed together at the end,
so a failed run leaves neither.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Union

import h5py
import numpy as np
import pandas as pd

from oucr.data.store import read_manifest
from oucr.errors import ConfigError, DataError
from oucr.io import atomic_path, open_hdf5
from oucr.masks import MASK_TYPES, column_mask, create_mask_for_mask_type, realised_acceleration, volume_seed

log = logging.getLogger(__name__)

CSV_COLUMNS = ("volume", "split", "acceleration", "center_fraction", "num_low_frequencies", "realised_acceleration")
MANIFEST_COLUMNS = ("volume", "split", "width")  # the only manifest columns a mask needs


def read_manifest_for_masks(store_dir: Union[str, Path]) -> pd.DataFrame:
    """The manifest of a store, needing only ``volume``, ``split`` and ``width``.

    Raises:
        DataError: see :func:`oucr.data.store.read_manifest`.
    """
    return read_manifest(store_dir, required=MANIFEST_COLUMNS)


def write_fixed_masks(
    store_dir: Union[str, Path],
    out_h5: Union[str, Path],
    acceleration: int,
    center_fraction: float,
    mask_type: str = "random",
    splits: Sequence[str] = ("val", "test"),
) -> pd.DataFrame:
    """Draw and write the fixed mask of every volume of ``splits``.

    Args:
        store_dir: prepared store (only its ``manifest.csv`` is read).
        out_h5: the masks file ``.../x<acc>.h5``; the CSV is written beside it (same stem).
        acceleration: nominal acceleration.
        center_fraction: fraction of fully sampled centre columns.
        mask_type: ``random`` or ``equispaced_fraction``.
        splits: the splits whose volumes get a mask.

    Returns:
        the table written as CSV, one row per volume sorted by volume.

    Raises:
        DataError: bad manifest, or no volume in ``splits``.
        ConfigError: unknown mask type, out-of-range acceleration or centre fraction,
            or an output name not ending in ``.h5``.
    """
    out_h5 = Path(out_h5)
    if out_h5.suffix != ".h5":
        raise ConfigError(f"the masks file must end in .h5 (its CSV goes beside it), got {out_h5}")
    if mask_type not in MASK_TYPES:
        raise ConfigError(f"unknown mask type {mask_type!r}; known: {', '.join(MASK_TYPES)}")
    if not acceleration > 1:
        raise ConfigError(f"acceleration must be greater than 1, got {acceleration}")
    if not 0 < center_fraction < 1 / acceleration:
        raise ConfigError(f"center fraction must lie in (0, 1/acceleration), got {center_fraction} at {acceleration}x")
    manifest = read_manifest_for_masks(store_dir)
    rows = manifest[manifest["split"].isin(list(splits))].sort_values("volume")
    if rows.empty:
        raise DataError(Path(store_dir) / "manifest.csv", f"no volume in split(s) {', '.join(splits)}")
    func = create_mask_for_mask_type(mask_type, [center_fraction], [int(acceleration)])
    table = []
    with atomic_path(out_h5) as tmp_h5, atomic_path(out_h5.with_suffix(".csv")) as tmp_csv:
        with h5py.File(tmp_h5, "w") as f:
            f.attrs["mask_type"] = mask_type
            f.attrs["acceleration"] = int(acceleration)
            f.attrs["center_fraction"] = float(center_fraction)
            for r in rows.itertuples(index=False):
                mask, num_low = column_mask(func, int(r.width), seed=volume_seed(r.volume))
                realised = realised_acceleration(mask)
                ds = f.create_dataset(r.volume, data=mask)
                ds.attrs["num_low_frequencies"] = int(num_low)
                ds.attrs["realised_acceleration"] = realised
                ds.attrs["split"] = r.split
                table.append((r.volume, r.split, int(acceleration), float(center_fraction), int(num_low), realised))
        frame = pd.DataFrame(table, columns=list(CSV_COLUMNS))
        frame.to_csv(tmp_csv, index=False)
    log.info("%s: %d fixed masks at %dx, realised acceleration %.2f +- %.2f", out_h5, len(frame), acceleration,
             frame["realised_acceleration"].mean(), frame["realised_acceleration"].std(ddof=0))
    return frame


def read_fixed_masks(path: Union[str, Path], volumes: Optional[Iterable[str]] = None) -> Dict[str, np.ndarray]:
    """``{volume: (W,) uint8 mask}`` of a fixed masks file.

    Args:
        path: the ``x<acc>.h5`` file of :func:`write_fixed_masks`.
        volumes: if given, these volumes must all be in the file.

    Raises:
        DataError: missing or unreadable file, a mask that is not 1-D, or a requested
            volume without a mask.
    """
    path = Path(path)
    with open_hdf5(path, "masks file", "; run `oucr masks` first") as f:
        for name in f:
            if not isinstance(f[name], h5py.Dataset):
                raise DataError(path, f"{name} is not a mask dataset; not a masks file of `oucr masks`")
        masks = {name: f[name][()] for name in f}
    for name, mask in masks.items():
        if mask.ndim != 1:
            raise DataError(path, f"the mask of {name} has shape {mask.shape}; expected (W,)")
    if volumes is not None:
        missing = sorted(set(volumes) - set(masks))
        if missing:
            raise DataError(path, f"no fixed mask for volume(s) {', '.join(missing[:5])}"
                            + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    return {name: mask.astype(np.uint8) for name, mask in masks.items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr masks``."""
    parser.add_argument("--store", type=Path, required=True, help="prepared store (its manifest.csv is read)")
    parser.add_argument("--acceleration", type=int, required=True, help="nominal acceleration, e.g. 4")
    parser.add_argument("--center-fraction", type=float, required=True, help="fully sampled centre, e.g. 0.08")
    parser.add_argument("--mask-type", default="random", choices=sorted(MASK_TYPES),
                        help="fastMRI mask function: random (the paper) or equispaced_fraction (default random)")
    parser.add_argument("--splits", nargs="+", default=["val", "test"], choices=["train", "val", "test"],
                        help="splits whose volumes get a mask (default: val test)")
    parser.add_argument("--out", type=Path, required=True,
                        help="masks file, e.g. results/masks/<dataset>/x4.h5 (the CSV is written beside it)")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr masks``."""
    write_fixed_masks(args.store, args.out, args.acceleration, args.center_fraction, args.mask_type, args.splits)
    return 0
