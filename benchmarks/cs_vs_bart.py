"""Benchmark: our SigPy-based CS against BART's ``pics`` on a real T1 brain slice.

The slice is an axial slice of the MNI152 T1 template that nilearn ships,
resampled to 256 x 256 (real human anatomy; no download). The mask is a
fastMRI random column mask at 4x (centre fraction 0.08, seed fixed). Each
method gets its best regularisation weight from a grid; every run is timed in
the same process, on the same slice, mask and machine load.

Usage (BART from Debian's ``bart`` package; skipped with a message if absent)::

    python benchmarks/cs_vs_bart.py [--acceleration 4] [--size 256] [--noise 0.0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def brain_slice(size: int, noise: float, seed: int = 0) -> np.ndarray:
    """Axial MNI152 T1 slice (z = 95 of 189), resampled to size x size, max 1, optional noise."""
    import nibabel as nib
    from skimage.transform import resize

    from oucr.data.demo import load_anatomy

    t1 = load_anatomy().t1
    img = np.rot90(t1[:, :, 95]).astype(np.float64)
    img = resize(img, (size, size), anti_aliasing=True)
    img = img / img.max()
    if noise > 0:
        rng = np.random.default_rng(seed)
        img = np.abs(img + noise * (rng.standard_normal(img.shape) + 1j * rng.standard_normal(img.shape)))
    return img.astype(np.complex64)


def write_cfl(base: Path, array: np.ndarray) -> None:
    """BART's .hdr/.cfl pair (complex64, column-major)."""
    dims = list(array.shape) + [1] * (16 - array.ndim)
    base.with_suffix(".hdr").write_text("# Dimensions\n" + " ".join(map(str, dims)) + "\n")
    array.astype(np.complex64).ravel(order="F").tofile(base.with_suffix(".cfl"))


def read_cfl(base: Path) -> np.ndarray:
    dims = [int(d) for d in base.with_suffix(".hdr").read_text().splitlines()[1].split()]
    while len(dims) > 2 and dims[-1] == 1:
        dims.pop()
    return np.fromfile(base.with_suffix(".cfl"), dtype=np.complex64).reshape(dims, order="F")


def bart_pics(kspace: np.ndarray, reg: str, lamda: float, iters: int, workdir: Path) -> tuple:
    """Run ``bart pics`` on one slice; returns (image, seconds)."""
    write_cfl(workdir / "k", kspace[:, :, None, None])
    write_cfl(workdir / "s", np.ones(kspace.shape + (1, 1), np.complex64))
    flags = ["-l1", "-r", str(lamda)] if reg == "wavelet" else ["-R", f"T:3:0:{lamda}"]
    cmd = ["bart", "pics", "-S", "-d0", "-i", str(iters), *flags, str(workdir / "k"), str(workdir / "s"),
           str(workdir / "x")]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return read_cfl(workdir / "x").reshape(kspace.shape), time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--acceleration", type=int, default=4)
    parser.add_argument("--center-fraction", type=float, default=0.08)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--noise", type=float, default=0.0, help="complex noise SD relative to the max")
    parser.add_argument("--iters", type=int, default=100, help="iterations of our CS")
    parser.add_argument("--bart-iters", type=int, default=100)
    args = parser.parse_args()
    if shutil.which("bart") is None:
        print("bart not found on PATH (Debian: apt-get install bart); skipping the comparison")
        return 0

    from baselines.cs import reconstruct_slice
    from oucr.fft import fft2c, ifft2c
    from oucr.masks import RandomMaskFunc, column_mask
    from oucr.metrics import psnr, ssim

    img = brain_slice(args.size, args.noise)
    mask, _ = column_mask(RandomMaskFunc([args.center_fraction], [args.acceleration]), args.size, seed=1)
    y = (fft2c(img) * mask).astype(np.complex64)
    gt = np.abs(img)[None]

    def score(x):
        return psnr(gt, np.abs(x)[None].astype(np.float32)), ssim(gt, np.abs(x)[None].astype(np.float32))

    # BART with a full mask must return the image (checks the FFT and scaling conventions)
    with tempfile.TemporaryDirectory() as tmp:
        full, _ = bart_pics(fft2c(img).astype(np.complex64), "tv", 1e-6, 10, Path(tmp))
    print(f"BART full-mask check: PSNR {score(full)[0]:.1f} dB (should be high)")

    grid = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1]
    rows = [("zero-filled", "-", "-", *score(ifft2c(y)), 0.0)]
    with tempfile.TemporaryDirectory() as tmp:
        for reg in ("wavelet", "tv"):
            best = None
            for lam in grid:
                x, dt = bart_pics(y, reg, lam, args.bart_iters, Path(tmp))
                p, s = score(x)
                if best is None or p > best[3]:
                    best = ("BART pics", reg, lam, p, s, dt)
            rows.append(best)
    for reg in ("tv", "wavelet"):
        best = None
        for lam in grid:
            t0 = time.perf_counter()
            x = reconstruct_slice(y, mask, lam, max_iter=args.iters, regulariser=reg)
            dt = time.perf_counter() - t0
            p, s = score(x)
            if best is None or p > best[3]:
                best = ("ours (SigPy)", reg, lam, p, s, dt)
        rows.append(best)
    load = os.getloadavg()[0]
    print(f"\n{args.size} x {args.size} T1 slice, {args.acceleration}x random mask, noise {args.noise}, load {load:.2f}")
    print(f"{'method':14s} {'reg':8s} {'lambda':>8s} {'PSNR':>7s} {'SSIM':>7s} {'s/slice':>8s}")
    for name, reg, lam, p, s, dt in rows:
        print(f"{name:14s} {reg:8s} {lam!s:>8s} {p:7.2f} {s:7.4f} {dt:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
