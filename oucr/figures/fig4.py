"""Fig. 4: k-space band analysis, box plots of band-restricted per-slice PSNR/SSIM per method.

Columns ``psnr_low``, ``ssim_low``, ``psnr_high``, ``ssim_high`` of the per-slice
metrics of ``oucr evaluate``: reconstruction and reference both restricted to the
low (central) or high (peripheral) k-space band. A method trained several times
(column ``replicate``) contributes each slice once, averaged over its replicates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from oucr.errors import DataError
from oucr.figures.common import LABEL_SIZE, SMALL_SIZE, compose_figure, dataset_order, method_order, new_figure, \
    save_figure

BANDS = ("low", "high")
METRICS = ("psnr", "ssim")


def groups_of(config: Mapping[str, Any], frame: pd.DataFrame) -> list:
    """``(dataset, acceleration)`` pairs of ``frame``, datasets in figure order, then by acceleration."""
    pairs = set(zip(frame["dataset"], frame["acceleration"].astype(int)))
    return [(d, a) for d in dataset_order(config, {d for d, _ in pairs})
            for a in sorted(a for dd, a in pairs if dd == d)]


def replicate_means(slices: pd.DataFrame) -> pd.DataFrame:
    """Per-slice band metrics averaged over each method's replicates (column ``replicate``, if any).

    A box then shows the spread over test slices, whatever the number of replicates
    (with one replicate the values are unchanged).
    """
    if "replicate" not in slices.columns:
        return slices
    keys = [c for c in ("method", "dataset", "acceleration", "volume", "slice") if c in slices.columns]
    columns = [f"{metric}_{band}" for band in BANDS for metric in METRICS]
    return slices.groupby(keys, as_index=False, sort=False)[columns].mean()


def draw_boxes(ax, data, width: float = 0.5) -> None:
    """Box plots of ``data`` (one array per position 1, 2, ...) as three collections.

    The statistics are matplotlib's ``boxplot`` ones (median, quartiles, whiskers at
    the furthest point within 1.5 IQR, outliers not drawn); drawing them as
    collections instead of ``ax.boxplot``'s six lines per box keeps figures with
    many methods and panels fast to lay out.
    """
    from matplotlib.cbook import boxplot_stats
    from matplotlib.collections import LineCollection, PolyCollection

    boxes, medians, whiskers = [], [], []
    for x, values in enumerate(data, start=1):
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        st = boxplot_stats(values, whis=1.5)[0]
        left, right = x - width / 2, x + width / 2
        boxes.append([(left, st["q1"]), (right, st["q1"]), (right, st["q3"]), (left, st["q3"])])
        medians.append([(left, st["med"]), (right, st["med"])])
        cap = width / 4
        whiskers += [[(x, st["q1"]), (x, st["whislo"])], [(x, st["q3"]), (x, st["whishi"])],
                     [(x - cap, st["whislo"]), (x + cap, st["whislo"])],
                     [(x - cap, st["whishi"]), (x + cap, st["whishi"])]]
    ax.add_collection(PolyCollection(boxes, facecolors="none", edgecolors="black", linewidths=1.0))
    ax.add_collection(LineCollection(whiskers, colors="black", linewidths=1.0))
    ax.add_collection(LineCollection(medians, colors="C1", linewidths=1.5))
    ax.set_xlim(0.5, len(data) + 0.5)
    ax.autoscale_view(scalex=False)


def draw_fig4(config: Mapping[str, Any], slices: pd.DataFrame):
    """Draw Fig. 4 from per-slice metrics; returns the composed figure (nothing is written).

    Raises:
        DataError: a band column is missing, or no configured method has rows.
    """
    for band in BANDS:
        for metric in METRICS:
            if f"{metric}_{band}" not in slices.columns:
                raise DataError("per-slice metrics", f"column {metric}_{band} missing; rerun `oucr evaluate`")
    slices = replicate_means(slices)
    methods = [m for m in method_order(config) if m in set(slices["method"])]
    if not methods:
        raise DataError("per-slice metrics", "no rows of the zero-filled reference or a configured method")
    groups = groups_of(config, slices)
    panels = [(band, metric) for band in BANDS for metric in METRICS]
    width = max(3.0, 0.3 * len(methods) + 1.3)
    fig = new_figure(width * len(groups) + 0.3, 2.5 * len(panels) + 0.25 * max(len(m) for m in methods) / 3 + 1.2)
    axes = fig.subplots(len(panels), len(groups), squeeze=False)
    for c, (dataset, acc) in enumerate(groups):
        sub = slices[(slices["dataset"] == dataset) & (slices["acceleration"].astype(int) == acc)]
        for r, (band, metric) in enumerate(panels):
            ax = axes[r, c]
            data = [sub.loc[sub["method"] == m, f"{metric}_{band}"].to_numpy() for m in methods]
            draw_boxes(ax, data)
            last = r == len(panels) - 1
            # method names only under the bottom row: the panels of a column share them
            ax.set_xticks(range(1, len(methods) + 1), methods if last else [], rotation=90, fontsize=SMALL_SIZE)
            ax.set_title(f"{dataset} {acc}x: {band}-frequency band", fontsize=LABEL_SIZE)
            ax.set_ylabel(metric.upper() + (" (dB)" if metric == "psnr" else ""), fontsize=LABEL_SIZE)
            ax.tick_params(axis="y", labelsize=SMALL_SIZE)
            ax.grid(axis="y", alpha=0.3)
    caption = ("Per-slice PSNR / SSIM over the test slices (averaged over a method's replicates) after restricting "
               "reconstruction and reference to the low (central) or high (peripheral) k-space band. Boxes: median "
               "and quartiles; whiskers: 1.5 x IQR (outliers not drawn).")
    return compose_figure(fig, config, "Fig. 4: k-space analysis (low / high frequency bands)", caption)


def figure4(config: Mapping[str, Any], slices: pd.DataFrame, out: Path) -> None:
    """Draw Fig. 4 (:func:`draw_fig4`) and write ``out`` (PNG) and its PDF."""
    save_figure(draw_fig4(config, slices), out)
