"""``oucr reconstruct``: reconstruct the test volumes of a prepared store.

With ``--model`` the trained network of ``oucr train`` is used; with
``--zero-filled`` the zero-filled reference is written instead. Either way the
fixed test masks of ``oucr masks`` are applied and one HDF5 per volume is
written (:mod:`oucr.recon_io`: magnitude, complex image, source slice indices).
CS writes the same files through ``oucr cs-reconstruct``.

A network reconstructs in the precision it was trained and validated in (the
``amp`` recorded in ``model.pt``) unless ``--amp`` says otherwise, and only on the
dataset and acceleration it was trained for unless ``--force`` is given (a model
trained at 4x evaluated on 8x masks, as the robustness table does on purpose).
``--noise-snr`` adds complex Gaussian noise to the measured k-space
(:func:`oucr.physics.measurement_noise`), the same draw for every method.

Beside the files, ``timing.json`` records the slices, the seconds and the device
of the run (the inference cost of Table 1).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import List, Optional

from oucr.engine.inference import predict_volumes, zero_filled_method
from oucr.engine.runtime import device_description, select_device, set_threads
from oucr.errors import ConfigError, DataError
from oucr.io import atomic_write_text
from oucr.names import ZERO_FILLED
from oucr.recon_io import write_reconstruction

log = logging.getLogger(__name__)

TIMING_FILE = "timing.json"


def check_model_matches(meta: dict, model_file: Path, dataset: str, acceleration: int, force: bool) -> None:
    """Refuse a model trained for another dataset or acceleration, unless ``force``.

    Raises:
        ConfigError: naming the model file, what it was trained for and what was asked.
    """
    trained = (meta.get("dataset"), meta.get("acceleration"))
    if trained[0] is None or trained[1] is None:
        return
    if (trained[0], int(trained[1])) != (dataset, int(acceleration)):
        message = (f"{model_file} was trained on {trained[0]} at {trained[1]}x, but {dataset} at {acceleration}x "
                   "was asked for")
        if not force:
            raise ConfigError(message + "; pass --force to reconstruct anyway")
        log.warning("%s (--force)", message)


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
    amp: Optional[str] = None,
    volumes: Optional[List[str]] = None,
    force: bool = False,
    noise_snr_db: Optional[float] = None,
) -> List[Path]:
    """Reconstruct every volume of ``split`` and write one file per volume.

    Args:
        store_dir: the prepared store.
        masks_file: fixed masks (``oucr masks``).
        out_dir: folder receiving ``<volume>.h5`` and ``timing.json``.
        dataset, acceleration: what is reconstructed (recorded in the files, checked against the model).
        model_file: ``model.pt`` of ``oucr train``; None for the zero-filled reference.
        split: which split to reconstruct.
        device, batch_size: inference settings.
        amp: ``none`` or ``bf16``; default the model's training precision.
        volumes: only these volumes (default all of the split).
        force: allow a model trained for another dataset or acceleration.
        noise_snr_db: perturb the measurement with noise at this SNR (dB).

    Returns:
        the files written.
    """
    from oucr.data.dataset import SliceDataset
    from oucr.data.store import PreparedStore
    from oucr.engine.checkpoint import load_trained_model

    if not Path(masks_file).is_file():
        raise DataError(masks_file, "fixed masks file does not exist; run `oucr masks` first")
    dev = select_device(device)
    store = PreparedStore(store_dir)
    extra = {}
    if model_file is not None:
        method_fn, meta = load_trained_model(Path(model_file), dev)
        check_model_matches(meta, Path(model_file), dataset, acceleration, force)
        method = meta["method"]
        amp = amp or str((meta.get("training") or {}).get("amp", "none"))
        extra = {"replicate": int(meta.get("replicate", 0)), "model_file": str(model_file)}
    else:
        method_fn, method, amp = zero_filled_method, ZERO_FILLED, "none"
    data = SliceDataset(store, split, None, masks_file=masks_file, noise_snr_db=noise_snr_db)
    if len(data) == 0:
        raise DataError(store_dir, f"the {split} split is empty")
    written: List[Path] = []
    t0 = time.perf_counter()
    n_slices = 0
    for volume, recon, _ in predict_volumes(method_fn, data, dev, batch_size, amp, volumes):
        path = Path(out_dir) / f"{volume}.h5"
        write_reconstruction(path, recon, method, dataset, acceleration, slices=store.source_slices(volume),
                             device=device_description(dev), amp=amp,
                             noise_snr_db=float("nan") if noise_snr_db is None else float(noise_snr_db), **extra)
        written.append(path)
        n_slices += recon.shape[0]
        log.info("%s: wrote %s (%d slices)", method, path, recon.shape[0])
    elapsed = time.perf_counter() - t0
    if volumes is not None and len(written) != len(set(volumes)):
        missing = sorted(set(volumes) - {p.stem for p in written})
        raise DataError(store_dir, f"volumes not found in the {split} split: {', '.join(missing)}")
    timing = {"method": method, "slices": n_slices, "seconds": elapsed,
              "seconds_per_slice": elapsed / max(n_slices, 1), "device": device_description(dev),
              "batch_size": batch_size, "amp": amp}
    atomic_write_text(Path(out_dir) / TIMING_FILE, json.dumps(timing, indent=1) + "\n")
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
    parser.add_argument("--dataset", required=True, help="dataset name (recorded in the files, checked against the model)")
    parser.add_argument("--acceleration", type=int, required=True, help="nominal acceleration of the masks")
    parser.add_argument("--out", type=Path, required=True, help="output folder (one <volume>.h5 per volume)")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"], help="split to reconstruct")
    parser.add_argument("--volumes", nargs="+", help="only these volumes (default: the whole split)")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    parser.add_argument("--batch-size", type=int, default=4, help="slices per forward pass (default 4)")
    parser.add_argument("--amp", choices=["none", "bf16"],
                        help="precision (default: the one the model was trained and validated in)")
    parser.add_argument("--force", action="store_true",
                        help="allow a model trained for another dataset or acceleration")
    parser.add_argument("--noise-snr", type=float, metavar="DB",
                        help="add complex Gaussian noise at this SNR (dB) to the measured k-space")
    parser.add_argument("--gpus", type=int, choices=[0, 1],
                        help="GPUs the scheduler granted this job: 1 claims one exclusively, 0 runs on the CPU "
                             "(default: one when CUDA is present)")
    parser.add_argument("--threads", type=int, help="CPU threads to use")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr reconstruct``."""
    from oucr.engine.gpu_slots import claim_gpus
    from oucr.engine.runtime import device_for_grant, gpus_wanted

    if args.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    set_threads(args.threads)
    device = device_for_grant(args.device, args.gpus) if args.model is not None else "cpu"
    with claim_gpus(gpus_wanted(device, 1, args.gpus) if args.model is not None else 0):
        reconstruct_store(
            args.store, args.masks, args.out, args.dataset, args.acceleration,
            model_file=args.model, split=args.split, device=device,
            batch_size=args.batch_size, amp=args.amp, volumes=args.volumes, force=args.force,
            noise_snr_db=args.noise_snr,
        )
    return 0
