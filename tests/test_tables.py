"""``oucr tables``: aggregation, the paper comparison, costs, formatting and the written table files."""

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from oucr import tables
from oucr.errors import ConfigError, DataError
from oucr.names import OUCR_FULL
from oucr.tables import (
    DEMO_NOTE,
    PARAMS_FOOTNOTE,
    TABLE1_COLUMNS,
    dataset_order,
    fmt_mean_sd,
    fmt_params,
    paper_label,
    paper_reference,
    paper_shaped,
    paper_value,
    read_costs,
    replicate_spread,
    summarise,
    table1,
    table2,
)

BRAIN = {"paper_dataset": "HPKS", "stand_in": True, "format": "magnitude"}
KNEE = {"paper_dataset": "fastMRI", "format": "fastmri"}
OWN = {"paper_dataset": "none", "format": "magnitude"}


def per_volume_rows(method, dataset, acc, values, replicate=None, ssim=None, realised=None):
    """Rows of one method: ``values[v]`` is the PSNR of volume ``v{v}``."""
    n = len(values)
    frame = pd.DataFrame({"method": method, "dataset": dataset, "acceleration": acc,
                          "volume": [f"v{i}" for i in range(n)], "psnr": np.asarray(values, float),
                          "ssim": np.asarray(ssim if ssim is not None else [0.9] * n, float)})
    if replicate is not None:
        frame["replicate"] = replicate
    if realised is not None:
        frame["realised_acceleration"] = np.asarray(realised, float)
    return frame


# ----------------------------------------------------------------------------- summarise

def test_summarise_mean_sd_and_n_of_one_replicate():
    frame = per_volume_rows("UNet", "b", 4, [30.0, 32.0, 34.0], ssim=[0.8, 0.9, 1.0], realised=[4.0, 5.0, 6.0])
    out = summarise(frame)
    assert len(out) == 1
    row = out.iloc[0]
    assert (row["method"], row["dataset"], row["acceleration"]) == ("UNet", "b", 4)
    assert row["n_volumes"] == 3 and row["n_replicates"] == 1
    assert row["psnr_mean"] == pytest.approx(32.0) and row["psnr_sd"] == pytest.approx(2.0)  # SD with ddof 1
    assert row["ssim_mean"] == pytest.approx(0.9) and row["ssim_sd"] == pytest.approx(0.1)
    assert np.isnan(row["psnr_rep_sd"]) and np.isnan(row["ssim_rep_sd"])  # one replicate: no spread
    assert row["realised_acceleration"] == pytest.approx(5.0)
    assert "nmse_mean" not in out.columns  # only the metrics present
    assert "replicate" not in frame.columns  # the input is not modified


def test_summarise_averages_replicates_of_per_volume_means():
    # replicate 0: v0 30, v1 34 (mean 32); replicate 1: v0 32, v1 40 (mean 36)
    frame = pd.concat([per_volume_rows("OUCR", "b", 4, [30.0, 34.0], replicate=0),
                       per_volume_rows("OUCR", "b", 4, [32.0, 40.0], replicate=1)], ignore_index=True)
    row = summarise(frame).iloc[0]
    assert row["n_volumes"] == 2 and row["n_replicates"] == 2
    assert row["psnr_mean"] == pytest.approx(34.0)  # mean of replicate means 32 and 36
    assert row["psnr_rep_sd"] == pytest.approx(np.std([32.0, 36.0], ddof=1))
    # SD over volumes of the replicate-averaged values 31 and 37
    assert row["psnr_sd"] == pytest.approx(np.std([31.0, 37.0], ddof=1))


def test_summarise_weights_replicates_not_rows_and_counts_each_volume_once():
    # replicate 1 covers only v0: a mean over rows would weigh it less than a mean of replicate means
    frame = pd.concat([per_volume_rows("OUCR", "b", 4, [30.0, 34.0], replicate=0, realised=[4.0, 5.0]),
                       per_volume_rows("OUCR", "b", 4, [40.0], replicate=1, realised=[4.0])], ignore_index=True)
    row = summarise(frame).iloc[0]
    assert row["psnr_mean"] == pytest.approx((32.0 + 40.0) / 2)
    assert row["psnr_sd"] == pytest.approx(np.std([35.0, 34.0], ddof=1))  # per volume: v0 (30+40)/2, v1 34
    assert row["realised_acceleration"] == pytest.approx(4.5)  # v0 counted once, not once per replicate
    assert row["n_volumes"] == 2 and row["n_replicates"] == 2


def test_summarise_keeps_first_appearance_order_and_separates_groups():
    frame = pd.concat([per_volume_rows("UNet", "knee", 8, [20.0, 22.0]),
                       per_volume_rows("CS", "knee", 8, [18.0, 18.0]),
                       per_volume_rows("UNet", "brain", 4, [30.0, 31.0])], ignore_index=True)
    out = summarise(frame)
    assert list(zip(out["method"], out["dataset"], out["acceleration"])) == [
        ("UNet", "knee", 8), ("CS", "knee", 8), ("UNet", "brain", 4)]
    assert list(out["psnr_mean"]) == pytest.approx([21.0, 18.0, 30.5])
    assert out["realised_acceleration"].isna().all()  # not recorded: NaN
    assert out.loc[1, "psnr_sd"] == 0.0


def test_summarise_of_a_single_volume_has_no_sd():
    row = summarise(per_volume_rows("UNet", "b", 4, [30.0])).iloc[0]
    assert row["psnr_mean"] == 30.0 and np.isnan(row["psnr_sd"]) and row["n_volumes"] == 1


