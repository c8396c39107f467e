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
from oucr.models.params import parameter_table

PAPER_CONFIG = Path(__file__).resolve().parents[1] / "config" / "paper.yaml"

EXACT = {
    "UNet": 8_633_666, "KIKI-Net": 1_789_960, "D5C5": 2_237_450, "OUCR": 1_191_560,
    # the OUCR ablation variants (Table 2) at OUCR's widths
    "UC-CRNN": 890_243, "UC-CRNN + RM": 966_469, "OC-CRNN": 223_939, "OC-CRNN + RM": 300_165,
    "UC-CRNN + OC-CRNN": 1_114_182, "UC-CRNN + OC-CRNN + RM (OUCR)": 1_191_560,
}
PAPER = {"UNet": 8_634_000, "KIKI-Net": 1_790_000, "Kiu-net": 7_951_000, "D5C5": 2_237_000,
         "PC-RNN": 1_482_000, "OUCR": 1_192_000}


@pytest.fixture(scope="module")
def paper_table() -> pd.DataFrame:
    return parameter_table(load_config(PAPER_CONFIG))


def test_rows_follow_the_config(paper_table):
    config = load_config(PAPER_CONFIG)
    assert list(paper_table.columns) == ["method", "params", "paper_params", "delta_pct"]
    assert list(paper_table["method"]) == config["methods"] + config["ablation"]["variants"]


def test_counts_of_the_paper_configuration(paper_table):
    rows = paper_table.set_index("method")
    for method, count in EXACT.items():
        assert rows.loc[method, "params"] == count, method
    for method, paper in PAPER.items():
        assert rows.loc[method, "paper_params"] == paper, method
        delta = 100.0 * (rows.loc[method, "params"] - paper) / paper
        assert abs(delta) < 1.0, f"{method}: {delta:+.2f} %"
        assert rows.loc[method, "delta_pct"] == pytest.approx(delta, abs=0.005)
    assert pd.isna(rows.loc["CS", "params"]) and pd.isna(rows.loc["CS", "paper_params"])  # not a network
    assert rows.loc["UC-CRNN", "paper_params"] is pd.NA  # the paper gives no count for ablation variants


def test_cli_csv_on_stdout(capsys):
    assert main(["params", "--config", str(PAPER_CONFIG)]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(table.columns) == ["method", "params", "paper_params", "delta_pct"]
    rows = table.set_index("method")
    assert rows.loc["UNet", "params"] == 8_633_666 and rows.loc["OUCR", "paper_params"] == 1_192_000
    assert rows.loc["PC-RNN", "delta_pct"] == -0.92
    assert rows.loc["CS"].isna().all()


def test_cli_markdown(capsys):
    assert main(["params", "--config", str(PAPER_CONFIG), "--format", "md"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| Method | Params | Paper |") and lines[1].startswith("|---")
    assert "| UNet | 8,633,666 | 8,634,000 | +0.00 |" in lines
    assert "| Kiu-net | 7,889,978 | 7,951,000 | -0.77 |" in lines
    assert "| CS | - | - | - |" in lines
    assert len(lines) == 2 + 7 + 6


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
    table = parameter_table(load_config(small_config(tmp_path)))
    assert table.set_index("method").loc["D5C5", "params"] == 2 * 4 * 9 + 4 + 4 * 2 * 9 + 2


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
