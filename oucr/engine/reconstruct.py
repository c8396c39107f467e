"""``oucr reconstruct``: reconstruct the test volumes of a prepared store.

With ``--model`` the trained network of ``oucr train`` is used; with
``--zero-filled`` the zero-filled reference is written instead. Either way the
fixed test masks of ``oucr masks`` are applied and one HDF5 per volume is
written in the fastMRI submission layout (see
:func:`oucr.engine.inference.write_reconstruction`). CS writes the same files
through ``oucr cs-reconstruct``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import List, Optional


from oucr.errors import ConfigError, DataError
from oucr.engine.inference import predict_volumes, zero_filled_method
from oucr.recon_io import write_reconstruction
from oucr.engine.runtime import device_description, select_device, set_threads

log = logging.getLogger(__name__)


def reconstruct_store(
    store_dir: Path,
    masks_file: Path,
    out_dir: Path,
    dataset: str,
    acceleration: int,
    model_file: Optional[Path] = None,
    split: str = "test",
    device: str = "auto",
    batch_size: int = 4,
    amp: str = "none",
    volumes: Optional[List[str]] = None,
) -> List[Path]:
    """Reconstruct every volume of ``split`` and write one file per volume.

    Args:
        store_dir: the prepared store.
        masks_file: fixed masks (``oucr masks``) for this acceleration.
        out_dir: folder receiving ``<volume>.h5``.
        dataset, acceleration: recorded in the files.
        model_file: ``model.pt`` of ``oucr train``; None for the zero-filled reference.
        split: which split to reconstruct.
        device, batch_size, amp: inference settings.
        volumes: only these volumes (default all of the split).

    Returns:
        the files written.
    """
    from oucr.data.dataset import SliceDataset
    from oucr.data.store import PreparedStore
    from oucr.engine.train import load_trained_model
    from oucr.masks import create_mask_for_mask_type

    if not Path(masks_file).is_file():
        raise DataError(masks_file, "fixed masks file does not exist; run `oucr masks` first")
    dev = select_device(device)
    store = PreparedStore(store_dir)
    if model_file is not None:
        method_fn, meta = load_trained_model(Path(model_file), dev)
        method = meta["method"]
        if meta.get("dataset") not in (None, dataset) or int(meta.get("acceleration", acceleration)) != int(acceleration):
            log.warning("%s was trained on %s x%s, reconstructing %s x%s",
                        model_file, meta.get("dataset"), meta.get("acceleration"), dataset, acceleration)
    else:
        method_fn, method = zero_filled_method, "Zero-filled"
    # The mask function is only a fallback: test masks come from the masks file.
    mask_func = create_mask_for_mask_type("random", [0.08], [int(acceleration)])
    data = SliceDataset(store, split, mask_func, masks_file=masks_file)
    if len(data) == 0:
        raise DataError(store_dir, f"the {split} split is empty")
    written: List[Path] = []
    t0 = time.perf_counter()
    n_slices = 0
    for volume, recon, _ in predict_volumes(method_fn, data, dev, batch_size, amp, volumes):
        path = Path(out_dir) / f"{volume}.h5"
        write_reconstruction(path, recon, method, dataset, acceleration, device=device_description(dev))
        written.append(path)
        n_slices += recon.shape[0]
        log.info("%s: wrote %s (%d slices)", method, path, recon.shape[0])
    elapsed = time.perf_counter() - t0
    if volumes is not None and len(written) != len(set(volumes)):
        missing = sorted(set(volumes) - {p.stem for p in written})
        raise DataError(store_dir, f"volumes not found in the {split} split: {', '.join(missing)}")
    log.info("%s: %d volumes, %d slices in %.1f s (%.3f s per slice)", method, len(written), n_slices,
             elapsed, elapsed / max(n_slices, 1))
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr reconstruct``."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", type=Path, help="model.pt written by `oucr train`")
    src.add_argument("--zero-filled", action="store_true", help="write the zero-filled reference instead")
    parser.add_argument("--store", type=Path, required=True, help="prepared store")
    parser.add_argument("--masks", type=Path, required=True, help="fixed masks file of this acceleration")
    parser.add_argument("--dataset", required=True, help="dataset name (recorded in the files)")
    parser.add_argument("--acceleration", type=int, required=True, help="nominal acceleration")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--volumes", nargs="+", help="only these volumes")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--amp", default="none", choices=["none", "bf16"])
    parser.add_argument("--threads", type=int, help="CPU threads to use")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr reconstruct``."""
    if args.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    set_threads(args.threads)
    reconstruct_store(
        args.store, args.masks, args.out, args.dataset, args.acceleration,
        model_file=args.model, split=args.split, device=args.device,
        batch_size=args.batch_size, amp=args.amp, volumes=args.volumes,
    )
    return 0
