"""Benchmark: the project's SigPy-based CS against BART's ``pics`` on a real T1 brain slice.

The slice is axial slice ``--z`` of the 1 mm MNI152 T1 template bundled with nilearn
(``nilearn.datasets.load_mni152_template(resolution=1)``, real human anatomy, no
download), zero-padded to a square and resampled to ``--size`` x ``--size``, maximum 1.
Options add a smooth synthetic phase (``--phase``) and complex Gaussian k-space
noise (``--noise``, SD relative to the image maximum; the reference is then the
noisy fully sampled image, as with real data). The mask is a fastMRI random
column mask (``--acceleration``, centre fraction ``--center-fraction``, fixed seed).
k-space is normalised as in the pipeline (:func:`oucr.physics.normalisation_factor`).

Every method gets its best regularisation weight from a grid (BART also its best
iteration count among its default, 100 and 300). The best setting of each is then
timed again, interleaved with the others (``--repeats`` rounds, median), so all
times share the same machine load; ``uptime`` load is printed. BART runs
single-threaded (``OMP_NUM_THREADS=1``, like our NumPy/SciPy FFTs) unless
``--bart-threads`` says otherwise; its time includes process start and cfl file
I/O, which is what one ``bart pics`` call per slice costs (printed separately).

Usage (BART from Debian's ``bart`` package; skipped with a message if absent)::

    python benchmarks/cs_vs_bart.py [--acceleration 4] [--size 256] [--noise 0.0] [--phase]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

LAMBDAS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
BART_ITERS = (None, 100, 300)  # None: BART's default


def brain_slice(size: int, z: int = 95) -> np.ndarray:
    """Axial MNI152 T1 slice ``z``, padded square, resampled to ``size`` x ``size``, max 1."""
    from nilearn.datasets import load_mni152_template
    from skimage.transform import resize

    t1 = np.asarray(load_mni152_template(resolution=1).dataobj, dtype=np.float64)
    img = np.rot90(t1[:, :, z])
    side = max(img.shape)
    pad = [((side - n) // 2, side - n - (side - n) // 2) for n in img.shape]
    img = resize(np.pad(img, pad), (size, size), anti_aliasing=True)
    return img / img.max()


def smooth_phase(shape: Tuple[int, int]) -> np.ndarray:
    """A smooth phase map (linear + quadratic terms, up to about 2 rad), ``exp(i phi)``."""
    h, w = shape
    yy, xx = np.mgrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j]
    return np.exp(1j * (np.pi / 2) * (0.8 * xx + 0.5 * yy**2 - 0.6 * xx * yy))


def write_cfl(base: Path, array: np.ndarray) -> None:
    """BART's ``.hdr``/``.cfl`` pair (complex64, column-major, 16 dimensions)."""
    dims = list(array.shape) + [1] * (16 - array.ndim)
    Path(f"{base}.hdr").write_text("# Dimensions\n" + " ".join(map(str, dims)) + "\n")
    np.asarray(array, dtype=np.complex64).ravel(order="F").tofile(f"{base}.cfl")


def read_cfl(base: Path) -> np.ndarray:
    """Read a BART ``.hdr``/``.cfl`` pair."""
    dims = [int(d) for d in Path(f"{base}.hdr").read_text().splitlines()[1].split()]
    return np.fromfile(f"{base}.cfl", dtype=np.complex64).reshape(dims, order="F")


class Bart:
    """``bart pics`` on one slice (sensitivities all ones, via ``bart ones``)."""

    def __init__(self, workdir: Path, shape: Tuple[int, int], threads: int) -> None:
        self.dir = workdir
        self.shape = shape
        self.env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        subprocess.run(["bart", "ones", "4", str(shape[0]), str(shape[1]), "1", "1", str(workdir / "sens")],
                       check=True, capture_output=True, env=self.env)

    def pics(self, kspace: np.ndarray, reg: str, lamda: float, iters) -> Tuple[np.ndarray, float]:
        """Reconstruct; returns (image, seconds including process start and file I/O)."""
        flags = ["-l1", "-r", str(lamda)] if reg == "wavelet" else ["-R", f"T:3:0:{lamda}"]
        if iters is not None:
            flags += ["-i", str(iters)]
        t0 = time.perf_counter()
        write_cfl(self.dir / "k", kspace[:, :, None, None])
        subprocess.run(["bart", "pics", "-S", *flags, str(self.dir / "k"), str(self.dir / "sens"), str(self.dir / "x")],
                       check=True, capture_output=True, env=self.env)
        x = read_cfl(self.dir / "x").reshape(self.shape)
        return x, time.perf_counter() - t0

    def overhead(self) -> float:
        """Seconds of a ``bart`` process that does almost nothing (start, read, write)."""
        t0 = time.perf_counter()
        subprocess.run(["bart", "scale", "1", str(self.dir / "sens"), str(self.dir / "tmp")], check=True,
                       capture_output=True, env=self.env)
        return time.perf_counter() - t0


