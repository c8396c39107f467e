"""Convergence: validation PSNR against epoch for every trained method.

Input: the ``history.csv`` files of ``oucr train``, one per trained replicate, with
the columns :data:`HISTORY_COLUMNS` (``method`` is the display name, e.g. ``UNet``,
``OC-CRNN + RM``, ``OUCR J=3``). One panel per dataset x acceleration (datasets in
figure order, then by acceleration), one line per method in the same colour in every
panel: the mean over the method's replicates at each epoch, with a shaded min-max
band across replicates when there are several. By default only the Table 1
methods are drawn; ``all_runs`` adds the ablation variants and the J sweep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from oucr.errors import DataError
from oucr.figures.common import (
    LABEL_SIZE,
    SMALL_SIZE,
    compose_figure,
    dataset_order,
    method_colours,
    new_figure,
    run_order,
    save_figure,
    table1_methods,
    text_width,
)
from oucr.io import read_csv_file
from oucr.names import evaluated_as

#: columns of a training history (``oucr train``)
HISTORY_COLUMNS = ["run", "method", "dataset", "acceleration", "replicate", "epoch", "train_loss", "val_psnr",
                   "val_ssim", "val_nmse", "lr", "seconds", "slices_per_second"]
#: the columns this figure reads
REQUIRED_COLUMNS = ["run", "method", "dataset", "acceleration", "replicate", "epoch", "val_psnr"]
NUMERIC_COLUMNS = ["acceleration", "replicate", "epoch", "val_psnr"]
KEYS = ["run", "dataset", "acceleration", "replicate", "epoch"]


def read_history(path: Path) -> pd.DataFrame:
    """One training history.

    Raises:
        DataError: the file is missing, unreadable, empty, lacks a column the figure
            reads or holds non-numeric values in a numeric column.
    """
    path = Path(path)
    frame = read_csv_file(path, "training history", REQUIRED_COLUMNS, "; run `oucr train`")
    if frame.empty:
        raise DataError(path, "training history has no epochs")
    for column in NUMERIC_COLUMNS:
        values = pd.to_numeric(frame[column], errors="coerce")
        if (values.isna() & frame[column].notna()).any() or (column != "val_psnr" and values.isna().any()):
            raise DataError(path, f"non-numeric or missing values in column {column}")
        frame[column] = values
    return frame.assign(method=frame["method"].astype(str).map(evaluated_as), dataset=frame["dataset"].astype(str),
                        run=frame["run"].astype(str))


def read_histories(paths: Iterable[Path]) -> pd.DataFrame:
    """Concatenate training histories (a file named twice counts once).

    Raises:
        DataError: for the first missing or damaged file, for no file, or for the
            same run, replicate and epoch in two files.
    """
    paths = list(dict.fromkeys(Path(p) for p in paths))
    if not paths:
        raise DataError("(none)", "no training history given")
    frames = [read_history(p).assign(_file=str(p)) for p in paths]
    frame = pd.concat(frames, ignore_index=True)
    duplicated = frame.duplicated(subset=KEYS, keep=False)
    if duplicated.any():
        files = ", ".join(sorted(set(frame.loc[duplicated, "_file"])))
        first = frame.loc[duplicated, KEYS].iloc[0].to_dict()
        raise DataError(files, f"the same run, replicate and epoch in several histories, e.g. {first}")
    return frame.drop(columns="_file")


def select_runs(config: Mapping[str, Any], histories: pd.DataFrame, all_runs: bool = False) -> pd.DataFrame:
    """The rows the figure draws: the Table 1 methods, or every run with ``all_runs``.

    Raises:
        DataError: when nothing is left to draw.
    """
    chosen = histories if all_runs else histories[histories["method"].isin(table1_methods(config))]
    if chosen.empty:
        raise DataError("training histories", "no Table 1 method among the histories"
                        + ("" if all_runs else " (--all-runs draws ablation variants and sweep runs)"))
    return chosen


def draw_convergence(config: Mapping[str, Any], histories: pd.DataFrame, all_runs: bool = False):
    """Draw the convergence figure from histories; returns the composed figure (nothing is written)."""
    from matplotlib.ticker import MaxNLocator

    frame = select_runs(config, histories, all_runs)
    methods = run_order(config, frame["method"])
    colours = method_colours(methods)
    datasets = dataset_order(config, frame["dataset"])
    accs = sorted(set(int(a) for a in frame["acceleration"]))
    fig = new_figure(3.4 * len(accs) + 0.5, 2.8 * len(datasets) + 1.3)
    # the legend gets a column of its own, inside the layout, so that it never meets the title
    legend_width = max(text_width(fig, m, SMALL_SIZE) for m in methods) + 0.6
    fig.set_figwidth(fig.get_figwidth() + legend_width)
    grid = fig.add_gridspec(len(datasets), len(accs) + 1, width_ratios=[3.4] * len(accs) + [legend_width])
    axes = np.array([[fig.add_subplot(grid[r, c]) for c in range(len(accs))] for r in range(len(datasets))])
    legend_ax = fig.add_subplot(grid[:, -1])
    legend_ax.axis("off")
    handles = {}
    most_replicates = 1
    for r, dataset in enumerate(datasets):
        for c, acc in enumerate(accs):
            ax = axes[r, c]
            panel = frame[(frame["dataset"] == dataset) & (frame["acceleration"] == acc)]
            if panel.empty:
                ax.set_visible(False)
                continue
            for method in methods:
                rows = panel[panel["method"] == method]
                if rows.empty:
                    continue
                per_epoch = rows.groupby("epoch")["val_psnr"].agg(["mean", "min", "max", "count"])
                replicates = rows["replicate"].nunique()
                most_replicates = max(most_replicates, replicates)
                (line,) = ax.plot(per_epoch.index, per_epoch["mean"], color=colours[method], linewidth=1.3,
                                  marker="o" if len(per_epoch) <= 20 else None, markersize=2.5)
                handles.setdefault(method, line)
                if replicates > 1:
                    ax.fill_between(per_epoch.index, per_epoch["min"], per_epoch["max"], color=colours[method],
                                    alpha=0.2, linewidth=0)
            ax.set_title(f"{dataset} {acc}x", fontsize=LABEL_SIZE)
            ax.set_xlabel("epoch", fontsize=LABEL_SIZE)
            ax.set_ylabel("validation PSNR (dB)", fontsize=LABEL_SIZE)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.tick_params(labelsize=SMALL_SIZE)
            ax.grid(alpha=0.3)
    ordered = [m for m in methods if m in handles]
    legend_ax.legend([handles[m] for m in ordered], ordered, loc="upper left", fontsize=SMALL_SIZE, title="method",
                     title_fontsize=SMALL_SIZE, frameon=False, borderaxespad=0)
    spread = ("line: mean over the replicates of a method, band: min-max across its replicates"
              if most_replicates > 1 else "one trained replicate per method")
    caption = (f"Validation PSNR (mean over the validation volumes, fixed validation masks) after each training "
               f"epoch; {spread}.")
    return compose_figure(fig, config, "Convergence: validation PSNR against training epoch", caption)


def figure_convergence(config: Mapping[str, Any], histories: pd.DataFrame, out: Path, all_runs: bool = False) -> None:
    """Draw the convergence figure (:func:`draw_convergence`) and write ``out`` (PNG) and its PDF."""
    save_figure(draw_convergence(config, histories, all_runs), out)