def test_summarise_two_volumes_have_an_sd():
    row = summarise(per_volume_rows("UNet", "b", 4, [30.0, 31.0], replicate=[3, 3])).iloc[0]
    assert row["psnr_sd"] == pytest.approx(np.std([30.0, 31.0], ddof=1))
    assert row["n_replicates"] == 1


# ----------------------------------------------------------------------------- paper comparison

def test_paper_values_are_the_papers_table():
    assert paper_value("table1", "OUCR", "HPKS", 4, "psnr") == 39.33
    assert paper_value("table1", "OUCR", "HPKS", 4, "ssim") == 0.9747
    assert paper_value("table1", "OUCR", "HPKS", 8, "psnr") == 32.14
    assert paper_value("table1", "OUCR", "fastMRI", 4, "psnr") == 32.61
    assert paper_value("table1", "UNet", "fastMRI", 8, "ssim") == 0.6424
    assert paper_value("table2", "UC-CRNN", "HPKS", 4, "psnr") == 37.87
    assert np.isnan(paper_value("table1", "Zero-filled", "HPKS", 4, "psnr"))  # the paper has none
    assert np.isnan(paper_value("table2", "UC-CRNN", "HPKS", 8, "psnr"))
    assert np.isnan(paper_value("table1", "OUCR", None, 4, "psnr"))  # no paper column applies


def test_paper_reference_rules():
    assert paper_reference({"format": "fastmri"}, "d") is None
    for none in ("none", "", None):
        assert paper_reference({"paper_dataset": none, "format": "magnitude"}, "d") is None
    assert paper_reference(KNEE, "knee") == "fastMRI"  # the paper's own data
    assert paper_reference(BRAIN, "brain") == "HPKS"  # declared a stand-in
    assert paper_reference({**KNEE, "format": "magnitude", "stand_in": True}, "k") == "fastMRI"
    expected = ("datasets.brain: paper_dataset 'HPKS' on magnitude data is compared with the paper only when "
                "declared `stand_in: true` (HPKS is private: any other data merely stands in for it); or set "
                "paper_dataset: none")
    with pytest.raises(ConfigError) as err:
        paper_reference({"paper_dataset": "HPKS", "format": "magnitude"}, "brain")
    assert str(err.value) == expected
    with pytest.raises(ConfigError, match="stand_in: true"):
        paper_reference({"paper_dataset": "HPKS", "format": "fastmri"}, "b")  # HPKS is never own data
    with pytest.raises(ConfigError, match="'fastMRI' on magnitude data"):
        paper_reference({"paper_dataset": "fastMRI", "format": "magnitude"}, "k")
    with pytest.raises(ConfigError, match="stand_in"):
        paper_reference({"paper_dataset": "fastMRI", "format": "magnitude", "stand_in": False}, "k")


def test_table1_refuses_an_undeclared_stand_in_naming_the_dataset():
    config = _config(datasets={"brain": {"paper_dataset": "HPKS", "format": "magnitude"}}, accelerations={4: {}},
                     figures={})
    with pytest.raises(ConfigError, match=r"^datasets\.brain: paper_dataset 'HPKS' on magnitude data"):
        tables.table1(config, pd.DataFrame(per_volume_rows("OUCR", "brain", 4, [30.0])), None)


def test_paper_labels():
    assert paper_label(OWN, "own") == ""
    assert paper_label(KNEE, "knee") == "paper (fastMRI)"
    assert paper_label(BRAIN, "brain") == "paper (stand-in for HPKS)"
    assert paper_label({**KNEE, "stand_in": True}, "knee") == "paper (stand-in for fastMRI)"
    assert paper_label({**KNEE, "format": "magnitude", "stand_in": True}, "knee") == "paper (stand-in for fastMRI)"
    with pytest.raises(ConfigError):
        paper_label({"paper_dataset": "HPKS", "format": "magnitude"}, "brain")


def test_dataset_order():
    config = {"datasets": {"a": {}, "b": {}, "c": {}}, "figures": {"dataset_order": ["c", "x", "a"]}}
    assert dataset_order(config) == ["c", "a", "b"]  # unconfigured names are ignored
    assert dataset_order({"datasets": {"b": {}, "a": {}}}) == ["b", "a"]
    assert dataset_order({"datasets": {"b": {}, "a": {}}, "figures": {}}) == ["b", "a"]
    assert dataset_order({"datasets": {"b": {}, "a": {}}, "figures": None}) == ["b", "a"]
    assert dataset_order({"datasets": None, "figures": {"dataset_order": ["a"]}}) == []
    assert dataset_order({}) == []


# ----------------------------------------------------------------------------- Table 1 and 2

def _config(**extra):
    config = {"demo": False, "methods": ["UNet", "CS", "OUCR"],
              "datasets": {"knee": KNEE, "brain": BRAIN, "own": OWN},
              "figures": {"dataset_order": ["brain"]},
              "accelerations": {8: {"center_fraction": 0.04}, 4: {"center_fraction": 0.08}},
              "ablation": {"dataset": "brain", "acceleration": 4, "variants": ["UC-CRNN", OUCR_FULL]}}
    config.update(extra)
    return config


def _per_volume():
    rows = []
    offsets = {"Zero-filled": -8.0, "CS": -4.0, "UNet": -2.0, "OUCR": 0.0, "UC-CRNN": -1.0}
    for dataset, base in (("knee", 31.0), ("brain", 38.0), ("own", 35.0)):
        for acc in (4, 8):
            for method, off in offsets.items():
                value = base + off - (acc == 8) * 3.0
                rows.append(per_volume_rows(method, dataset, acc, [value - 1.0, value + 1.0],
                                            ssim=[0.70 + off / 100, 0.72 + off / 100], realised=[acc, acc + 0.5]))
    return pd.concat(rows, ignore_index=True)


