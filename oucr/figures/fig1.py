"""Fig. 1c/d: recurrent-cell outputs and effective receptive fields of the UC and OC branches.

Drawn from the files of ``oucr inspect`` (:mod:`oucr.models.inspect` describes them,
:mod:`oucr.engine.inspect` reads them).
One row per branch: the zero-filled input; the effective receptive field (ERF,
``|∂ centre output / ∂ input|`` normalised to unit mass, shown divided by its
maximum, with circles at the radius holding 95 % of the mass for the trained and
the freshly initialised weights); the cell output ``cell(h_{J-1})`` at the last
iteration J for the channels with the largest spatial SD, each scaled to its own
min-max range (one colour bar per row states that scale).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import numpy as np
import pandas as pd

from oucr.errors import DataError
from oucr.figures.common import LABEL_SIZE, SMALL_SIZE, compose_figure, new_figure, save_figure, wrap_to_width

BRANCH_NAMES = {"uc": "UC-CRNN\n(undercomplete)", "oc": "OC-CRNN\n(overcomplete)"}
#: side of one panel (inches)
PANEL = 1.55


def _unit_range(image: np.ndarray) -> np.ndarray:
    """``image`` mapped linearly onto [0, 1] (a constant image onto 0)."""
    low, high = float(np.min(image)), float(np.max(image))
    return (image - low) / (high - low) if high > low else np.zeros_like(image, dtype=np.float64)


def _radii(rf: pd.DataFrame, branch: str) -> Dict[str, float]:
    """``{init: radius}`` of the branch's rows with the fewest unrolled iterations."""
    rows = rf[rf["branch"] == branch]
    if rows.empty:
        return {}
    rows = rows[rows["iterations"] == rows["iterations"].min()]
    return {str(r.init): float(r.radius) for r in rows.itertuples()}


