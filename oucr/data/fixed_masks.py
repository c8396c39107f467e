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
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Dict, Sequence, Union

import h5py
import numpy as np
import pandas as pd

from oucr.errors import DataError
from oucr.io import atomic_path
from oucr.masks import column_mask, create_mask_for_mask_type, realised_acceleration, volume_seed

log = logging.getLogger(__name__)


def _manifest(store_dir: Path) -> pd.DataFrame:
    path = Path(store_dir) / "manifest.csv"
    if not path.is_file():
        raise DataError(path, "manifest of the prepared store not found; run `oucr prepare` first")
    try:
        manifest = pd.read_csv(path, dtype={"volume": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(path, f"unreadable manifest ({err})") from err
    missing = {"volume", "split", "height", "width"} - set(manifest.columns)
    if missing:
        raise DataError(path, f"manifest lacks column(s) {', '.join(sorted(missing))}")
    return manifest


def write_fixed_masks(
    store_dir: Union[str, Path],
    out_h5: Union[str, Path],
    acceleration: int,
    center_fraction: float,
    mask_type: str = "random",
    splits: Sequence[str] = ("val", "test"),
) -> pd.DataFrame:
    """Draw and write the fixed masks of every volume of ``splits``.

    Returns:
        the table also written as CSV beside ``out_h5``.
    """
    manifest = _manifest(Path(store_dir))
    rows = manifest[manifest["split"].isin(splits)].sort_values("volume")
    if rows.empty:
        raise DataError(Path(store_dir) / "manifest.csv", f"no volume in split(s) {', '.join(splits)}")
    func = create_mask_for_mask_type(mask_type, [center_fraction], [int(acceleration)])
    out_h5 = Path(out_h5)
    table = []
    with atomic_path(out_h5) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["mask_type"] = mask_type
            f.attrs["acceleration"] = int(acceleration)
            f.attrs["center_fraction"] = float(center_fraction)
            for r in rows.itertuples(index=False):
                mask, num_low = column_mask(func, int(r.width), seed=volume_seed(r.volume), num_rows=int(r.height))
                realised = realised_acceleration(mask)
                ds = f.create_dataset(r.volume, data=mask)
                ds.attrs["num_low_frequencies"] = int(num_low)
                ds.attrs["realised_acceleration"] = realised
                ds.attrs["split"] = r.split
                table.append({"volume": r.volume, "split": r.split, "acceleration": int(acceleration),
                              "center_fraction": float(center_fraction), "num_low_frequencies": int(num_low),
                              "realised_acceleration": realised})
    frame = pd.DataFrame(table)
    with atomic_path(out_h5.with_suffix(".csv")) as tmp:
        frame.to_csv(tmp, index=False)
    log.info("%d fixed masks at %dx: realised acceleration %.2f +- %.2f", len(frame), acceleration,
             frame["realised_acceleration"].mean(), frame["realised_acceleration"].std(ddof=0))
    return frame


def read_fixed_masks(path: Union[str, Path]) -> Dict[str, np.ndarray]:
    """``{volume: (W,) uint8 mask}`` of a fixed masks file.

    Raises:
        DataError: missing or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "fixed masks file does not exist; run `oucr masks` first")
    try:
        with h5py.File(path, "r") as f:
            return {name: f[name][()].astype(np.uint8) for name in f}
    except OSError as err:
        raise DataError(path, f"not a readable masks file ({err})") from err


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr masks``."""
    parser.add_argument("--store", type=Path, required=True, help="prepared store")
    parser.add_argument("--acceleration", type=int, required=True)
    parser.add_argument("--center-fraction", type=float, required=True)
    parser.add_argument("--mask-type", default="random", choices=["random", "equispaced_fraction"])
    parser.add_argument("--splits", nargs="+", default=["val", "test"], choices=["train", "val", "test"])
    parser.add_argument("--out", type=Path, required=True, help="masks file x<acc>.h5 (CSV written beside)")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr masks``."""
    write_fixed_masks(args.store, args.out, args.acceleration, args.center_fraction, args.mask_type, args.splits)
    return 0