def _params():
    return pd.DataFrame({"method": ["UNet", "CS", "OUCR", "UC-CRNN"], "params": [7_000_000, 0, 1_191_560, 500_000],
                         "params_used": [6_000_000, 0, 1_191_560, 500_000],
                         "paper_params": [8_634_000, np.nan, 1_192_000, np.nan]})


def test_table1_rows_paper_values_and_the_sign_of_the_difference():
    t1 = table1(_config(), _per_volume(), _params())
    assert list(t1.columns) == TABLE1_COLUMNS
    # datasets: figures.dataset_order first, then config order; accelerations ascending; Zero-filled first
    keys = list(zip(t1["dataset"], t1["acceleration"], t1["method"]))
    assert keys[:4] == [("brain", 4, "Zero-filled"), ("brain", 4, "UNet"), ("brain", 4, "CS"), ("brain", 4, "OUCR")]
    assert [k[:2] for k in keys[::4]] == [("brain", 4), ("brain", 8), ("knee", 4), ("knee", 8), ("own", 4),
                                           ("own", 8)]
    assert (t1["label"] == "experiment").all()
    oucr = t1[(t1["method"] == "OUCR") & (t1["dataset"] == "brain") & (t1["acceleration"] == 4)].iloc[0]
    assert oucr["psnr_mean"] == pytest.approx(38.0) and oucr["psnr_sd"] == pytest.approx(np.sqrt(2))
    assert oucr["paper_dataset"] == "HPKS"
    assert oucr["paper_psnr"] == 39.33 and oucr["paper_ssim"] == 0.9747
    assert oucr["delta_psnr"] == pytest.approx(38.0 - 39.33)  # ours minus the paper's: negative here
    assert oucr["delta_ssim"] == pytest.approx(0.71 - 0.9747)
    assert (oucr["params"], oucr["params_used"], oucr["paper_params"]) == (1_191_560, 1_191_560, 1_192_000)
    assert oucr["n_volumes"] == 2 and oucr["n_replicates"] == 1 and oucr["realised_acceleration"] == 4.25
    knee = t1[(t1["method"] == "UNet") & (t1["dataset"] == "knee") & (t1["acceleration"] == 8)].iloc[0]
    assert knee["paper_psnr"] == 29.78 and knee["delta_psnr"] == pytest.approx(26.0 - 29.78)
    assert knee["paper_dataset"] == "fastMRI" and knee["params_used"] == 6_000_000
    zero = t1[t1["method"] == "Zero-filled"].iloc[0]
    assert np.isnan(zero["paper_psnr"]) and np.isnan(zero["delta_psnr"])  # the paper has no zero-filled row
    assert zero["params"] is pd.NA and zero["paper_params"] is pd.NA  # not in the params file
    assert pd.isna(t1.loc[t1["method"] == "CS", "paper_params"]).all()
    own = t1[t1["dataset"] == "own"]
    assert own["paper_dataset"].isna().all() and own["paper_psnr"].isna().all()  # no paper column
    assert t1["train_hours"].isna().all() and t1["infer_ms_per_slice"].isna().all()


def test_table1_without_params_and_with_demo_label():
    t1 = table1(_config(demo=True, methods=None, datasets={"brain": BRAIN}, accelerations={4: {}}), _per_volume(),
                None)
    assert list(t1["method"]) == ["Zero-filled"] and (t1["label"] == "demo").all()
    assert t1["params"].isna().all()


def test_table1_merges_costs_by_run():
    costs = pd.DataFrame({"method": ["OUCR", "UNet"], "dataset": ["brain", "brain"], "acceleration": [4, 4],
                          "train_hours": [2.5, 1.0], "train_device": ["cuda", "cpu"], "infer_ms_per_slice": [12.0, 3.0]})
    t1 = table1(_config(), _per_volume(), _params(), costs)
    assert len(t1) == 24  # a left merge: runs without a cost stay
    oucr = t1[(t1["method"] == "OUCR") & (t1["dataset"] == "brain") & (t1["acceleration"] == 4)].iloc[0]
    assert (oucr["train_hours"], oucr["train_device"], oucr["infer_ms_per_slice"]) == (2.5, "cuda", 12.0)
    assert t1[(t1["method"] == "OUCR") & (t1["acceleration"] == 8)]["train_hours"].isna().all()
    empty = table1(_config(), _per_volume(), _params(), costs.iloc[:0])
    assert empty["train_hours"].isna().all() and len(empty) == 24


def test_table1_missing_results_are_a_data_error_naming_the_cell():
    per_volume = _per_volume()
    per_volume = per_volume[~((per_volume["method"] == "CS") & (per_volume["dataset"] == "knee")
                              & (per_volume["acceleration"] == 8))]
    with pytest.raises(DataError) as err:
        table1(_config(), per_volume, None)
    assert err.value.path == "knee x8" and err.value.problem == "no evaluated results for CS"


