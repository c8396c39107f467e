"""``oucr params``: parameter counts of the paper configuration against Table 1."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
import yaml

from oucr.cli import main
from oucr.config import load_config
from oucr.errors import ConfigError
from oucr.models.params import parameter_markdown, parameter_table

PAPER_CONFIG = Path(__file__).resolve().parents[1] / "config" / "paper.yaml"

#: Table 1 of the paper, in millions with 3 decimals
PAPER_M = {"UNet": 8.634, "KIKI-Net": 1.790, "Kiu-net": 7.951, "D5C5": 2.237, "PC-RNN": 1.482, "OUCR": 1.192}
#: methods whose configuration reproduces the paper's count to its 3 decimals
ROUNDS_TO_PAPER = ["UNet", "KIKI-Net", "D5C5", "OUCR"]
#: the public Kiu-net (KiU-Net-pytorch arch/ae.py, kiunet) at 84/168/336 with 2 input channels:
#: every defined parameter, and those its forward uses (tests/test_baselines.py derives both
#: from the public layer list)
KIUNET_PUBLIC, KIUNET_USED = 7_953_458, 5_919_314
COLUMNS = ["method", "params", "params_used", "paper_params", "delta_pct"]


@pytest.fixture(scope="module")
def paper_table() -> pd.DataFrame:
    return parameter_table(load_config(PAPER_CONFIG))


def test_rows_follow_the_config(paper_table):
    config = load_config(PAPER_CONFIG)
    assert list(paper_table.columns) == COLUMNS
    assert list(paper_table["method"]) == config["methods"] + config["ablation"]["variants"]


def test_counts_of_the_paper_configuration(paper_table):
    rows = paper_table.set_index("method")
    for method, paper_m in PAPER_M.items():
        paper = round(paper_m * 1e6)
        assert rows.loc[method, "paper_params"] == paper, method
        delta = 100.0 * (rows.loc[method, "params"] - paper) / paper
        assert rows.loc[method, "delta_pct"] == pytest.approx(delta, abs=0.005)
        assert abs(delta) < 1.0, f"{method}: {delta:+.2f} %"  # PC-RNN (no public code) is the loosest
    for method in ROUNDS_TO_PAPER:
        assert round(rows.loc[method, "params"] / 1e6, 3) == PAPER_M[method], method
        assert rows.loc[method, "params_used"] == rows.loc[method, "params"], method
    # Kiu-net: the reference count is the public code's, within 0.1 % of the paper; the used count is smaller
    assert rows.loc["Kiu-net", "params"] == KIUNET_PUBLIC
    assert rows.loc["Kiu-net", "params_used"] == KIUNET_USED
    assert abs(rows.loc["Kiu-net", "delta_pct"]) < 0.1
    assert pd.isna(rows.loc["CS", "params"]) and pd.isna(rows.loc["CS", "params_used"])  # not a network
    assert pd.isna(rows.loc["CS", "paper_params"])
    assert rows.loc["UC-CRNN", "paper_params"] is pd.NA  # the paper gives no count for ablation variants


def test_ablation_variants_are_sums_of_their_modules(paper_table):
    # the paper gives no counts for Table 2; its variants combine the same modules
    n = paper_table.set_index("method")["params"]
    assert n["UC-CRNN + OC-CRNN + RM (OUCR)"] == n["OUCR"]
    assert n["UC-CRNN + OC-CRNN"] == n["UC-CRNN"] + n["OC-CRNN"]
    assert n["UC-CRNN + RM"] - n["UC-CRNN"] == n["OC-CRNN + RM"] - n["OC-CRNN"] > 0  # the same refine module
    # with both branches the refine module's first 3 x 3 convolution takes 4 channels instead of 2
    rm_features = load_config(PAPER_CONFIG)["models"]["OUCR"]["rm_features"]
    assert n["OUCR"] == n["UC-CRNN + OC-CRNN"] + (n["UC-CRNN + RM"] - n["UC-CRNN"]) + 2 * 9 * rm_features


def test_cli_csv_on_stdout(capsys):
    assert main(["params", "--config", str(PAPER_CONFIG)]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(table.columns) == COLUMNS
    rows = table.set_index("method")
    assert rows.loc["OUCR", "paper_params"] == 1_192_000 and rows.loc["Kiu-net", "params"] == KIUNET_PUBLIC
    assert rows.loc["Kiu-net", "params_used"] == KIUNET_USED
    paper = rows.loc["PC-RNN", "paper_params"]
    assert rows.loc["PC-RNN", "delta_pct"] == round(100 * (rows.loc["PC-RNN", "params"] - paper) / paper, 2)
    assert rows.loc["CS"].isna().all()


def test_cli_markdown(capsys):
    assert main(["params", "--config", str(PAPER_CONFIG), "--format", "md"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| Method | Params | Used | Paper | Δ (%) |" and lines[1].startswith("|---")
    # 8,633,666: the paper's U-Net from its layer list (tests/test_baselines.py); -0.004 % prints as +0.00
    assert "| UNet | 8,633,666 | 8,633,666 | 8,634,000 | +0.00 |" in lines
    # the reference count differs from the used count: marked, with a footnote
    assert "| Kiu-net | 7,953,458† | 5,919,314 | 7,951,000 | +0.03 |" in lines
    assert "| CS | - | - | - | - |" in lines
    assert len(lines) == 2 + 7 + 6 + 2 and lines[-2] == ""
    assert lines[-1].startswith("† Params: the count as the method's public reference code counts it")
    assert sum("†" in line for line in lines[2:-2]) == 1  # only Kiu-net is marked


def test_markdown_without_differing_counts_has_no_footnote(tmp_path):
    text = parameter_markdown(parameter_table(load_config(small_config(tmp_path))))
    assert "†" not in text and text.endswith("|\n")


def test_cli_out_file(tmp_path):
    out = tmp_path / "tables" / "params.csv"
    assert main(["params", "--config", str(PAPER_CONFIG), "--out", str(out)]) == 0
    assert pd.read_csv(out).set_index("method").loc["D5C5", "params"] == 2_237_450


def small_config(tmp_path: Path, **sections) -> Path:
    config = {"methods": ["CS", "D5C5"], "ablation": {"variants": []},
              "models": {"D5C5": {"features": 4, "convs": 2, "cascades": 1}}}
    config.update(sections)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_config_widths_are_used(tmp_path):
    rows = parameter_table(load_config(small_config(tmp_path))).set_index("method")
    assert rows.loc["D5C5", "params"] == rows.loc["D5C5", "params_used"] == 2 * 4 * 9 + 4 + 4 * 2 * 9 + 2


def test_unknown_method_is_a_config_error_with_exit_status_2(tmp_path, capsys):
    path = small_config(tmp_path, methods=["UNet", "VarNet"])
    with pytest.raises(ConfigError, match="unknown method 'VarNet'"):
        parameter_table(load_config(path))
    assert main(["params", "--config", str(path)]) == 2
    assert "unknown method 'VarNet'" in capsys.readouterr().err


def test_rejected_widths_are_config_errors(tmp_path):
    path = small_config(tmp_path, models={"D5C5": {"cascades": 0}})
    with pytest.raises(ConfigError, match="models.D5C5"):
        parameter_table(load_config(path))
    path = small_config(tmp_path, models={"D5C5": {"channels": 4}})
    with pytest.raises(ConfigError, match="D5C5"):
        parameter_table(load_config(path))
