"""PSNR and SSIM of OUCR against the number of CRNN iterations J (the J sweep).

Each point is the mean over the test volumes. Its error bar is the SD over the test
volumes when J has one trained replicate; when J has several replicates (a
``replicate`` column with more than one value), the point is the mean of the
per-replicate means and the error bar the SD across replicates of those means,
which is the run-to-run spread rather than the spread of the volumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from oucr.errors import DataError
from oucr.figures.common import LABEL_SIZE, SMALL_SIZE, compose_figure, new_figure, save_figure
from oucr.names import sweep_iterations

METRICS = ("psnr", "ssim")


def iterations_summary(config: Mapping[str, Any], volumes: pd.DataFrame) -> pd.DataFrame:
    """Mean and SD per J of the per-volume metrics of the sweep runs.

    Returns:
        one row per J (sorted): ``J, psnr, psnr_sd, ssim, ssim_sd, volumes, replicates, sd_over``
        with ``sd_over`` ``"volumes"`` or ``"replicates"`` (module docstring).

    Raises:
        DataError: a method is neither OUCR nor an ``OUCR J=<n>`` sweep run.
    """
    default_j = int(((config.get("models") or {}).get("OUCR") or {}).get("iterations", 5))

    def iterations_of(method: str) -> int:
        try:
            return sweep_iterations(method, default_j)
        except ValueError as err:
            raise DataError("iteration sweep metrics", f"unexpected method {method!r}") from err

    frame = volumes.assign(J=volumes["method"].map(iterations_of))
    if "replicate" not in frame.columns:
        frame = frame.assign(replicate=0)
    rows = []
    for j, group in frame.groupby("J", sort=True):
        per_replicate = group.groupby("replicate")[list(METRICS)].mean()
        row = {"J": int(j), "volumes": int(group["volume"].nunique()) if "volume" in group else len(group),
               "replicates": len(per_replicate)}
        source = per_replicate if len(per_replicate) > 1 else group
        row["sd_over"] = "replicates" if len(per_replicate) > 1 else "volumes"
        for metric in METRICS:
            row[metric] = float(source[metric].mean())
            row[f"{metric}_sd"] = float(source[metric].std())
        rows.append(row)
    return pd.DataFrame(rows, columns=["J", "psnr", "psnr_sd", "ssim", "ssim_sd", "volumes", "replicates",
                                       "sd_over"])


def error_bar_caption(summary: pd.DataFrame) -> str:
    """What the points and error bars of the iterations figure are, in words."""
    volumes = ", ".join(str(n) for n in sorted(set(summary["volumes"])))
    by_reps = summary[summary["sd_over"] == "replicates"]
    by_volumes = summary[summary["sd_over"] == "volumes"]
    reps = ", ".join(str(n) for n in sorted(set(by_reps["replicates"])))
    across = f"SD across the {reps} trained replicates of the per-replicate mean over the {volumes} test volumes"
    over = f"SD over the {volumes} test volumes"
    if by_volumes.empty:
        bars = across
    elif by_reps.empty:
        bars = over
    else:
        bars = (f"J = {', '.join(map(str, by_reps['J']))}: {across}; J = {', '.join(map(str, by_volumes['J']))} "
                f"(one replicate each): {over}")
    return f"Points: mean over the test volumes. Error bars: {bars}."


def draw_iterations(config: Mapping[str, Any], volumes: pd.DataFrame):
    """Draw the iterations figure from per-volume metrics; returns the composed figure."""
    summary = iterations_summary(config, volumes)
    fig = new_figure(8, 3.6)
    axes = fig.subplots(1, 2)
    labels = {"psnr": "PSNR (dB), mean ± SD", "ssim": "SSIM, mean ± SD"}
    for ax, metric, colour in zip(axes, METRICS, ("C0", "C1")):
        ax.errorbar(summary["J"], summary[metric], yerr=summary[f"{metric}_sd"], marker="o", capsize=3,
                    color=colour)
        ax.set_xlabel("CRNN iterations J", fontsize=LABEL_SIZE)
        ax.set_ylabel(labels[metric], fontsize=LABEL_SIZE)
        ax.set_xticks(summary["J"])
        ax.tick_params(labelsize=SMALL_SIZE)
        ax.grid(alpha=0.3)
    ds = ", ".join(sorted(set(volumes["dataset"]))) if "dataset" in volumes else ""
    acc = ", ".join(f"{a}x" for a in sorted(set(volumes["acceleration"]))) if "acceleration" in volumes else ""
    where = f" ({ds}, {acc})" if ds else ""
    return compose_figure(fig, config, f"OUCR: effect of the number of iterations{where}", error_bar_caption(summary))


def figure_iterations(config: Mapping[str, Any], volumes: pd.DataFrame, out: Path) -> None:
    """Draw the iterations figure (:func:`draw_iterations`) and write ``out`` (PNG) and its PDF."""
    save_figure(draw_iterations(config, volumes), out)
