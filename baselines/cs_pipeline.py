"""``oucr cs-tune`` and ``oucr cs-reconstruct``: the CS baseline inside the pipeline.

``cs-tune`` chooses the regularisation weight for one dataset and acceleration
by a grid search on validation slices (a deterministic subset, with the fixed
validation masks of ``oucr masks``). Slices are normalised like the networks'
inputs (divided by the mean magnitude of the zero-filled image), so one grid
serves every intensity scale. The JSON it writes records the settings, every
grid value's mean PSNR/SSIM and the chosen weight; ``cs-reconstruct`` reads it.

``cs-reconstruct`` reconstructs test volumes with the fixed test masks and
writes the same files as the networks (:func:`oucr.engine.inference.write_reconstruction`).
``--chunk i --chunks n`` takes every n-th test volume starting at i, so that
Snakemake runs chunks in parallel with a DAG known before the data exist.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from baselines.cs import DEFAULT_REGULARISER, REGULARISERS, reconstruct_slice
from oucr.errors import ConfigError, DataError
from oucr.io import atomic_write_text

log = logging.getLogger(__name__)

DEFAULT_LAMBDAS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)


def _normalised_slice(kspace: np.ndarray, mask: np.ndarray) -> tuple:
    from oucr.physics import normalisation_factor

    masked = kspace * mask[None, :]
    norm = float(normalisation_factor(masked))
    return masked / norm, norm


def tune_lambda(
    store_dir: Path,
    masks_file: Path,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    n_slices: int = 16,
    max_iter: int = 100,
    regulariser: str = DEFAULT_REGULARISER,
) -> Dict[str, object]:
    """Grid search of the CS weight on validation slices; returns the record written as JSON."""
    from oucr.data.fixed_masks import read_fixed_masks
    from oucr.data.store import PreparedStore
    from oucr.metrics import psnr, ssim

    if regulariser not in REGULARISERS:
        raise ConfigError(f"unknown CS regulariser {regulariser!r}; known: {', '.join(REGULARISERS)}")
    if not lambdas or any(not lam > 0 for lam in lambdas):
        raise ConfigError(f"CS lambdas must be positive numbers, got {list(lambdas)}")
    store = PreparedStore(store_dir)
    masks = read_fixed_masks(masks_file)
    pairs = store.slices("val")
    if not pairs:
        raise DataError(store_dir, "the validation split is empty")
    # a deterministic, evenly spread subset of the validation slices
    picks = [pairs[int(i)] for i in np.unique(np.linspace(0, len(pairs) - 1, min(n_slices, len(pairs))).round())]
    data = []
    for volume, s in picks:
        if volume not in masks:
            raise DataError(masks_file, f"no fixed mask for validation volume {volume}")
        item = store.load_slice(volume, s)
        y, norm = _normalised_slice(item["kspace"], masks[volume].astype(np.float32))
        data.append((y, masks[volume].astype(np.float32), np.abs(item["target"]) / norm))
    grid = []
    t0 = time.perf_counter()
    for lam in lambdas:
        ps, ss = [], []
        for y, m, target in data:
            x = np.abs(reconstruct_slice(y, m, lam, max_iter=max_iter, regulariser=regulariser))
            ps.append(psnr(target[None], x[None]))
            ss.append(ssim(target[None], x[None]))
        grid.append({"lamda": float(lam), "psnr": float(np.mean(ps)), "ssim": float(np.mean(ss))})
        log.info("lambda %.2g: PSNR %.2f dB, SSIM %.4f on %d validation slices", lam, grid[-1]["psnr"],
                 grid[-1]["ssim"], len(data))
    best = max(grid, key=lambda g: g["psnr"])
    seconds = (time.perf_counter() - t0) / max(len(data) * len(lambdas), 1)
    return {"lamda": best["lamda"], "regulariser": regulariser, "max_iter": int(max_iter),
            "normalised": True, "val_slices": len(data), "grid": grid, "seconds_per_slice": seconds}


def read_lambda_file(path: Path) -> Dict[str, object]:
    """Read and check the JSON written by ``cs-tune``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "CS lambda file does not exist; run `oucr cs-tune` first")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(path, f"not valid JSON ({err})") from err
    for key in ("lamda", "regulariser", "max_iter"):
        if key not in record:
            raise DataError(path, f"missing key {key!r}")
    return record