def test_table2_is_the_ablation_with_the_full_model_evaluated_as_oucr():
    t2 = table2(_config(), _per_volume(), _params())
    assert list(t2.columns) == TABLE1_COLUMNS
    assert list(t2["method"]) == ["UC-CRNN", OUCR_FULL]
    assert (t2["dataset"] == "brain").all() and (t2["acceleration"] == 4).all()
    assert list(t2["psnr_mean"]) == pytest.approx([37.0, 38.0])
    assert list(t2["paper_psnr"]) == [37.87, 39.33] and list(t2["paper_ssim"]) == [0.9644, 0.9747]
    assert t2["delta_psnr"].iloc[1] == pytest.approx(38.0 - 39.33)
    assert t2["params"].iloc[0] == 500_000 and t2["params"].iloc[1] is pd.NA  # looked up under its own name
    assert all(v is pd.NA for v in t2["paper_params"])  # Table 2 reports no parameter counts
    assert (t2["label"] == "experiment").all()
    assert t2["train_hours"].isna().all()
    default_acc = table2(_config(ablation={"dataset": "brain", "variants": ["UC-CRNN"]}), _per_volume(), None)
    assert list(default_acc["acceleration"]) == [4]
    at8 = table2(_config(ablation={"dataset": "brain", "acceleration": 8, "variants": ["UC-CRNN"]}), _per_volume(),
                 None)
    assert list(at8["acceleration"]) == [8] and list(at8["psnr_mean"]) == [34.0]
    assert at8["paper_psnr"].isna().all()  # the paper's ablation is at 4x only
    with pytest.raises(ConfigError, match="^datasets.brain: paper_dataset 'HPKS' on magnitude data"):
        table2(_config(datasets={"brain": {"paper_dataset": "HPKS", "format": "magnitude"}}), _per_volume(), None)
    demo = table2(_config(demo=True), _per_volume(), None)
    assert (demo["label"] == "demo").all()


def test_table2_without_variants_is_empty():
    for ablation in (None, {}, {"dataset": "brain", "variants": []}):
        t2 = table2(_config(ablation=ablation), _per_volume(), None)
        assert t2.empty and list(t2.columns) == TABLE1_COLUMNS


# ----------------------------------------------------------------------------- formatting

def test_fmt_value():
    assert tables.fmt_value(32.456, 2) == "32.46" and tables.fmt_value(0.91234, 4) == "0.9123"
    assert tables.fmt_value(np.nan, 2) == "-" and tables.fmt_value(pd.NA, 4) == "-" and tables.fmt_value(None, 2) == "-"
    assert tables.fmt_value(0.0, 2) == "0.00"


def test_fmt_mean_sd():
    assert fmt_mean_sd(32.456, 1.234, 2) == "32.46 ± 1.23"
    assert fmt_mean_sd(0.91234, 0.01, 4) == "0.9123 ± 0.0100"
    assert fmt_mean_sd(32.456, np.nan, 2) == "32.46"
    assert fmt_mean_sd(np.nan, 1.0, 2) == "-"
    assert fmt_mean_sd(pd.NA, pd.NA, 2) == "-"


def test_fmt_params():
    assert fmt_params(1_191_560) == "1.192 M"
    assert fmt_params(2_000_000_000) == "2000.000 M"
    assert fmt_params(7_951_000, 7_000_000) == "7.951 M (7.000 M used)*"
    assert fmt_params(2_000_000_000, 1_000_500_000) == "2000.000 M (1000.500 M used)*"
    assert fmt_params(7_951_000, 7_951_000) == "7.951 M"
    assert fmt_params(7_951_000, np.nan) == "7.951 M"
    for missing in (pd.NA, None, np.nan, float("nan")):
        assert fmt_params(missing) == "-"
    assert fmt_params(np.float64(1_500_000.0)) == "1.500 M"
    assert fmt_params(0) == "0.000 M"


def test_int_or_na():
    assert tables._int_or_na(None) is pd.NA and tables._int_or_na(pd.NA) is pd.NA
    assert tables._int_or_na(float("nan")) is pd.NA and tables._int_or_na(np.float64("nan")) is pd.NA
    assert tables._int_or_na(3.0) == 3 and type(tables._int_or_na(3.0)) is int
    assert tables._int_or_na(np.int64(5)) == 5 and tables._int_or_na(0) == 0


def test_paper_shaped_view():
    config = _config(datasets={"brain": BRAIN, "own": OWN}, accelerations={4: {}})
    t1 = table1(config, _per_volume(), _params())
    t1.loc[t1["method"] == "OUCR", "train_hours"] = 1.234
    wide = paper_shaped(t1, config)
    assert list(wide["Method"]) == ["Zero-filled", "UNet", "CS", "OUCR"]
    assert list(wide.columns) == [
        "Method", "Params",
        "brain 4x PSNR", "brain 4x PSNR paper (stand-in for HPKS) (Δ)", "brain 4x SSIM",
        "brain 4x SSIM paper (stand-in for HPKS) (Δ)", "brain 4x train h",
        "own 4x PSNR", "own 4x SSIM", "own 4x train h"]
    oucr = wide.set_index("Method").loc["OUCR"]
    assert oucr["Params"] == "1.192 M"
    assert oucr["brain 4x PSNR"] == "38.00 ± 1.41"
    assert oucr["brain 4x PSNR paper (stand-in for HPKS) (Δ)"] == "39.33 (-1.33)"
    assert oucr["brain 4x SSIM"] == "0.7100 ± 0.0141"
    assert oucr["brain 4x SSIM paper (stand-in for HPKS) (Δ)"] == "0.9747 (-0.2647)"
    assert oucr["brain 4x train h"] == "1.23" and oucr["own 4x train h"] == "1.23"
    unet = wide.set_index("Method").loc["UNet"]
    assert unet["Params"] == "7.000 M (6.000 M used)*" and unet["brain 4x train h"] == "-"
    zero = wide.set_index("Method").loc["Zero-filled"]
    assert zero["Params"] == "-"
    assert zero["brain 4x PSNR paper (stand-in for HPKS) (Δ)"] == "-"
    assert zero["brain 4x SSIM paper (stand-in for HPKS) (Δ)"] == "-"
    with pytest.raises(ConfigError, match="^datasets.brain: paper_dataset 'HPKS'"):
        paper_shaped(t1, {"datasets": {"brain": {"paper_dataset": "HPKS", "format": "magnitude"}, "own": OWN}})
    positive = t1.copy()
    positive["psnr_mean"] += 5.0
    positive["delta_psnr"] += 5.0
    assert paper_shaped(positive, config).set_index("Method").loc["OUCR", "brain 4x PSNR paper (stand-in for HPKS) (Δ)"] \
        == "39.33 (+3.67)"


