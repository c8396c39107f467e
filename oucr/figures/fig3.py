"""Fig. 3: reference, every method's reconstruction and error maps on one test slice.

One block of two rows per dataset x acceleration: the reference and every
reconstruction (grey, magnitude divided by the reference slice's maximum), each
with the slice's PSNR/SSIM under it (the per-slice values of ``oucr evaluate``),
and the error maps ``|reconstruction - reference| / max(reference)`` on one colour
scale per block, clipped at the 99.5th percentile of the zero-filled error.

:func:`read_fig3_panels` reads the files (replicate 0 of every run), :func:`draw_fig3`
draws arrays, :func:`figure3` does both and writes the PNG and PDF.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence

import numpy as np

from oucr.figures.common import (
    LABEL_SIZE,
    SMALL_SIZE,
    compose_figure,
    dataset_order,
    fit_fontsize,
    method_order,
    new_figure,
    save_figure,
    wrap_to_width,
)
from oucr.errors import DataError
from oucr.names import CS, ZERO_FILLED, method_slug

#: percentile of the zero-filled error at which every error map of a block is clipped
ERROR_CLIP_PERCENTILE = 99.5
#: clip (as a fraction of the reference maximum) of a block without a zero-filled reconstruction
FALLBACK_CLIP = 0.1
#: side of one image panel (inches)
PANEL = 1.45
#: gap between the panels of a row, as a fraction of the image width
GAP = 0.06


@dataclass
class MethodSlice:
    """One method's reconstruction of the shown slice and the slice's metrics."""

    method: str
    image: np.ndarray
    psnr: float
    ssim: float


@dataclass
class Fig3Panel:
    """One dataset x acceleration block of Fig. 3.

    Attributes:
        dataset, acceleration: what the block shows.
        volume, slice: the test volume and the slice index within it.
        reference: ``|target|`` of the slice ``(H, W)``.
        methods: reconstructions in column order (the zero-filled one first).
    """

    dataset: str
    acceleration: int
    volume: str
    slice: int
    reference: np.ndarray
    methods: List[MethodSlice] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.reference.ndim != 2:
            raise ValueError(f"the reference slice must be (H, W), got shape {self.reference.shape}")
        for m in self.methods:
            if m.image.shape != self.reference.shape:
                raise ValueError(f"{m.method}: image shape {m.image.shape} differs from the reference's "
                                 f"{self.reference.shape}")

    @property
    def scale(self) -> float:
        """The reference slice's maximum (1 for an all-zero slice)."""
        peak = float(np.max(self.reference))
        return peak if peak > 0 else 1.0

    def error(self, image: np.ndarray) -> np.ndarray:
        """``|image - reference| / max(reference)``."""
        return np.abs(image - self.reference) / self.scale

    @property
    def error_clip(self) -> float:
        """Upper end of the block's error scale: the zero-filled error's 99.5th percentile."""
        for m in self.methods:
            if m.method == ZERO_FILLED:
                clip = float(np.percentile(self.error(m.image), ERROR_CLIP_PERCENTILE))
                if clip > 0:
                    return clip
        return FALLBACK_CLIP


def pick_slice(target: np.ndarray) -> int:
    """The slice with the most signal energy (deterministic)."""
    return int(np.argmax((target.astype(np.float64) ** 2).sum(axis=(1, 2))))


def run_of(method: str) -> str:
    """The results-folder run name of a Fig. 3 column."""
    from oucr import paths

    if method == ZERO_FILLED:
        return paths.ZERO_FILLED_RUN
    if method == CS:
        return paths.CS_RUN
    return method_slug(method)


def read_fig3_panels(config: Mapping[str, Any]) -> List[Fig3Panel]:
    """One panel per dataset x acceleration, read from the results folder (replicate 0).

    The slice is the first test volume's most energetic one (:func:`pick_slice`);
    PSNR/SSIM are :mod:`oucr.metrics`' per-slice values.

    Raises:
        DataError: a store or reconstruction is missing or unreadable, or a store has no test volume.
    """
    from oucr import metrics, paths
    from oucr.data.store import PreparedStore
    from oucr.recon_io import locate_reconstruction, read_reconstruction

    results = Path(config.get("results", "results"))
    chunks = int((config.get("cs") or {}).get("chunks", 1))
    accs = sorted(int(a) for a in config.get("accelerations") or {})
    panels = []
    for dataset in dataset_order(config):
        store = PreparedStore(paths.store_dir(results, dataset))
        if not store.volumes("test"):
            raise DataError(store.root, "the prepared store has no test volume to show")
        volume = store.volumes("test")[0]
        target_vol = np.abs(store.load(volume)["target"]).astype(np.float32)
        s = pick_slice(target_vol)
        for acc in accs:
            shown = []
            for method in method_order(config):
                folders = paths.recon_dirs(results, dataset, acc, run_of(method), replicate=0, cs_chunks=chunks)
                recon_vol, _ = read_reconstruction(locate_reconstruction(folders, volume))
                shown.append(MethodSlice(method, recon_vol[s], float(metrics.psnr_per_slice(target_vol, recon_vol)[s]),
                                         float(metrics.ssim_per_slice(target_vol, recon_vol)[s])))
            panels.append(Fig3Panel(dataset, acc, volume, s, target_vol[s], shown))
    return panels