def chunk_volumes(volumes: List[str], chunk: int, chunks: int) -> List[str]:
    """Every ``chunks``-th volume starting at ``chunk`` (sorted input)."""
    if chunks < 1 or not 0 <= chunk < chunks:
        raise ConfigError(f"need 0 <= chunk < chunks, got chunk {chunk} of {chunks}")
    return volumes[chunk::chunks]


def reconstruct_volumes(
    store_dir: Path,
    masks_file: Path,
    lambda_file: Path,
    out_dir: Path,
    dataset: str,
    acceleration: int,
    volumes: Optional[Sequence[str]] = None,
    split: str = "test",
) -> List[Path]:
    """CS reconstruction of whole volumes into ``out_dir/<volume>.h5``."""
    from oucr.data.fixed_masks import read_fixed_masks
    from oucr.data.store import PreparedStore
    from oucr.recon_io import write_reconstruction

    record = read_lambda_file(lambda_file)
    store = PreparedStore(store_dir)
    masks = read_fixed_masks(masks_file)
    available = store.volumes(split)
    chosen = list(available) if volumes is None else list(volumes)
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise DataError(store_dir, f"volume(s) not in the {split} split: {', '.join(unknown)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for volume in chosen:
        if volume not in masks:
            raise DataError(masks_file, f"no fixed mask for volume {volume}")
        t0 = time.perf_counter()
        kspace = store.load(volume)["kspace"]
        mask = masks[volume].astype(np.float32)
        recon = []
        for k in kspace:
            y, norm = _normalised_slice(k, mask)
            x = reconstruct_slice(y, mask, float(record["lamda"]), max_iter=int(record["max_iter"]),
                                  regulariser=str(record["regulariser"]))
            recon.append(np.abs(x) * norm)
        path = out_dir / f"{volume}.h5"
        write_reconstruction(path, np.stack(recon), "CS", dataset, acceleration, device="cpu:sigpy",
                             lamda=float(record["lamda"]), regulariser=str(record["regulariser"]))
        written.append(path)
        log.info("CS: wrote %s (%d slices, %.2f s per slice)", path, len(recon),
                 (time.perf_counter() - t0) / len(recon))
    return written


def add_cs_tune_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr cs-tune``."""
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--masks", type=Path, required=True, help="fixed masks file (validation masks)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--lambdas", type=float, nargs="+", default=list(DEFAULT_LAMBDAS))
    parser.add_argument("--slices", type=int, default=16, help="validation slices in the search")
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--regulariser", default=DEFAULT_REGULARISER, choices=REGULARISERS)


def run_cs_tune(args: argparse.Namespace) -> int:
    """Entry of ``oucr cs-tune``."""
    if args.slices < 1 or args.max_iter < 1:
        raise ConfigError("--slices and --max-iter must be positive")
    record = tune_lambda(args.store, args.masks, args.lambdas, args.slices, args.max_iter, args.regulariser)
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")
    log.info("chose lambda %.2g (%s)", record["lamda"], args.out)
    return 0


def add_cs_reconstruct_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr cs-reconstruct``."""
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--masks", type=Path, required=True, help="fixed masks file (test masks)")
    parser.add_argument("--lambda-file", type=Path, required=True, help="JSON of `oucr cs-tune`")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--acceleration", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--volumes", nargs="+", help="only these volumes")
    parser.add_argument("--chunk", type=int, default=0, help="this job's chunk (with --chunks)")
    parser.add_argument("--chunks", type=int, default=1, help="number of chunks the test volumes are split into")


def run_cs_reconstruct(args: argparse.Namespace) -> int:
    """Entry of ``oucr cs-reconstruct``."""
    from oucr.data.store import PreparedStore

    volumes = args.volumes
    if volumes is None:
        volumes = chunk_volumes(PreparedStore(args.store).volumes("test"), args.chunk, args.chunks)
    reconstruct_volumes(args.store, args.masks, args.lambda_file, args.out, args.dataset, args.acceleration, volumes)
    return 0