# ----------------------------------------------------------------------------- costs

def _run_files(tmp_path, name, method="OUCR", dataset="brain", acc=4, seconds=7200.0, device="cuda",
               per_slice=0.0125):
    bench = tmp_path / f"{name}.tsv"
    bench.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t2:00:00\t100\n")
    info = tmp_path / f"{name}.json"
    info.write_text(json.dumps({"method": method, "dataset": dataset, "acceleration": str(acc), "device": device}))
    recon = tmp_path / f"{name}_recon"
    recon.mkdir()
    (recon / "timing.json").write_text(json.dumps({"seconds_per_slice": per_slice}))
    return bench, info, recon


def test_read_costs_hours_device_and_inference_time(tmp_path):
    runs = [_run_files(tmp_path, "u", method="UNet", seconds=1800.0, device="cpu", per_slice=0.002),
            _run_files(tmp_path, "o0", seconds=7200.0, device="cuda", per_slice=0.010),
            _run_files(tmp_path, "o1", seconds=3600.0, device="cpu", per_slice=0.020)]
    costs = read_costs(*[[r[i] for r in runs] for i in range(3)])
    assert list(costs.columns) == ["method", "dataset", "acceleration", "train_hours", "train_device",
                                   "infer_ms_per_slice"]
    assert list(costs["method"]) == ["UNet", "OUCR"]  # in the order of the runs
    unet, oucr = costs.iloc[0], costs.iloc[1]
    assert unet["train_hours"] == pytest.approx(0.5) and unet["train_device"] == "cpu"
    assert unet["infer_ms_per_slice"] == pytest.approx(2.0) and unet["acceleration"] == 4
    # replicates: mean hours and inference time, every device named once
    assert oucr["train_hours"] == pytest.approx(1.5) and oucr["infer_ms_per_slice"] == pytest.approx(15.0)
    assert oucr["train_device"] == "cpu, cuda"
    empty = read_costs([], [], [])
    assert empty.empty and list(empty.columns) == list(costs.columns)


def test_read_costs_refuses_lists_of_different_lengths(tmp_path):
    bench, info, recon = _run_files(tmp_path, "a")
    with pytest.raises(DataError) as err:
        read_costs([bench, bench], [info], [recon])
    assert err.value.path == "(cost inputs)"
    assert err.value.problem == ("2 benchmark files, 1 info files and 1 reconstruction folders: they must describe "
                                 "the same runs")
    with pytest.raises(DataError, match="1 benchmark files, 1 info files and 0 reconstruction folders"):
        read_costs([bench], [info], [])


def test_read_costs_missing_or_damaged_files_are_data_errors_naming_the_file(tmp_path):
    bench, info, recon = _run_files(tmp_path, "a")
    with pytest.raises(DataError) as err:
        read_costs([bench], [tmp_path / "nope.json"], [recon])
    assert err.value.path == str(tmp_path / "nope.json") and err.value.problem == "training info file does not exist"
    with pytest.raises(DataError) as err:
        read_costs([bench], [info], [tmp_path])
    assert err.value.path == str(tmp_path / "timing.json")
    assert err.value.problem == "reconstruction timing file does not exist"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError) as err:
        read_costs([bench], [tmp_path / "bad.json"], [recon])
    assert err.value.path == str(tmp_path / "bad.json")
    assert err.value.problem.startswith("not a readable training info file (")
    for content, problem in [
            ("h:m:s\tmax_rss\n2:00:00\t100\n", "Snakemake benchmark file lacks the column(s) s (it has h:m:s, max_rss)"),
            ("s\tmax_rss\n", "Snakemake benchmark file has no numeric seconds (column s) in its first row"),
            ("s\tmax_rss\nNA\t3\n", "Snakemake benchmark file has no numeric seconds (column s) in its first row"),
            ("s\tmax_rss\nabc\t3\n", "Snakemake benchmark file has no numeric seconds (column s) in its first row"),
            ("", "Snakemake benchmark file is empty")]:
        bad = tmp_path / "bench_bad.tsv"
        bad.write_text(content)
        with pytest.raises(DataError) as err:
            read_costs([bad], [info], [recon])
        assert (err.value.path, err.value.problem) == (str(bad), problem)
    with pytest.raises(DataError, match="Snakemake benchmark file does not exist"):
        read_costs([tmp_path / "missing.tsv"], [info], [recon])


# ----------------------------------------------------------------------------- written files

def _write_inputs(tmp_path, config):
    volumes = tmp_path / "volumes.csv"
    _per_volume().to_csv(volumes, index=False)
    params = tmp_path / "params.csv"
    _params().to_csv(params, index=False)
    return volumes, params


