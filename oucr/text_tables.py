"""Text renderings of a table: GitHub-flavoured Markdown and booktabs LaTeX.

One renderer for every Markdown or LaTeX table the pipeline writes (Table 1 and 2, the
significance summary, the robustness table, the parameter table), so escaping and
alignment are the same everywhere. Cells are rendered with ``str``: format numbers
before handing the frame over.
"""

from __future__ import annotations

from typing import Any, Optional

import pandas as pd

_ALIGN_RULES = {"l": "---", "r": "---:"}


def to_markdown(frame: pd.DataFrame, align: Optional[str] = None) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency).

    Args:
        frame: the table; its column names are the header.
        align: one letter per column, ``l`` (left, the default) or ``r`` (right).

    Returns:
        The table, one line per row, ending with a newline; a ``|`` inside a cell is escaped.
    """
    cols = list(frame.columns)
    align = align or "l" * len(cols)
    if len(align) != len(cols) or set(align) - set(_ALIGN_RULES):
        raise ValueError(f"align must give l or r for each of the {len(cols)} columns, got {align!r}")
    lines = ["| " + " | ".join(str(c) for c in cols) + " |", "|" + "|".join(_ALIGN_RULES[a] for a in align) + "|"]
    for _, r in frame.iterrows():
        lines.append("| " + " | ".join(str(r[c]).replace("|", "\\|") for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _latex_escape(s: Any) -> str:
    return (str(s).replace("\\", r"\textbackslash{}").replace("&", r"\&").replace("%", r"\%")
            .replace("_", r"\_").replace("#", r"\#").replace("±", r"$\pm$").replace("Δ", r"$\Delta$"))


def to_latex(frame: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs LaTeX table, scaled to the text width.

    Args:
        frame: the table; its column names are the header.
        caption: the caption (escaped like the cells).
        label: the ``\\label`` key, used as given.

    Returns:
        The ``table`` environment, ending with a newline.
    """
    cols = list(frame.columns)
    out = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_latex_escape(caption)}}}", rf"\label{{{label}}}",
           r"\resizebox{\textwidth}{!}{%", r"\begin{tabular}{" + "l" * len(cols) + "}", r"\toprule",
           " & ".join(_latex_escape(c) for c in cols) + r" \\", r"\midrule"]
    for _, r in frame.iterrows():
        out.append(" & ".join(_latex_escape(r[c]) for c in cols) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(out) + "\n"