def _mosaic(images: Sequence[Optional[np.ndarray]], gap: int) -> np.ndarray:
    """The images side by side, ``gap`` columns of NaN between them; ``None`` leaves a NaN cell."""
    height, width = next(i for i in images if i is not None).shape
    row = np.full((height, len(images) * (width + gap) - gap), np.nan)
    for c, image in enumerate(images):
        if image is not None:
            row[:, c * (width + gap) : c * (width + gap) + width] = image
    return row


def draw_fig3(panels: Sequence[Fig3Panel], config: Mapping[str, Any]):
    """Draw Fig. 3 from arrays; returns the composed figure (nothing is written).

    Each row (the images of a block, or its error maps) is one axes showing the
    panels side by side, so the figure stays fast to lay out at any number of methods.

    Raises:
        ValueError: without panels.
    """
    import matplotlib

    if not panels:
        raise ValueError("Fig. 3 needs at least one dataset x acceleration panel")
    ncol = 1 + max(len(p.methods) for p in panels)
    aspect = max(p.reference.shape[0] / p.reference.shape[1] for p in panels)
    fig = new_figure(PANEL * ncol + 1.5, (2 * PANEL * aspect + 1.1) * len(panels) + 1.4)
    axes = fig.subplots(2 * len(panels), 1, squeeze=False)[:, 0]
    grey = matplotlib.colormaps["gray"].with_extremes(bad="white")
    heat = matplotlib.colormaps["inferno"].with_extremes(bad="white")
    headers = []
    for b, panel in enumerate(panels):
        img_ax, err_ax = axes[2 * b], axes[2 * b + 1]
        height, width = panel.reference.shape
        gap = max(1, round(GAP * width))
        clip = panel.error_clip
        blank = [None] * (ncol - 1 - len(panel.methods))
        images = [panel.reference / panel.scale] + [m.image / panel.scale for m in panel.methods] + blank
        errors = [None] + [panel.error(m.image) for m in panel.methods] + blank
        img_ax.imshow(_mosaic(images, gap), cmap=grey, vmin=0, vmax=1, interpolation="nearest")
        err_shown = err_ax.imshow(_mosaic(errors, gap), cmap=heat, vmin=0, vmax=clip, interpolation="nearest")
        names = ["Reference"] + [m.method for m in panel.methods]
        notes = [f"{panel.volume}\nslice {panel.slice}"] + [f"PSNR {m.psnr:.2f} dB\nSSIM {m.ssim:.4f}"
                                                           for m in panel.methods]
        for c, (name, note) in enumerate(zip(names, notes)):
            centre = c * (width + gap) + (width - 1) / 2
            headers.append(img_ax.annotate(name, (centre, -0.5), xytext=(0, 2), textcoords="offset points",
                                           ha="center", va="bottom", fontsize=LABEL_SIZE, annotation_clip=False))
            img_ax.annotate(note, (centre, height - 0.5), xytext=(0, -2), textcoords="offset points", ha="center",
                            va="top", fontsize=SMALL_SIZE, annotation_clip=False)
        img_ax.set_ylabel(f"{panel.dataset}\n{panel.acceleration}x", fontsize=LABEL_SIZE)
        err_ax.set_ylabel("error", fontsize=LABEL_SIZE)
        img_ax.set_anchor("S")  # the spare height of a row goes between blocks, not between images and errors
        err_ax.set_anchor("N")
        for ax in (img_ax, err_ax):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(False)
        # the colour bar is an inset of the error row, so that it is exactly as tall as the images
        mosaic_width = PANEL * ncol
        cax = err_ax.inset_axes([1 + 0.06 / mosaic_width, 0, 0.12 / mosaic_width, 1])
        bar = fig.colorbar(err_shown, cax=cax, extend="max")
        bar.set_label(f"|error| / max(ref)\nclipped at {clip:.3g}", fontsize=SMALL_SIZE)
        bar.ax.tick_params(labelsize=SMALL_SIZE - 1)
    caption = (
        "Grey: magnitude divided by the reference slice's maximum (scale 0 to 1). Error rows: |reconstruction - "
        "reference| / max(reference), one colour scale per dataset x acceleration, clipped at the "
        f"{ERROR_CLIP_PERCENTILE:g}th percentile of the zero-filled error (value in the colour bar label; "
        f"{FALLBACK_CLIP:g} without a zero-filled column). Under each reconstruction: PSNR and SSIM of this slice."
    )
    compose_figure(fig, config, "Fig. 3: reconstructions and error maps, one test slice per dataset "
                                "and acceleration", caption)
    _fit_headers(fig, axes[0::2], headers, ncol)
    return fig


def _fit_headers(fig, image_axes, headers, ncol: int) -> None:
    """Wrap (and, for a word wider than a column, shrink) the column headers to the drawn column pitch.

    The pitch is known only after the layout ran. Wrapping makes the headers taller,
    which can narrow the images a little when the layout reflows, hence the margin.
    """
    fig.draw_without_rendering()  # runs the layout
    pitch = min(ax.get_window_extent().width for ax in image_axes) / ncol / fig.dpi  # inches per column
    room = 0.85 * pitch
    names = [h.get_text() for h in headers]
    size = fit_fontsize(fig, [w for n in names for w in n.split(" ")], room, LABEL_SIZE)
    for header, name in zip(headers, names):
        header.set_text(wrap_to_width(fig, name, size, room))
        header.set_fontsize(size)


def figure3(config: Mapping[str, Any], out: Path) -> None:
    """Read the files (:func:`read_fig3_panels`), draw Fig. 3 and write ``out`` (PNG) and its PDF."""
    save_figure(draw_fig3(read_fig3_panels(config), config), out)
