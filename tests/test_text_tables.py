"""The one Markdown / LaTeX renderer of every table the pipeline writes."""

import pandas as pd
import pytest

from oucr.text_tables import to_latex, to_markdown


def test_markdown_escapes_pipes_and_renders_cells_as_text():
    frame = pd.DataFrame({"Method": ["OUCR", "A_B"], "PSNR": ["39.33 ± 1.00", "x|y"], "x%": [1, "-"]})
    assert to_markdown(frame) == ("| Method | PSNR | x% |\n|---|---|---|\n| OUCR | 39.33 ± 1.00 | 1 |\n"
                                  "| A_B | x\\|y | - |\n")


def test_markdown_alignment_per_column():
    frame = pd.DataFrame({"Method": ["UNet"], "Params": ["1,000"], "Δ (%)": ["+0.10"]})
    assert to_markdown(frame, align="lrr").splitlines()[1] == "|---|---:|---:|"
    assert to_markdown(frame, align="lrl").splitlines()[1] == "|---|---:|---|"
    for bad in ("lr", "lrrr", "lrc"):
        with pytest.raises(ValueError, match="l or r for each of the 3 columns"):
            to_markdown(frame, align=bad)


def test_markdown_of_an_empty_table_is_its_header():
    assert to_markdown(pd.DataFrame(columns=["a", "b"])) == "| a | b |\n|---|---|\n"


def test_latex_escapes_and_wraps_in_booktabs():
    frame = pd.DataFrame({"Method": ["OUCR", "A_B"], "PSNR": ["39.33 ± 1.00", "1 & 2"], "x%": [1, "#Δ\\"]})
    assert to_latex(frame, "Cap_1 50%", "tab:x") == "\n".join([
        r"\begin{table}[t]", r"\centering", r"\caption{Cap\_1 50\%}", r"\label{tab:x}",
        r"\resizebox{\textwidth}{!}{%", r"\begin{tabular}{lll}", r"\toprule", r"Method & PSNR & x\% \\", r"\midrule",
        r"OUCR & 39.33 $\pm$ 1.00 & 1 \\", r"A\_B & 1 \& 2 & \#$\Delta$\textbackslash{} \\",
        r"\bottomrule", r"\end{tabular}}", r"\end{table}"]) + "\n"
