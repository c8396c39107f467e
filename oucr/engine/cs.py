"""``oucr cs-tune`` and ``oucr cs-reconstruct``: the CS baseline inside the pipeline.

The solver is :mod:`baselines.cs` (it knows no store and no files); this module
reads the prepared store and the fixed masks, and writes the reconstruction files.

``cs-tune`` chooses the regularisation weight for one dataset and acceleration
by a grid search on validation slices (a deterministic, evenly spread subset),
with the fixed validation masks of ``oucr masks``. Slices are normalised like the
networks' inputs (divided by the mean magnitude of the zero-filled image,
:func:`oucr.physics.normalisation_factor`), so one grid serves every intensity
scale. The JSON it writes (atomically) records the settings, every grid value's
mean PSNR/SSIM and the chosen weight; ``cs-reconstruct`` reads it.

``cs-reconstruct`` reconstructs test volumes with the fixed test masks and
writes the same files as the networks (docs/ARCHITECTURE.md "Reconstruction
files", via :func:`oucr.recon_io.write_reconstruction`): one HDF5 per
volume, ``reconstruction`` float32 magnitude ``(S, H, W)`` at the original scale,
attributes ``method='CS'``, ``dataset``, ``acceleration``. The work is split for
Snakemake either by naming volumes (``--volumes``) or by ``--chunk i --chunks n``
(every n-th test volume from the i-th), so parallel jobs are known before the
data exist.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from baselines.cs import DEFAULT_MAX_ITER, DEFAULT_REGULARISER, REGULARISERS, reconstruct_slice
from oucr.errors import ConfigError, DataError
from oucr.io import atomic_write_text, decoded_attrs, open_hdf5

log = logging.getLogger(__name__)

DEFAULT_LAMBDAS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
DEFAULT_TUNE_SLICES = 16
LAMBDA_FILE_KEYS = ("lamda", "regulariser", "max_iter")


# ------------------------------------------------------------------------------------------
# Shared helpers
# ------------------------------------------------------------------------------------------
def normalised_slice(kspace: np.ndarray, mask: np.ndarray, noise: Optional[Tuple[float, object]] = None
                     ) -> Tuple[np.ndarray, float]:
    """The slice's normalised measurement (:func:`oucr.physics.normalised_measurement`) as complex64.

    Args:
        kspace: fully sampled complex ``(H, W)``.
        mask: ``(W,)`` column mask.
        noise: ``(snr_db, seed)`` of the measurement noise, or None.

    Returns:
        ``(masked normalised k-space complex64 (H, W), norm)``.
    """
    from oucr.physics import normalised_measurement

    measured, norm = normalised_measurement(kspace, mask[None, :], noise)
    return measured.astype(np.complex64), norm


def _masks_info(masks_file: Path) -> Dict[str, object]:
    """File attributes of a fixed masks file (``acceleration``, ``center_fraction``, ``mask_type``)."""
    with open_hdf5(masks_file, "masks file", "; run `oucr masks` first") as f:
        return decoded_attrs(f)


def _volume_mask(masks: Dict[str, np.ndarray], masks_file: Path, volume: str, width: int) -> np.ndarray:
    if volume not in masks:
        raise DataError(masks_file, f"no fixed mask for volume {volume}; rebuild the masks file with `oucr masks`")
    mask = masks[volume].astype(np.float32).reshape(-1)
    if mask.shape[0] != width:
        raise DataError(masks_file, f"mask of volume {volume} has {mask.shape[0]} columns but its k-space has {width}")
    return mask


def evenly_spaced(items: Sequence, count: int) -> list:
    """``count`` items spread evenly over ``items`` (all of them if fewer), deterministic."""
    if count >= len(items):
        return list(items)
    picks = np.unique(np.linspace(0, len(items) - 1, count).round().astype(int))
    return [items[i] for i in picks]


# ------------------------------------------------------------------------------------------
# Tuning
# ------------------------------------------------------------------------------------------
def grid_search(
    data: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray]],
    lambdas: Sequence[float],
    max_iter: int = DEFAULT_MAX_ITER,
    regulariser: str = DEFAULT_REGULARISER,
) -> List[Dict[str, float]]:
    """Mean PSNR/SSIM of every weight over the given slices.

    Args:
        data: ``(masked_kspace (H, W), mask (W,), target magnitude (H, W))`` triples.
        lambdas: weights to try.
        max_iter, regulariser: passed to :func:`baselines.cs.reconstruct_slice`.

    Returns:
        one ``{"lamda", "psnr", "ssim", "seconds_per_slice"}`` per weight, in grid order.
    """
    from oucr.metrics import psnr, ssim

    grid = []
    for lam in lambdas:
        scores, t0 = [], time.perf_counter()
        for y, mask, target in data:
            x = np.abs(reconstruct_slice(y, mask, lam, max_iter=max_iter, regulariser=regulariser))
            gt = target[None].astype(np.float32)
            scores.append((psnr(gt, x[None].astype(np.float32)), ssim(gt, x[None].astype(np.float32))))
        mean = np.mean(scores, axis=0)
        grid.append({"lamda": float(lam), "psnr": float(mean[0]), "ssim": float(mean[1]),
                     "seconds_per_slice": (time.perf_counter() - t0) / len(data)})
        log.info("lambda %.3g: PSNR %.2f dB, SSIM %.4f on %d validation slices", lam, mean[0], mean[1], len(data))
    return grid


def tune_lambda(
    store_dir: Path,
    masks_file: Path,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    n_slices: int = DEFAULT_TUNE_SLICES,
    max_iter: int = DEFAULT_MAX_ITER,
    regulariser: str = DEFAULT_REGULARISER,
) -> Dict[str, object]:
    """Grid search of the CS weight on validation slices; returns the record written as JSON.

    Raises:
        ConfigError: bad grid or settings.
        DataError: empty validation split, missing or mismatched masks.
    """
    from oucr.data.fixed_masks import read_fixed_masks
    from oucr.data.store import PreparedStore

    if regulariser not in REGULARISERS:
        raise ConfigError(f"unknown CS regulariser {regulariser!r}; known: {', '.join(REGULARISERS)}")
    if not lambdas or any(not (np.isfinite(lam) and lam > 0) for lam in lambdas):
        raise ConfigError(f"CS lambdas must be positive numbers, got {list(lambdas)}")
    if n_slices < 1 or max_iter < 1:
        raise ConfigError(f"the number of slices and max_iter must be positive, got {n_slices} and {max_iter}")
    store = PreparedStore(store_dir)
    masks = read_fixed_masks(masks_file)
    pairs = store.slices("val")
    if not pairs:
        raise DataError(Path(store_dir), "the validation split is empty; CS tuning needs validation volumes")
    picks = evenly_spaced(pairs, n_slices)
    data = []
    for volume, s in picks:
        item = store.load_slice(volume, s)
        kspace = np.asarray(item["kspace"])
        mask = _volume_mask(masks, Path(masks_file), volume, kspace.shape[-1])
        y, norm = normalised_slice(kspace, mask)
        data.append((y, mask, np.abs(item["target"]) / norm))
    log.info("tuning CS (%s) on %d validation slices over lambdas %s", regulariser, len(data), list(lambdas))
    grid = grid_search(data, lambdas, max_iter, regulariser)
    best = max(grid, key=lambda g: g["psnr"])
    if best["lamda"] in (min(lambdas), max(lambdas)) and len(lambdas) > 1:
        log.warning("the chosen lambda %.3g is at the edge of the grid; consider widening it", best["lamda"])
    info = _masks_info(Path(masks_file))
    return {
        "lamda": best["lamda"],
        "regulariser": regulariser,
        "max_iter": int(max_iter),
        "normalised": True,
        "dataset": Path(masks_file).parent.name,
        "acceleration": int(info["acceleration"]) if "acceleration" in info else None,
        "val_slices": [[v, int(s)] for v, s in picks],
        "grid": grid,
    }


def read_lambda_file(path: Path) -> Dict[str, object]:
    """Read and check the JSON written by ``cs-tune``.

    Raises:
        DataError: missing file, invalid JSON, missing keys or bad values.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "CS lambda file does not exist; run `oucr cs-tune` first")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(path, f"not valid JSON ({err})") from err
    if not isinstance(record, dict):
        raise DataError(path, "expected a JSON object")
    missing = [k for k in LAMBDA_FILE_KEYS if k not in record]
    if missing:
        raise DataError(path, f"missing key(s) {', '.join(missing)}")
    if not isinstance(record["lamda"], (int, float)) or not record["lamda"] > 0:
        raise DataError(path, f"lamda must be a positive number, got {record['lamda']!r}")
    if record["regulariser"] not in REGULARISERS:
        raise DataError(path, f"unknown regulariser {record['regulariser']!r}")
    return record


