"""What every figure shares: the Agg backend, the finisher, text fitting, orders and colours.

Layout rule of the figures: every figure is drawn with matplotlib's constrained
layout, which keeps the title, the axis decorations, the colour bars, a figure
legend and the caption line (drawn as the figure's ``supxlabel``) clear of each
other. Text that constrained layout cannot move out of the way (column headers
wider than their column, a title wider than the figure) is wrapped here to the
width it has, measured with the renderer, not guessed from character counts.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional, Sequence

from oucr.io import atomic_path
from oucr.names import ABLATION_VARIANTS, TABLE1_METHODS, ZERO_FILLED

#: label appended to every title of a figure drawn from a demo configuration
DEMO_LABEL = "[DEMO numbers: not comparable with the paper]"
#: font sizes (points): title, panel titles and axis labels, annotations and ticks, caption
TITLE_SIZE = 10
LABEL_SIZE = 8
SMALL_SIZE = 7
CAPTION_SIZE = 7
#: resolution at which text widths are measured (widths in inches do not depend on it)
MEASURE_DPI = 100


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (figures are files only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def new_figure(width: float, height: float):
    """An empty figure of ``width`` x ``height`` inches with constrained layout."""
    return pyplot().figure(figsize=(width, height), layout="constrained")


def save_figure(fig, png: Path) -> None:
    """Write ``png`` and the PDF beside it, atomically, and close the figure."""
    png = Path(png)
    for path in (png, png.with_suffix(".pdf")):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:], dpi=150, bbox_inches="tight")
    pyplot().close(fig)


def compose_figure(fig, config: Mapping[str, Any], title: str, caption: Optional[str] = None):
    """Title (labelled DEMO when the config says so), caption line and layout engine.

    Args:
        fig: the drawn figure.
        config: the run's configuration (``demo`` is read).
        title: the figure title; wrapped to the figure's width.
        caption: text drawn under the panels (what the scales and error bars are);
            wrapped to the figure's width.

    Returns:
        ``fig``, ready for :func:`save_figure`.
    """
    if fig.get_layout_engine() is None:
        fig.set_layout_engine("constrained")
    if config.get("demo"):
        title = f"{title}  {DEMO_LABEL}"
    width = 0.96 * fig.get_figwidth()
    fig.suptitle(wrap_to_width(fig, title, TITLE_SIZE, width), fontsize=TITLE_SIZE)
    if caption:
        fig.supxlabel(wrap_to_width(fig, caption, CAPTION_SIZE, width), fontsize=CAPTION_SIZE,
                      ha="left", x=0.02, multialignment="left")
    return fig


def finish_figure(fig, config: Mapping[str, Any], title: str, png: Path, caption: Optional[str] = None) -> None:
    """Title, caption, layout, and the PNG + PDF files (:func:`compose_figure`, :func:`save_figure`)."""
    save_figure(compose_figure(fig, config, title, caption), png)


@functools.lru_cache(maxsize=4096)
def _word_width(word: str, fontsize: float) -> float:
    """Width in inches of ``word`` (no spaces) at ``fontsize`` points, as the Agg renderer draws it."""
    from matplotlib.font_manager import FontProperties

    width, _, _ = _renderer().get_text_width_height_descent(word, FontProperties(size=fontsize), ismath=False)
    return width / MEASURE_DPI


@functools.lru_cache(maxsize=1)
def _renderer():
    from matplotlib.backends.backend_agg import RendererAgg

    return RendererAgg(8, 8, MEASURE_DPI)


def text_width(fig, text: str, fontsize: float) -> float:
    """Width in inches of one line of ``text`` at ``fontsize`` points (``fig`` is kept for the signature).

    The sum of the words' and spaces' widths with a small allowance for rounding
    (measuring each candidate line anew is slow for long captions).
    """
    words = text.split(" ")
    space = _word_width("a a", fontsize) - _word_width("aa", fontsize)
    return 1.02 * (sum(_word_width(w, fontsize) for w in words if w) + space * (len(words) - 1))


def wrap_to_width(fig, text: str, fontsize: float, width: float) -> str:
    """``text`` with line breaks between words so that every line fits ``width`` inches.

    Existing line breaks are kept; a single word wider than ``width`` keeps a line of its own.
    """
    lines: List[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if line and text_width(fig, candidate, fontsize) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return "\n".join(lines)


def fit_fontsize(fig, texts: Iterable[str], width: float, largest: float, smallest: float = 5.0) -> float:
    """The largest font size (half-point steps, at least ``smallest``) at which every line fits ``width``."""
    lines = [line for t in texts for line in t.split("\n")]
    size = largest
    while size > smallest and any(text_width(fig, line, size) > width for line in lines):
        size -= 0.5
    return size


# Orders and colours ---------------------------------------------------------------------------


def dataset_order(config: Mapping[str, Any], present: Optional[Iterable[str]] = None) -> List[str]:
    """Datasets in the order the figures show them.

    ``config["figures"]["dataset_order"]`` first (names it lists that are neither
    configured nor present are skipped), then the other configured datasets in the
    config's order, then, when ``present`` is given, any other present dataset
    (sorted). With ``present``, only present datasets are returned.
    """
    configured = list(config.get("datasets") or {})
    listed = list(((config.get("figures") or {}).get("dataset_order")) or [])
    present_list = None if present is None else list(dict.fromkeys(present))
    known = configured + ([] if present_list is None else sorted(set(present_list) - set(configured)))
    order = [d for d in listed if d in known] + known
    order = list(dict.fromkeys(order))
    if present_list is not None:
        order = [d for d in order if d in set(present_list)]
    return order


def method_order(config: Mapping[str, Any]) -> List[str]:
    """The zero-filled reference, then the config's Table 1 methods in the config's order."""
    return [ZERO_FILLED] + list(config.get("methods") or [])


def table1_methods(config: Mapping[str, Any]) -> List[str]:
    """The Table 1 methods of the config (the paper's when the config names none)."""
    return list(config.get("methods") or TABLE1_METHODS)


def run_order(config: Mapping[str, Any], present: Iterable[str]) -> List[str]:
    """``present`` method names ordered: Table 1, ablation variants, J sweep (by J), the rest sorted."""
    from oucr.names import sweep_iterations

    present = list(dict.fromkeys(present))

    def key(name: str):
        t1 = table1_methods(config)
        if name in t1:
            return (0, t1.index(name), "")
        if name in ABLATION_VARIANTS:
            return (1, ABLATION_VARIANTS.index(name), "")
        try:
            return (2, sweep_iterations(name, default=0), "")
        except ValueError:
            return (3, 0, name)

    return sorted(present, key=key)


def method_colours(methods: Sequence[str]) -> dict:
    """One colour per method, the same in every panel of a figure."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(methods) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(methods)}