def _load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def main(argv: Sequence[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--acceleration", type=int, default=4)
    parser.add_argument("--center-fraction", type=float, default=0.08)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--z", type=int, default=95, help="axial slice of the 189-slice template")
    parser.add_argument("--noise", type=float, default=0.0, help="complex k-space noise SD relative to the image max")
    parser.add_argument("--phase", action="store_true", help="apply a smooth synthetic phase")
    parser.add_argument("--mask-seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timing rounds of the best settings")
    parser.add_argument("--bart-threads", type=int, default=1)
    parser.add_argument("--sigpy-iters", type=int, default=0,
                        help="also run SigPy's own TotalVariationRecon/L1WaveletRecon apps with this many iterations")
    args = parser.parse_args(argv)
    if shutil.which("bart") is None:
        print("bart not found on PATH (Debian: apt-get install -y bart); skipping the comparison")
        return 0

    from baselines.cs import DEFAULT_MAX_ITER, DEFAULT_REGULARISER, reconstruct_slice
    from oucr.fft import fft2c, ifft2c
    from oucr.masks import RandomMaskFunc, column_mask
    from oucr.metrics import psnr, ssim
    from oucr.physics import data_consistency, normalisation_factor

    version = subprocess.run(["bart", "version"], capture_output=True, text=True).stdout.strip()
    image = brain_slice(args.size, args.z).astype(np.complex128)
    if args.phase:
        image = image * smooth_phase(image.shape)
    full = fft2c(image)
    if args.noise > 0:
        rng = np.random.default_rng(0)
        full = full + args.noise * (rng.standard_normal(full.shape) + 1j * rng.standard_normal(full.shape)) / np.sqrt(2)
    mask, _ = column_mask(RandomMaskFunc([args.center_fraction], [args.acceleration]), args.size, seed=args.mask_seed)
    mask = mask.astype(np.float32)
    norm = normalisation_factor(full * mask)
    full = (full / norm).astype(np.complex64)
    y = (full * mask).astype(np.complex64)
    gt = np.abs(ifft2c(full)).astype(np.float32)[None]

    def score(x: np.ndarray) -> Tuple[float, float]:
        mag = np.abs(x).astype(np.float32)[None]
        return float(psnr(gt, mag)), float(ssim(gt, mag))

    print(f"bart {version}; slice z={args.z} of MNI152 T1 1 mm, {args.size} x {args.size}, phase {args.phase}, "
          f"noise {args.noise}; {args.acceleration}x random mask (centre {args.center_fraction}, "
          f"{int(mask.sum())}/{mask.size} columns); {_load()}")

    rows: List[Dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        bart = Bart(Path(tmp), y.shape, args.bart_threads)
        # convention check: with every sample BART must return the image
        x_full, _ = bart.pics(full, "wavelet", 1e-6, None)
        x_ours = reconstruct_slice(full, np.ones_like(mask), 1e-3)
        print(f"full-mask check: BART PSNR {score(x_full)[0]:.1f} dB, ours {score(x_ours)[0]:.1f} dB "
              "(> 100 dB: exact up to float32 round-off)")

        # grids ------------------------------------------------------------------------
        runners: Dict[str, Callable[[], Tuple[np.ndarray, float]]] = {}

        def ours(reg: str, lam: float, dc: bool = True) -> Callable[[], Tuple[np.ndarray, float]]:
            def run() -> Tuple[np.ndarray, float]:
                t0 = time.perf_counter()
                x = reconstruct_slice(y, mask, lam, regulariser=reg, data_consistency=dc)
                return x, time.perf_counter() - t0
            return run

        def sigpy_app(reg: str, lam: float) -> Callable[[], Tuple[np.ndarray, float]]:
            import sigpy.mri as mr

            app = mr.app.TotalVariationRecon if reg == "tv" else mr.app.L1WaveletRecon

            def run() -> Tuple[np.ndarray, float]:
                t0 = time.perf_counter()
                x = app(y[None], np.ones((1,) + y.shape, np.complex64), lam, weights=np.broadcast_to(mask, y.shape),
                        max_iter=args.sigpy_iters, show_pbar=False).run()
                return x, time.perf_counter() - t0
            return run

        def bart_run(reg: str, lam: float, iters) -> Callable[[], Tuple[np.ndarray, float]]:
            return lambda: bart.pics(y, reg, lam, iters)

        candidates = {
            ("BART pics", "tv"): [(f"{it or 'default'}", lam, bart_run("tv", lam, it)) for it in BART_ITERS
                                  for lam in LAMBDAS],
            ("BART pics", "wavelet"): [(f"{it or 'default'}", lam, bart_run("wavelet", lam, it)) for it in BART_ITERS
                                       for lam in LAMBDAS],
            ("ours (default)", DEFAULT_REGULARISER): [(f"<={DEFAULT_MAX_ITER}", lam, ours(DEFAULT_REGULARISER, lam))
                                                      for lam in LAMBDAS],
            ("ours, no final DC", "tv"): [(f"<={DEFAULT_MAX_ITER}", lam, ours("tv", lam, False)) for lam in LAMBDAS],
            ("ours", "wavelet"): [(f"<={DEFAULT_MAX_ITER}", lam, ours("wavelet", lam)) for lam in LAMBDAS],
        }
        if args.sigpy_iters > 0:
            for reg in ("tv", "wavelet"):
                candidates[("SigPy app", reg)] = [(str(args.sigpy_iters), lam, sigpy_app(reg, lam)) for lam in LAMBDAS]
        for (name, reg), grid in candidates.items():
            best = None
            for iters, lam, run in grid:
                x, _ = run()
                p, s = score(x)
                if best is None or p > best["psnr"]:
                    best = {"method": name, "reg": reg, "iters": iters, "lamda": lam, "psnr": p, "ssim": s, "x": x}
                    runners[name + reg] = run
            rows.append(best)
        # BART's best output with the same final data consistency as ours (for reference)
        best_bart = max((r for r in rows if r["method"] == "BART pics"), key=lambda r: r["psnr"])
        x_dc = data_consistency(best_bart["x"].astype(np.complex64), y, mask)
        p, s = score(x_dc)
        rows.append({**best_bart, "method": "BART best + DC", "psnr": p, "ssim": s})
        runners["BART best + DC" + best_bart["reg"]] = runners["BART pics" + best_bart["reg"]]

        # interleaved timing of every best setting ---------------------------------------
        times: Dict[str, List[float]] = {key: [] for key in runners}
        load_before = _load()
        for _ in range(args.repeats):
            for key, run in runners.items():
                times[key].append(run()[1])
        load_after = _load()
        overhead = statistics.median(bart.overhead() for _ in range(args.repeats))

    zero = score(ifft2c(y))
    print(f"\n{'method':18s} {'reg':8s} {'iters':>8s} {'lambda':>7s} {'PSNR':>7s} {'SSIM':>7s} {'s/slice':>8s}")
    print(f"{'zero-filled':18s} {'-':8s} {'-':>8s} {'-':>7s} {zero[0]:7.2f} {zero[1]:7.4f} {'-':>8s}")
    for r in rows:
        r["seconds"] = statistics.median(times[r["method"] + r["reg"]])
        print(f"{r['method']:18s} {r['reg']:8s} {r['iters']:>8s} {r['lamda']:7.0e} {r['psnr']:7.2f} {r['ssim']:7.4f} "
              f"{r['seconds']:8.3f}")
    print(f"(median of {args.repeats} interleaved runs; {load_before} before, {load_after} after timing; "
          f"a bare bart process costs {overhead:.3f} s of each BART time; BART OMP_NUM_THREADS={args.bart_threads})")
    default = next(r for r in rows if r["method"] == "ours (default)")
    gap = best_bart["psnr"] - default["psnr"]
    ok = gap <= 0.5 and default["seconds"] <= best_bart["seconds"]
    print(f"\ndefault CS vs BART's best ({best_bart['reg']}, {best_bart['iters']} iterations): "
          f"{-gap:+.2f} dB, {default['seconds']:.3f} s vs {best_bart['seconds']:.3f} s per slice -> "
          f"target (within 0.5 dB, no slower) {'MET' if ok else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