# ------------------------------------------------------------------------------------------
# Reconstruction
# ------------------------------------------------------------------------------------------
def chunk_volumes(volumes: List[str], chunk: int, chunks: int) -> List[str]:
    """Every ``chunks``-th volume starting at ``chunk`` (sorted input)."""
    if chunks < 1 or not 0 <= chunk < chunks:
        raise ConfigError(f"need 0 <= chunk < chunks, got chunk {chunk} of {chunks}")
    return volumes[chunk::chunks]


def reconstruct_volume(kspace: np.ndarray, mask: np.ndarray, record: Dict[str, object], volume: str = "",
                      noise_snr_db: Optional[float] = None) -> np.ndarray:
    """CS reconstruction of a volume's slices; complex64 ``(S, H, W)`` at the original scale."""
    from oucr.physics import noise_seed

    out = np.empty(kspace.shape, dtype=np.complex64)
    for s, k in enumerate(kspace):
        t0 = time.perf_counter()
        noise = None if noise_snr_db is None else (noise_snr_db, noise_seed(volume, s))
        y, norm = normalised_slice(k, mask, noise)
        x = reconstruct_slice(y, mask, float(record["lamda"]), max_iter=int(record["max_iter"]),
                              regulariser=str(record["regulariser"]))
        out[s] = x * norm
        log.info("CS %s: slice %d/%d in %.2f s", volume, s + 1, len(kspace), time.perf_counter() - t0)
    return out