def test_write_tables_writes_every_view(tmp_path):
    from oucr.stats import significance_table

    config = _config(datasets={"brain": BRAIN, "knee": KNEE}, accelerations={4: {}})
    volumes, params = _write_inputs(tmp_path, config)
    sig_file = tmp_path / "sig.csv"
    per_volume = _per_volume()
    significance_table(per_volume.iloc[:0], per_volume, n_bootstrap=20).to_csv(sig_file, index=False)
    out = tmp_path / "out"
    tables.write_tables(config, [volumes], params, sig_file, out)
    assert {p.name for p in out.iterdir()} >= {"significance.md", "table1.csv", "table1.md", "table1.tex",
                                                "table2.csv", "table2.md", "table2.tex"}
    t1 = pd.read_csv(out / "table1.csv")
    assert list(t1.columns) == TABLE1_COLUMNS and len(t1) == 8
    md = (out / "table1.md").read_text()
    assert md.startswith("# Table 1: PSNR / SSIM (mean ± SD over test volumes), training hours\n\n"
                         f"> \\* {PARAMS_FOOTNOTE}\n\n| Method | Params |")
    assert "| UNet | 7.000 M (6.000 M used)* |" in md and DEMO_NOTE not in md
    assert "brain 4x PSNR paper (stand-in for HPKS) (Δ)" in md and "knee 4x PSNR paper (fastMRI) (Δ)" in md
    tex = (out / "table1.tex").read_text()
    assert r"\caption{Table 1: PSNR / SSIM (mean $\pm$ SD over test volumes), training hours}" in tex
    assert r"\label{tab:table1}" in tex
    t2 = pd.read_csv(out / "table2.csv")
    assert list(t2["method"]) == ["UC-CRNN", OUCR_FULL]
    md2 = (out / "table2.md").read_text()
    assert md2 == (
        "# Table 2: ablation on brain at 4x\n\n"
        "| Modules | Params | PSNR | PSNR paper (stand-in for HPKS) | SSIM | SSIM paper (stand-in for HPKS) |\n"
        "|---|---|---|---|---|---|\n"
        "| UC-CRNN | 0.500 M | 37.00 ± 1.41 | 37.87 | 0.7000 ± 0.0141 | 0.9644 |\n"
        f"| {OUCR_FULL} | - | 38.00 ± 1.41 | 39.33 | 0.7100 ± 0.0141 | 0.9747 |\n")
    tex2 = (out / "table2.tex").read_text()
    assert r"\caption{Table 2: ablation on brain at 4x}" in tex2 and r"\label{tab:table2}" in tex2
    sig = (out / "significance.md").read_text()
    assert sig.startswith("# Paired comparisons: OUCR against every other method\n") and "DEMO" not in sig


def test_write_tables_demo_replicates_and_no_paper_column(tmp_path):
    config = _config(demo=True, datasets={"own": OWN}, accelerations={4: {}},
                     ablation={"dataset": "own", "acceleration": 4, "variants": ["UC-CRNN"]})
    per_volume = _per_volume()
    per_volume = pd.concat([per_volume.assign(replicate=0), per_volume.assign(replicate=1, psnr=per_volume["psnr"] + 1)],
                           ignore_index=True)
    volumes = tmp_path / "volumes.csv"
    per_volume.to_csv(volumes, index=False)
    out = tmp_path / "out"
    tables.write_tables(config, [volumes], None, None, out)
    assert not (out / "significance.md").exists()
    md = (out / "table1.md").read_text()
    assert md.startswith(
        f"# Table 1 (DEMO): PSNR / SSIM (mean ± SD over test volumes), training hours\n\n> {DEMO_NOTE}\n\n"
        "> Means over training replicates; ± is the SD over test volumes of the replicate-averaged values; the "
        "across-replicate SD is in the section below the table (and the `*_rep_sd` columns of the CSV).\n\n"
        "| Method | Params | own 4x PSNR | own 4x SSIM |")
    assert "paper" not in md.split("\n\n")[-1]  # no paper column for own data
    tex = (out / "table1.tex").read_text()
    assert "DEMO numbers" in tex and "(DEMO)" in tex
    md2 = (out / "table2.md").read_text()
    assert md2.startswith(f"# Table 2 (DEMO): ablation on own at 4x\n\n> {DEMO_NOTE}\n\n> Means over training")
    assert "| Modules | Params | PSNR | SSIM |\n|---|---|---|---|\n| UC-CRNN | - | 34.50 ± 1.41 | 0.7000 ± 0.0141 |\n\n" \
        "## Across training replicates: SD of the test mean\n\n" in md2
    assert md2.endswith("| Method | Replicates | own 4x PSNR SD | own 4x SSIM SD |\n|---|---|---|---|\n"
                        "| UC-CRNN | 2 | 0.71 | 0.0000 |\n")
    assert md.endswith("| OUCR | 2 | 0.71 | 0.0000 |\n")
    assert r"training hours. DEMO numbers: small networks" in tex
    assert r"\caption{Table 2 (DEMO): ablation on own at 4x. DEMO numbers: small networks" in (out / "table2.tex").read_text()
    assert "DEMO numbers" in (out / "table2.tex").read_text()
    t1 = pd.read_csv(out / "table1.csv")
    assert (t1["n_replicates"] == 2).all() and (t1["label"] == "demo").all()
    assert t1["psnr_rep_sd"].iloc[0] == pytest.approx(np.std([27.0, 28.0], ddof=1))