def draw_fig1(config: Mapping[str, Any], maps: Mapping[str, np.ndarray], rf: pd.DataFrame,
              attrs: Optional[Mapping[str, Any]] = None):
    """Draw Fig. 1c/d from the feature arrays and the receptive-field table; returns the composed figure.

    Args:
        config: the run's configuration (``demo``).
        maps: the arrays of a features file (``input``, ``<b>``, optionally ``<b>_erf``, ``<b>_channels``).
        rf: the receptive-field table (``branch, init, iterations, radius``, optionally ``extent``, ``fraction``).
        attrs: the features file's attributes (``iterations`` J is shown when present).

    Raises:
        ValueError: when ``maps`` holds no branch.
    """
    attrs = attrs or {}
    branches = [b for b in ("uc", "oc") if b in maps]
    if not branches:
        raise ValueError("the feature maps hold neither an 'uc' nor an 'oc' branch")
    n = max(maps[b].shape[0] for b in branches)
    fig = new_figure(PANEL * (n + 2) + 1.8, (PANEL + 1.0) * len(branches) + 1.5)
    axes = fig.subplots(len(branches), n + 2, squeeze=False)
    # one window for every branch's receptive-field map, so that their sizes compare directly
    half = int(rf["extent"].max()) + 3 if "extent" in rf and len(rf) else 10
    fraction = float(rf["fraction"].iloc[0]) if "fraction" in rf and len(rf) else 0.95
    j = attrs.get("iterations")
    last = f"J = {int(j)}" if j is not None else "J"
    width = 0.95 * PANEL
    for r, b in enumerate(branches):
        row = axes[r]
        row[0].imshow(maps["input"], cmap="gray")
        row[0].set_title(wrap_to_width(fig, "zero-filled input (normalised)", SMALL_SIZE, width), fontsize=SMALL_SIZE)
        row[0].set_ylabel(BRANCH_NAMES[b], fontsize=LABEL_SIZE)
        erf = maps.get(f"{b}_erf")
        radii = _radii(rf, b)
        if erf is not None:
            c, h = erf.shape[0] // 2, min(half, erf.shape[0] // 2)
            window = erf[c - h : c + h + 1, c - h : c + h + 1]
            peak = float(window.max()) or 1.0
            shown = row[1].imshow(window / peak, cmap="magma", vmin=0, vmax=1)
            for init, style in (("trained", "-"), ("fresh", "--")):
                if init in radii:
                    row[1].add_patch(_circle((h, h), radii[init], style))
            stated = ", ".join(f"{init} {radius:.1f} px" for init, radius in radii.items())
            title = (f"ERF: normalised |∂ centre output / ∂ input|; radius holding {100 * fraction:g} % "
                     f"of the mass: {stated or 'not measured'}")
            row[1].set_title(wrap_to_width(fig, title, SMALL_SIZE, width), fontsize=SMALL_SIZE)
            bar = fig.colorbar(shown, ax=row[1], location="bottom", fraction=0.05, pad=0.02, aspect=15)
            bar.set_label("ERF / its max", fontsize=SMALL_SIZE)
            bar.ax.tick_params(labelsize=SMALL_SIZE - 1)
        else:
            row[1].axis("off")
        channels = maps.get(f"{b}_channels")
        cells = None
        for k in range(n):
            ax = row[k + 2]
            if k < maps[b].shape[0]:
                cell = maps[b][k]
                cells = ax.imshow(_unit_range(cell), cmap="viridis", vmin=0, vmax=1)
                channel = int(channels[k]) if channels is not None and k < len(channels) else k
                title = (f"cell output, last iteration ({last}): channel {channel}, one of the "
                         f"{maps[b].shape[0]} strongest ({cell.shape[0]}x{cell.shape[1]} px)")
                ax.set_title(wrap_to_width(fig, title, SMALL_SIZE, width), fontsize=SMALL_SIZE)
            else:
                ax.axis("off")
        if cells is not None:
            bar = fig.colorbar(cells, ax=list(row[2:]), location="right", fraction=0.02, pad=0.01, aspect=12)
            bar.set_label("cell output,\nmin-max per channel", fontsize=SMALL_SIZE)
            bar.ax.tick_params(labelsize=SMALL_SIZE - 1)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    caption = (
        "Cell output: the residual-block output cell(h_{J-1}) of the branch at the last iteration J, the channels "
        "with the largest spatial SD (strongest), each scaled to its own min-max. ERF: |∂ centre output / "
        "∂ input| of the "
        "branch without data consistency, normalised to unit mass and shown divided by its maximum; circles: "
        f"radius holding {100 * fraction:g} % of the mass (solid: trained weights, dashed: fresh initialisations)."
    )
    return compose_figure(fig, config, "Fig. 1c/d: recurrent-cell outputs and effective receptive fields of the "
                                       "two branches", caption)


def _circle(centre, radius: float, style: str):
    from matplotlib.patches import Circle

    return Circle(centre, radius, fill=False, linestyle=style, linewidth=1.0, edgecolor="cyan")


def read_receptive_fields(path: Path) -> pd.DataFrame:
    """The receptive-field table of ``oucr inspect`` (CSV, or JSON records for ``.json``).

    Raises:
        DataError: missing, unreadable, or lacking ``branch, init, iterations, radius``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "receptive-field table does not exist; run `oucr inspect`")
    try:
        table = pd.read_json(path) if path.suffix.lower() == ".json" else pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(path, f"unreadable receptive-field table ({err})") from err
    missing = [c for c in ("branch", "init", "iterations", "radius") if c not in table.columns]
    if missing:
        raise DataError(path, f"receptive-field table lacks column(s) {', '.join(missing)}")
    return table


def read_feature_attrs(path: Path) -> Dict[str, Any]:
    """The attributes of a features file (``iterations``, ``volume``, ...)."""
    from oucr.io import decoded_attrs, open_hdf5

    with open_hdf5(Path(path), "feature-map file", "; run `oucr inspect`") as f:
        return decoded_attrs(f)


def figure1(config: Mapping[str, Any], features: Path, receptive_field: Path, out: Path) -> None:
    """Read the files of ``oucr inspect``, draw Fig. 1c/d (:func:`draw_fig1`), write ``out`` and its PDF."""
    from oucr.inspect_files import read_features

    maps = read_features(features, everything=True)
    save_figure(draw_fig1(config, maps, read_receptive_fields(receptive_field), read_feature_attrs(features)), out)
