"""Benchmark: CS seconds per slice (320 x 320 and the demo's 64 x 64) and CS vs zero-filled on the demo data.

1. Speed: the default CS (and the wavelet variant) on an axial MNI152 T1 slice
   resampled to each size, 4x random mask, normalised k-space, fixed weight;
   median of ``--repeats`` runs, single thread, ``uptime`` load printed.
2. Quality: the pipeline's own steps on the embedded demo data built from a
   config (default ``config/config.yaml``): ``demo-data`` -> ``prepare`` ->
   ``masks`` -> ``cs-tune`` (the config's ``cs`` grid on validation slices) ->
   ``cs-reconstruct`` of every test volume; PSNR/SSIM per volume
   (:mod:`oucr.metrics`) of CS and of zero-filled at each acceleration, mean over
   the test volumes.

Usage::

    python benchmarks/cs_speed.py [--config config/config.yaml] [--work DIR] [--accelerations 4 8]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cs_vs_bart import brain_slice  # noqa: E402  (benchmarks/ is not a package)


def _load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def speed(sizes: Sequence[int], repeats: int, lamda: float) -> List[Dict[str, object]]:
    """Seconds per slice of the CS regularisers at each size (4x, normalised data)."""
    from baselines.cs import REGULARISERS, reconstruct_slice
    from oucr.fft import fft2c
    from oucr.masks import RandomMaskFunc, column_mask
    from oucr.physics import normalisation_factor

    rows = []
    for size in sizes:
        image = brain_slice(size).astype(np.complex64)
        mask, _ = column_mask(RandomMaskFunc([0.08], [4]), size, seed=1)
        mask = mask.astype(np.float32)
        y = fft2c(image) * mask
        y = (y / normalisation_factor(y)).astype(np.complex64)
        for reg in REGULARISERS:
            times, iterations = [], 0
            for _ in range(repeats):
                t0 = time.perf_counter()
                _, iterations = reconstruct_slice(y, mask, lamda, regulariser=reg, return_iterations=True)
                times.append(time.perf_counter() - t0)
            rows.append({"size": size, "reg": reg, "iterations": iterations, "seconds": statistics.median(times)})
    return rows


def demo_config(path: Path, work: Path) -> Dict[str, object]:
    """The config with its ``{results}`` placeholders pointing into ``work``."""
    from oucr.config import resolve_results_placeholder

    config = yaml.safe_load(Path(path).read_text())
    config["results"] = str(work)
    return resolve_results_placeholder(config)


def quality(config: Dict[str, object], work: Path, datasets: Sequence[str], accelerations: Sequence[int]) -> List[Dict]:
    """CS vs zero-filled on the test volumes of the demo datasets, through the pipeline's functions."""
    from oucr.engine.cs import reconstruct_volumes, tune_lambda
    from oucr.config import acceleration_settings
    from oucr.data.demo import build_demo_data
    from oucr.data.fixed_masks import read_fixed_masks, write_fixed_masks
    from oucr.data.prepare import prepare_from_config
    from oucr.data.store import PreparedStore
    from oucr.fft import ifft2c
    from oucr.io import atomic_write_text
    from oucr.metrics import psnr, ssim
    from oucr.recon_io import read_reconstruction

    cs = dict(config.get("cs") or {})
    build_demo_data(config, work / "demo_data", kinds=datasets)
    rows = []
    for dataset in datasets:
        store = work / "prepared" / dataset
        prepare_from_config(config, dataset, store)
        prepared = PreparedStore(store)
        for acc in accelerations:
            masks_file = work / "masks" / dataset / f"x{acc}.h5"
            masks_file.parent.mkdir(parents=True, exist_ok=True)
            settings = acceleration_settings(config, acc)
            write_fixed_masks(store, masks_file, acc, settings["center_fraction"], config.get("mask_type", "random"))
            t0 = time.perf_counter()
            record = tune_lambda(store, masks_file, cs.get("lambdas", (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)),
                                 cs.get("tune_slices", 16), cs.get("max_iter", 100), cs.get("regulariser", "tv"))
            tune_s = time.perf_counter() - t0
            lambda_file = work / "cs" / dataset / f"x{acc}" / "lambda.json"
            lambda_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(lambda_file, json.dumps(record, indent=2))
            out = work / "recon" / dataset / f"x{acc}" / "cs"
            t0 = time.perf_counter()
            written = reconstruct_volumes(store, masks_file, lambda_file, out)
            n_slices = sum(int(prepared.load(p.stem)["kspace"].shape[0]) for p in written)
            recon_s = (time.perf_counter() - t0) / n_slices
            masks = read_fixed_masks(masks_file)
            scores = []
            for path in written:
                volume = path.stem
                data = prepared.load(volume)
                gt = np.abs(data["target"]).astype(np.float32)
                recon, _ = read_reconstruction(path)
                zf = np.abs(ifft2c(data["kspace"] * masks[volume].astype(np.float32))).astype(np.float32)
                scores.append((psnr(gt, recon), psnr(gt, zf), ssim(gt, recon), ssim(gt, zf)))
            mean = np.mean(scores, axis=0)
            rows.append({"dataset": dataset, "acc": acc, "lamda": record["lamda"], "volumes": len(written),
                         "cs_psnr": mean[0], "zf_psnr": mean[1], "cs_ssim": mean[2], "zf_ssim": mean[3],
                         "tune_s": tune_s, "recon_s": recon_s})
    return rows


def main(argv: Sequence[str] = None) -> int:
    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=root / "config" / "config.yaml")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed)")
    parser.add_argument("--datasets", nargs="+", default=["demo-brain", "demo-fastmri"])
    parser.add_argument("--accelerations", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--sizes", type=int, nargs="+", default=[320, 64])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lamda", type=float, default=0.01, help="weight of the speed runs (normalised data)")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    print(f"speed ({_load()}):")
    print(f"{'size':>9s} {'reg':8s} {'iters':>6s} {'s/slice':>8s}")
    for r in speed(args.sizes, args.repeats, args.lamda):
        print(f"{r['size']:>4d}x{r['size']:<4d} {r['reg']:8s} {r['iterations']:6d} {r['seconds']:8.3f}")
    print(f"(median of {args.repeats}; {_load()} after)")
    if args.skip_quality:
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        rows = quality(demo_config(args.config, work), work, args.datasets, args.accelerations)
    print(f"\nCS vs zero-filled on the demo test volumes ({args.config.name}; {_load()}):")
    print(f"{'dataset':14s} {'acc':>4s} {'vols':>5s} {'lambda':>7s} {'CS PSNR':>8s} {'ZF PSNR':>8s} {'gain':>6s} "
          f"{'CS SSIM':>8s} {'ZF SSIM':>8s} {'tune s':>7s} {'s/slice':>8s}")
    for r in rows:
        print(f"{r['dataset']:14s} {r['acc']:>3d}x {r['volumes']:5d} {r['lamda']:7.0e} {r['cs_psnr']:8.2f} "
              f"{r['zf_psnr']:8.2f} {r['cs_psnr'] - r['zf_psnr']:+6.2f} {r['cs_ssim']:8.4f} {r['zf_ssim']:8.4f} "
              f"{r['tune_s']:7.1f} {r['recon_s']:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