def test_replicate_spread_view_and_section():
    # OUCR trained twice (test means 32 and 36, SSIM 0.70 and 0.74), UNet once, Zero-filled not trained
    frame = pd.concat([per_volume_rows("OUCR", "b", 4, [30.0, 34.0], replicate=0, ssim=[0.7, 0.7]),
                       per_volume_rows("OUCR", "b", 4, [32.0, 40.0], replicate=1, ssim=[0.74, 0.74]),
                       per_volume_rows("OUCR", "b", 8, [28.0, 28.0], replicate=[0, 1]),
                       per_volume_rows("UNet", "b", 4, [31.0, 33.0], replicate=0),
                       per_volume_rows("UNet", "b", 8, [29.0, 30.0], replicate=0),
                       per_volume_rows("Zero-filled", "b", 4, [20.0, 22.0], replicate=0),
                       per_volume_rows("Zero-filled", "b", 8, [18.0, 19.0], replicate=0)], ignore_index=True)
    tidy = summarise(frame)
    view = replicate_spread(tidy)
    assert list(view.columns) == ["Method", "Replicates", "b 4x PSNR SD", "b 4x SSIM SD", "b 8x PSNR SD",
                                  "b 8x SSIM SD"]
    oucr = view.set_index("Method").loc["OUCR"]
    assert oucr["b 4x PSNR SD"] == f"{np.std([32.0, 36.0], ddof=1):.2f}" == "2.83"
    assert oucr["b 4x SSIM SD"] == "0.0283" and oucr["b 8x PSNR SD"] == "0.00" and oucr["Replicates"] == "2"
    single = view.set_index("Method").loc[["UNet", "Zero-filled"]]
    assert (single["Replicates"] == "1").all() and (single["b 4x PSNR SD"] == "-").all()
    assert (single["b 4x SSIM SD"] == "-").all()
    mixed = summarise(pd.concat([per_volume_rows("OUCR", "b", 4, [30.0], replicate=[0]),
                                 per_volume_rows("OUCR", "b", 8, [30.0, 31.0], replicate=[0, 1])], ignore_index=True))
    assert replicate_spread(mixed)["Replicates"].tolist() == ["1, 2"]
    section = tables._spread_section(tidy)
    assert section.startswith(
        "\n## Across training replicates: SD of the test mean\n\n> How far a cell's mean moves between trainings "
        "that differ only in their initialisation seed (an SD from as many replicates as the Replicates column says; "
        "two give only a rough figure): a gap between two methods of that size can reverse with another seed.\n\n"
        "| Method | Replicates | b 4x PSNR SD |")
    assert section.endswith("|---|---|---|---|---|---|\n| OUCR | 2 | 2.83 | 0.0283 | 0.00 | 0.0000 |\n"
                            "| UNet | 1 | - | - | - | - |\n| Zero-filled | 1 | - | - | - | - |\n")
    assert tables._spread_section(summarise(per_volume_rows("UNet", "b", 4, [31.0, 33.0], replicate=0))) == ""


def test_write_tables_without_ablation_and_a_damaged_significance_file(tmp_path):
    config = _config(datasets={"brain": BRAIN}, accelerations={4: {}}, ablation=None)
    volumes, params = _write_inputs(tmp_path, config)
    out = tmp_path / "out"
    tables.write_tables(config, [volumes], params, None, out)
    assert (out / "table2.md").read_text() == "# Table 2: ablation\n\n| Modules | Params | PSNR | SSIM |\n|---|---|---|---|\n"
    assert pd.read_csv(out / "table2.csv").empty
    bad = tmp_path / "sig.csv"
    bad.write_bytes(b"")
    with pytest.raises(DataError) as err:
        tables.write_tables(config, [volumes], params, bad, out)
    assert (err.value.path, err.value.problem) == (str(bad), "significance table is empty")
    bad_params = tmp_path / "params_bad.csv"
    bad_params.write_text("method\nUNet\n")
    with pytest.raises(DataError) as err:
        tables.write_tables(config, [volumes], bad_params, None, out)
    assert (err.value.path, err.value.problem) == (str(bad_params),
                                                   "parameter-count table lacks the column(s) params (it has method)")


def test_command_line_entry(tmp_path):
    config = _config(datasets={"brain": BRAIN}, accelerations={4: {}})
    volumes, params = _write_inputs(tmp_path, config)
    bench, info, recon = _run_files(tmp_path, "o", seconds=5400.0)
    parser = argparse.ArgumentParser()
    tables.add_arguments(parser)
    out = tmp_path / "out"
    sig_file = tmp_path / "sig.csv"
    sig_file.write_text(",".join(["level", "table", "method", "reference"]) + "\n")
    args = parser.parse_args(["--config", json.dumps(config), "--volumes", str(volumes), "--params", str(params),
                              "--significance", str(sig_file), "--train-benchmarks", str(bench),
                              "--train-info", str(info), "--recon-timing", str(recon), "--out-dir", str(out)])
    for value in (args.volumes[0], args.params, args.significance, args.train_benchmarks[0], args.train_info[0],
                  args.recon_timing[0], args.out_dir):
        assert isinstance(value, Path)
    assert tables.run(args) == 0
    t1 = pd.read_csv(out / "table1.csv")
    row = t1[(t1["method"] == "OUCR")].iloc[0]
    assert row["train_hours"] == pytest.approx(1.5) and row["infer_ms_per_slice"] == pytest.approx(12.5)
    assert row["train_device"] == "cuda" and row["params"] == 1_191_560
    assert (out / "significance.md").read_text().endswith("No comparisons.\n")
    assert (out / "provenance.md").read_text().endswith("- trained on: cuda\n")
    assert "| 1.50 |" in (out / "table1.md").read_text()
    args = parser.parse_args(["--config", json.dumps(config), "--volumes", str(volumes), "--out-dir", str(out)])
    assert args.train_benchmarks == [] and args.train_info == [] and args.recon_timing == []
    assert args.params is None and args.significance is None
    assert tables.run(args) == 0
    assert pd.read_csv(out / "table1.csv")["train_hours"].isna().all()
    with pytest.raises(SystemExit):
        parser.parse_args(["--config", "{}", "--volumes", str(volumes)])  # --out-dir is required


