"""``oucr figures``: the paper's figures drawn from files the pipeline wrote.

Subcommands (each writes a PNG and a PDF beside it):

- ``fig3``: one test slice per dataset x acceleration: reference, every method, and
  absolute error maps, with the slice's PSNR/SSIM (the per-slice values of
  ``oucr evaluate``) on each panel;
- ``fig4``: k-space band analysis, box plots of per-slice PSNR/SSIM of the low- and
  high-frequency restricted images per method (columns ``*_low``/``*_high`` of the
  per-slice metrics);
- ``fig1``: recurrent-cell feature maps of the UC and OC branches and their
  measured effective receptive fields (files of ``oucr inspect``);
- ``iterations``: PSNR and SSIM against the number of CRNN iterations J.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, List, Mapping

import numpy as np
import pandas as pd

from oucr.config import load_config
from oucr.errors import DataError
from oucr.io import atomic_path
from oucr.stats import read_metric_files

log = logging.getLogger(__name__)

ZERO_FILLED = "Zero-filled"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, png: Path) -> None:
    """Write ``png`` and the PDF beside it, atomically."""
    png = Path(png)
    for path in (png, png.with_suffix(".pdf")):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:], dpi=150, bbox_inches="tight")
    _pyplot().close(fig)


def finish_figure(fig, config: Mapping[str, Any], title: str, png: Path) -> None:
    """Title (labelled DEMO when the config says so), layout, and the PNG + PDF files."""
    if config.get("demo"):
        title = f"{title}  [DEMO numbers: not comparable with the paper]"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, png)


def _method_order(config: Mapping[str, Any]) -> List[str]:
    return [ZERO_FILLED] + list(config.get("methods") or [])


def _recon_folders(results: Path, dataset: str, acc: int, method: str) -> List[Path]:
    from oucr.models.registry import method_slug

    base = results / "recon" / dataset / f"x{acc}"
    if method == "CS":
        return sorted((base / "cs-parts").glob("*")) or [base / "cs"]
    return [base / method_slug(method)]


def pick_slice(target: np.ndarray) -> int:
    """The slice with the most signal energy (deterministic)."""
    return int(np.argmax((target.astype(np.float64) ** 2).sum(axis=(1, 2))))


def figure3(config: Mapping[str, Any], out: Path) -> None:
    """Reference, every method and error maps on one slice per dataset x acceleration."""
    from oucr import metrics
    from oucr.data.store import PreparedStore
    from oucr.recon_io import locate_reconstruction, read_reconstruction

    plt = _pyplot()
    results = Path(config.get("results", "results"))
    methods = _method_order(config)
    datasets = list(config.get("datasets") or {})
    accs = sorted(int(a) for a in config.get("accelerations") or {})
    rows = [(d, a) for d in datasets for a in accs]
    ncol = len(methods) + 1
    fig, axes = plt.subplots(2 * len(rows), ncol, figsize=(1.9 * ncol, 2.0 * 2 * len(rows)), squeeze=False)
    for r, (dataset, acc) in enumerate(rows):
        store = PreparedStore(results / "prepared" / dataset)
        volume = store.volumes("test")[0]
        target_vol = np.abs(store.load(volume)["target"]).astype(np.float32)
        s = pick_slice(target_vol)
        ref = target_vol[s]
        vmax = float(ref.max())
        err_max = None
        recons = []
        for method in methods:
            path = locate_reconstruction(_recon_folders(results, dataset, acc, method), volume)
            recon_vol, _ = read_reconstruction(path)
            psnr = metrics.psnr_per_slice(target_vol, recon_vol)[s]
            ssim = metrics.ssim_per_slice(target_vol, recon_vol)[s]
            recons.append((method, recon_vol[s], psnr, ssim))
            if method == ZERO_FILLED:
                err_max = float(np.percentile(np.abs(recon_vol[s] - ref), 99.5))
        err_max = err_max or 0.1 * vmax
        img_ax, err_ax = axes[2 * r], axes[2 * r + 1]
        img_ax[0].imshow(ref, cmap="gray", vmin=0, vmax=vmax)
        img_ax[0].set_title("Reference", fontsize=8)
        img_ax[0].set_ylabel(f"{dataset} {acc}x\n{volume} s{s}", fontsize=7)
        err_ax[0].axis("off")
        for c, (method, img, psnr, ssim) in enumerate(recons, start=1):
            img_ax[c].imshow(img, cmap="gray", vmin=0, vmax=vmax)
            img_ax[c].set_title(method, fontsize=8)
            img_ax[c].text(0.02, 0.02, f"{psnr:.2f} dB\n{ssim:.4f}", color="yellow", fontsize=6,
                           transform=img_ax[c].transAxes, va="bottom")
            err_ax[c].imshow(np.abs(img - ref), cmap="inferno", vmin=0, vmax=err_max)
        for ax in list(img_ax) + list(err_ax):
            ax.set_xticks([])
            ax.set_yticks([])
    finish_figure(fig, config, "Fig. 3: reconstructions (PSNR / SSIM of the slice) and absolute errors", out)


def figure4(config: Mapping[str, Any], slices: pd.DataFrame, out: Path) -> None:
    """Box plots of band-restricted per-slice PSNR/SSIM per method (paper Fig. 4)."""
    plt = _pyplot()
    methods = [m for m in _method_order(config) if m in set(slices["method"])]
    groups = list(slices.groupby(["dataset", "acceleration"], sort=True).groups)
    panels = [(band, metric) for band in ("low", "high") for metric in ("psnr", "ssim")]
    for band, metric in panels:
        col = f"{metric}_{band}"
        if col not in slices.columns:
            raise DataError("per-slice metrics", f"column {col} missing; rerun `oucr evaluate`")
    fig, axes = plt.subplots(len(panels), len(groups), figsize=(3.6 * len(groups), 2.6 * len(panels)), squeeze=False)
    for c, (dataset, acc) in enumerate(groups):
        sub = slices[(slices["dataset"] == dataset) & (slices["acceleration"] == acc)]
        for r, (band, metric) in enumerate(panels):
            ax = axes[r, c]
            data = [sub.loc[sub["method"] == m, f"{metric}_{band}"].to_numpy() for m in methods]
            ax.boxplot(data, showfliers=False)
            ax.set_xticks(range(1, len(methods) + 1), methods, rotation=60, fontsize=7)
            ax.set_title(f"{dataset} {acc}x: {band} frequency", fontsize=8)
            ax.set_ylabel(metric.upper() + (" (dB)" if metric == "psnr" else ""), fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
    finish_figure(fig, config, "Fig. 4: k-space analysis (low / high frequency bands)", out)


def figure_iterations(config: Mapping[str, Any], volumes: pd.DataFrame, out: Path) -> None:
    """Mean PSNR and SSIM (with SD) against the number of CRNN iterations J."""
    plt = _pyplot()
    default_j = int(((config.get("models") or {}).get("OUCR") or {}).get("iterations", 5))

    def iterations_of(method: str) -> int:
        if method == "OUCR":
            return default_j
        if method.startswith("OUCR J="):
            return int(method.split("=", 1)[1])
        raise DataError("iteration sweep metrics", f"unexpected method {method!r}")

    frame = volumes.assign(J=volumes["method"].map(iterations_of))
    summary = frame.groupby("J").agg(psnr=("psnr", "mean"), psnr_sd=("psnr", "std"),
                                     ssim=("ssim", "mean"), ssim_sd=("ssim", "std")).reset_index()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3))
    a1.errorbar(summary["J"], summary["psnr"], yerr=summary["psnr_sd"], marker="o", capsize=3)
    a1.set_xlabel("CRNN iterations J")
    a1.set_ylabel("PSNR (dB)")
    a2.errorbar(summary["J"], summary["ssim"], yerr=summary["ssim_sd"], marker="o", capsize=3, color="C1")
    a2.set_xlabel("CRNN iterations J")
    a2.set_ylabel("SSIM")
    for ax in (a1, a2):
        ax.set_xticks(summary["J"])
        ax.grid(alpha=0.3)
    ds = ", ".join(sorted(set(frame["dataset"])))
    acc = ", ".join(f"{a}x" for a in sorted(set(frame["acceleration"])))
    finish_figure(fig, config, f"OUCR: effect of the number of iterations ({ds}, {acc})", out)


def figure1(config: Mapping[str, Any], features: Path, receptive_field: Path, out: Path) -> None:
    """Cell feature maps, effective receptive fields and their radii, per branch (Fig. 1c/d)."""
    from oucr.models.inspect import read_features

    plt = _pyplot()
    maps = read_features(features, everything=True)
    rf = pd.read_csv(receptive_field)
    branches = [b for b in ("uc", "oc") if b in maps]
    n = max(maps[b].shape[0] for b in branches)
    fig, axes = plt.subplots(len(branches), n + 2, figsize=(1.9 * (n + 2), 2.4 * len(branches)), squeeze=False)
    # one window for every branch's receptive-field map, so that their sizes compare directly
    half = int(rf["extent"].max()) + 3 if "extent" in rf else 10
    names = {"uc": "UC-CRNN (undercomplete)", "oc": "OC-CRNN (overcomplete)"}
    for r, b in enumerate(branches):
        axes[r, 0].imshow(maps["input"], cmap="gray")
        axes[r, 0].set_title("zero-filled input", fontsize=7)
        axes[r, 0].set_ylabel(names[b], fontsize=8)
        rows = rf[(rf["branch"] == b) & (rf["iterations"] == rf["iterations"].min())]
        radii = ", ".join(f"{row.init} {row.radius:.1f}" for row in rows.itertuples())
        erf = maps.get(f"{b}_erf")
        if erf is not None:
            c, h = erf.shape[0] // 2, min(half, erf.shape[0] // 2)
            axes[r, 1].imshow(erf[c - h : c + h + 1, c - h : c + h + 1], cmap="magma")
            axes[r, 1].set_title(f"ERF (95 % radius px)\n{radii}", fontsize=6)
        else:
            axes[r, 1].axis("off")
        for c in range(n):
            ax = axes[r, c + 2]
            if c < maps[b].shape[0]:
                ax.imshow(maps[b][c], cmap="viridis")
                ax.set_title(f"cell map {c} ({maps[b].shape[-1]}²)", fontsize=6)
            else:
                ax.axis("off")
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    finish_figure(fig, config, "Fig. 1c/d: recurrent-cell feature maps and effective receptive fields", out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr figures``."""
    sub = parser.add_subparsers(dest="figure", required=True, metavar="FIGURE")
    p3 = sub.add_parser("fig3", help="reconstructions and error maps")
    p3.add_argument("--config", required=True)
    p3.add_argument("--out", type=Path, required=True, help="PNG path (PDF written beside it)")
    p4 = sub.add_parser("fig4", help="k-space band analysis box plots")
    p4.add_argument("--config", required=True)
    p4.add_argument("--slices", nargs="+", type=Path, required=True)
    p4.add_argument("--out", type=Path, required=True)
    p1 = sub.add_parser("fig1", help="feature maps and receptive fields")
    p1.add_argument("--config", required=True)
    p1.add_argument("--features", type=Path, required=True)
    p1.add_argument("--receptive-field", type=Path, required=True)
    p1.add_argument("--out", type=Path, required=True)
    pi = sub.add_parser("iterations", help="PSNR against the number of CRNN iterations")
    pi.add_argument("--config", required=True)
    pi.add_argument("--volumes", nargs="+", type=Path, required=True)
    pi.add_argument("--out", type=Path, required=True)


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr figures``."""
    config = load_config(args.config)
    if args.figure == "fig3":
        figure3(config, args.out)
    elif args.figure == "fig4":
        figure4(config, read_metric_files(args.slices), args.out)
    elif args.figure == "fig1":
        figure1(config, args.features, args.receptive_field, args.out)
    else:
        figure_iterations(config, read_metric_files(args.volumes), args.out)
    log.info("wrote %s and its PDF", args.out)
    return 0