def reconstruct_volumes(
    store_dir: Path,
    masks_file: Path,
    lambda_file: Path,
    out_dir: Path,
    dataset: Optional[str] = None,
    acceleration: Optional[int] = None,
    volumes: Optional[Sequence[str]] = None,
    split: str = "test",
    noise_snr_db: Optional[float] = None,
    force: bool = False,
) -> List[Path]:
    """CS reconstruction of whole volumes into ``out_dir/<volume>.h5``.

    Args:
        store_dir: prepared store.
        masks_file: fixed masks ``<masks>/<dataset>/x<acc>.h5``.
        lambda_file: JSON of ``cs-tune``.
        out_dir: output folder (created).
        dataset: attribute written; default the masks file's folder name.
        acceleration: attribute written; default the masks file's ``acceleration``.
        volumes: volumes to reconstruct (default every volume of ``split``).
        split: the split the volumes must belong to.
        noise_snr_db: perturb the measurement with noise at this SNR (dB), as for the networks.
        force: allow a weight tuned at another acceleration (the robustness table).

    Returns:
        the written paths.

    Raises:
        DataError: missing/invalid inputs, unknown volumes, missing masks.
        ConfigError: the lambda file was tuned for another acceleration.
    """
    from oucr.data.fixed_masks import read_fixed_masks
    from oucr.data.store import PreparedStore
    from oucr.recon_io import write_reconstruction

    lambda_file, masks_file = Path(lambda_file), Path(masks_file)
    record = read_lambda_file(lambda_file)
    store = PreparedStore(store_dir)
    masks = read_fixed_masks(masks_file)
    info = _masks_info(masks_file)
    dataset = dataset or str(record.get("dataset") or masks_file.parent.name)
    if acceleration is None:
        if "acceleration" not in info:
            raise DataError(masks_file, "no 'acceleration' attribute; pass --acceleration")
        acceleration = int(info["acceleration"])
    tuned = record.get("acceleration")
    if tuned is not None and int(tuned) != int(acceleration) and not force:
        raise ConfigError(f"{lambda_file} was tuned at {tuned}x but the reconstruction is at {acceleration}x; "
                          "pass --force to use it anyway")
    available = store.volumes(split)
    chosen = list(available) if volumes is None else list(volumes)
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise DataError(Path(store_dir), f"volume(s) not in the {split} split: {', '.join(unknown)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    log.info("CS (%s, lambda %.3g): %d volume(s) of %s at %dx -> %s", record["regulariser"], record["lamda"],
             len(chosen), dataset, acceleration, out_dir)
    for n, volume in enumerate(chosen, 1):
        t0 = time.perf_counter()
        kspace = np.asarray(store.load(volume)["kspace"])
        mask = _volume_mask(masks, masks_file, volume, kspace.shape[-1])
        recon = reconstruct_volume(kspace, mask, record, volume, noise_snr_db)
        path = out_dir / f"{volume}.h5"
        write_reconstruction(path, recon, "CS", dataset, int(acceleration), slices=store.source_slices(volume),
                             device="cpu:sigpy", lamda=float(record["lamda"]), regulariser=str(record["regulariser"]),
                             max_iter=int(record["max_iter"]), replicate=0,
                             noise_snr_db=float("nan") if noise_snr_db is None else float(noise_snr_db))
        written.append(path)
        log.info("CS: volume %d/%d %s written to %s (%d slices, %.2f s per slice)", n, len(chosen), volume, path,
                 len(recon), (time.perf_counter() - t0) / len(recon))
    return written


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------
def add_cs_tune_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr cs-tune``."""
    parser.add_argument("--store", type=Path, required=True, help="prepared store")
    parser.add_argument("--masks", type=Path, required=True, help="fixed masks file <masks>/<dataset>/x<acc>.h5")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--lambdas", type=float, nargs="+", default=list(DEFAULT_LAMBDAS),
                        help="weights to try (on normalised data)")
    parser.add_argument("--slices", type=int, default=DEFAULT_TUNE_SLICES, help="validation slices in the search")
    parser.add_argument("--max-iter", type=int, default=DEFAULT_MAX_ITER,
                        help=f"iterations of the solver per slice (default {DEFAULT_MAX_ITER})")
    parser.add_argument("--regulariser", default=DEFAULT_REGULARISER, choices=REGULARISERS,
                        help=f"tv (total variation, ADMM) or wavelet (l1 of Daubechies details, FISTA); "
                             f"default {DEFAULT_REGULARISER}")


def run_cs_tune(args: argparse.Namespace) -> int:
    """Entry of ``oucr cs-tune``."""
    record = tune_lambda(args.store, args.masks, args.lambdas, args.slices, args.max_iter, args.regulariser)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")
    log.info("chose lambda %.3g (%s), written to %s", record["lamda"], record["regulariser"], args.out)
    return 0


def add_cs_reconstruct_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr cs-reconstruct``."""
    parser.add_argument("--store", type=Path, required=True, help="prepared store")
    parser.add_argument("--masks", type=Path, required=True, help="fixed masks file <masks>/<dataset>/x<acc>.h5")
    parser.add_argument("--lambda-file", type=Path, required=True, help="JSON of `oucr cs-tune`")
    parser.add_argument("--out", type=Path, required=True, help="output folder (one <volume>.h5 per volume)")
    parser.add_argument("--volumes", nargs="+", help="only these test volumes (one Snakemake job per volume)")
    parser.add_argument("--chunk", type=int, default=0, help="this job's chunk of the test volumes (with --chunks)")
    parser.add_argument("--chunks", type=int, default=1, help="number of chunks the test volumes are split into")
    parser.add_argument("--dataset", help="dataset attribute (default: the masks file's folder name)")
    parser.add_argument("--acceleration", type=int, help="acceleration attribute (default: the masks file's)")
    parser.add_argument("--noise-snr", type=float, metavar="DB",
                        help="add complex Gaussian noise at this SNR (dB) to the measured k-space")
    parser.add_argument("--force", action="store_true", help="allow a weight tuned at another acceleration")


def run_cs_reconstruct(args: argparse.Namespace) -> int:
    """Entry of ``oucr cs-reconstruct``."""
    from oucr.data.store import PreparedStore

    volumes = args.volumes
    if volumes is None:
        volumes = chunk_volumes(PreparedStore(args.store).volumes("test"), args.chunk, args.chunks)
    elif args.chunks != 1:
        raise ConfigError("give either --volumes or --chunk/--chunks, not both")
    reconstruct_volumes(args.store, args.masks, args.lambda_file, args.out, args.dataset, args.acceleration, volumes,
                        noise_snr_db=args.noise_snr, force=args.force)
    return 0