# ----------------------------------------------------------------------------- provenance

def test_train_devices_lists_each_device_once():
    assert tables.train_devices(None) == [] and tables.train_devices(pd.DataFrame({"train_device": []})) == []
    costs = pd.DataFrame({"train_device": ["cuda, cpu", "cpu", None, "NVIDIA H200"]})
    assert tables.train_devices(costs) == ["NVIDIA H200", "cpu", "cuda"]


def test_provenance_names_commits_versions_and_devices():
    per_volume = pd.DataFrame({"git_commit": ["b2", "a1", "b2", None], "git_dirty": [False, True, False, None],
                               "versions": ["torch=2.13", "torch=2.13", "torch=2.13", None],
                               "device": ["cpu", "cuda", "cpu", None]})
    assert tables.provenance_markdown(per_volume, ["cuda"]) == (
        "# Provenance of the tables\n\n"
        "- code commit(s) of the evaluations: `a1`, `b2` (tracked files were modified)\n"
        "- package versions: `torch=2.13`\n"
        "- reconstructed on: cpu, cuda\n"
        "- trained on: cuda\n")
    clean = per_volume.assign(git_dirty=False)
    assert "(tracked files were modified)" not in tables.provenance_markdown(clean)
    assert tables.provenance_markdown(pd.DataFrame({"psnr": [1.0]})) == (
        "# Provenance of the tables\n\n- code commit(s) of the evaluations: -\n- package versions: -\n"
        "- reconstructed on: -\n- trained on: -\n")


def test_command_line_help_names_every_input():
    parser = argparse.ArgumentParser()
    tables.add_arguments(parser)
    helps = {a.dest: a.help for a in parser._actions if a.dest != "help"}
    assert helps == {
        "config": "YAML config or inline JSON (demo, methods, datasets, accelerations, ablation, figures)",
        "volumes": "per-volume metric CSVs",
        "params": "CSV of `oucr params`",
        "significance": "CSV of `oucr stats`",
        "train_benchmarks": "Snakemake benchmark files of the Table 1 trainings (training time)",
        "train_info": "info.json of the same trainings, in the same order (identity, device)",
        "recon_timing": "their reconstruction folders, in the same order (timing.json: inference time)",
        "out_dir": "folder receiving the table files",
    }
    args = parser.parse_args(["--config", "c.yaml", "--volumes", "a.csv", "b.csv", "--out-dir", "o",
                              "--train-benchmarks", "t.tsv", "--train-info", "i.json", "--recon-timing", "r"])
    assert [str(p) for p in args.volumes] == ["a.csv", "b.csv"] and str(args.out_dir) == "o"
    assert [str(p) for p in args.train_benchmarks + args.train_info + args.recon_timing] == ["t.tsv", "i.json", "r"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--volumes", "a.csv", "--out-dir", "o"])  # --config is required
    with pytest.raises(SystemExit):
        parser.parse_args(["--config", "c", "--out-dir", "o"])  # and at least one metrics file


def test_write_tables_demo_significance_provenance_and_missing_paper_values(tmp_path):
    from oucr.stats import significance_table

    config = _config(demo=True, datasets={"brain": BRAIN}, accelerations={8: {}},
                     ablation={"dataset": "brain", "acceleration": 8, "variants": ["UC-CRNN"]})
    per_volume = _per_volume().assign(git_commit="abc123", git_dirty=False, versions="numpy=2", device="cpu")
    volumes = tmp_path / "volumes.csv"
    per_volume.to_csv(volumes, index=False)
    sig_file = tmp_path / "sig.csv"
    significance_table(per_volume.iloc[:0], _per_volume(), n_bootstrap=20).to_csv(sig_file, index=False)
    costs = pd.DataFrame({"method": ["OUCR"], "dataset": ["brain"], "acceleration": [8], "train_hours": [1.0],
                          "train_device": ["cuda, cpu"], "infer_ms_per_slice": [2.0]})
    out = tmp_path / "out"
    tables.write_tables(config, [volumes], None, sig_file, out, costs)
    md2 = (out / "table2.md").read_text()
    assert md2.endswith("| Modules | Params | PSNR | PSNR paper (stand-in for HPKS) | SSIM | SSIM paper (stand-in "
                        "for HPKS) |\n|---|---|---|---|---|---|\n| UC-CRNN | - | 34.00 ± 1.41 | - | 0.7000 ± 0.0141 | - |\n")
    sig = (out / "significance.md").read_text()
    assert sig.splitlines()[2] == f"> {DEMO_NOTE}"
    assert (out / "provenance.md").read_text() == (
        "# Provenance of the tables\n\n- code commit(s) of the evaluations: `abc123`\n- package versions: `numpy=2`\n"
        "- reconstructed on: cpu\n- trained on: cpu, cuda\n")


def test_provenance_lists_several_values_with_commas():
    per_volume = pd.DataFrame({"versions": ["a=1", "b=2"]})
    text = tables.provenance_markdown(per_volume, ["cpu", "cuda"])
    assert "- package versions: `a=1`, `b=2`\n" in text and "- trained on: cpu, cuda\n" in text
