"""``oucr plan``: slice counts, step and hour arithmetic, bench lookups, the schedule and the errors.

Benches are tiny synthetic CSVs; no network is ever run here (``--measure`` is
checked with :func:`oucr.engine.bench.run_bench` replaced).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List

import pandas as pd
import pytest
import yaml

from conftest import tiny_brain_section, tiny_fastmri_section
from oucr.cli import main
from oucr.config import resolve_results_placeholder
from oucr.data.store import read_manifest
from oucr.data.slice_counts import dataset_counts
from oucr.engine.plan_bench import read_bench
from oucr.engine.plan_cost import COLUMNS, greedy_wall_hours, make_plan
from oucr.errors import ConfigError, DataError
from oucr.runs import trainings

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


def write_bench(path: Path, rows: List[Dict[str, Any]]) -> Path:
    """A bench CSV with ``oucr bench``'s columns (defaults for those a row leaves out)."""
    defaults = {"params": 1000, "amp": "none", "checkpointing": False, "compile": False, "deterministic": True,
                "device": "cpu:test (1 threads)", "error": None}
    pd.DataFrame([{**defaults, **r} for r in rows]).to_csv(path, index=False)
    return path


def net(method: str, size: int, batch: int = 2, rate: float = 8.0, infer_ms: float = 100.0,
        peak_mb: float = 3000.0) -> Dict[str, Any]:
    return {"method": method, "size": size, "batch_size": batch, "train_slices_per_s": rate,
            "infer_ms_per_slice": infer_ms, "peak_mem_mb": peak_mb}


def demo_layout(name: str, tmp_path: Path, brain_store: Path, demo_raw: Path) -> Dict[str, Any]:
    """``config/<name>`` with results in ``tmp_path``: demo-brain prepared, demo-fastmri raw only."""
    config = yaml.safe_load((CONFIG_DIR / name).read_text())
    config["results"] = str(tmp_path)
    (tmp_path / "prepared").mkdir()
    (tmp_path / "prepared" / "demo-brain").symlink_to(brain_store)
    (tmp_path / "demo_data").mkdir()
    (tmp_path / "demo_data" / "demo-fastmri").symlink_to(demo_raw / "demo-fastmri")
    return resolve_results_placeholder(config)


def one_dataset_config(tmp_path: Path, **training: Any) -> Dict[str, Any]:
    """One dataset 'knee' of 16 x 16 with a hand-written store: train 7 + 6 slices, val 5 + 4, test 3."""
    store = tmp_path / "prepared" / "knee"
    store.mkdir(parents=True)
    rows = [("a1", "train", 7), ("a2", "train", 6), ("b1", "val", 5), ("b2", "val", 4), ("c1", "test", 3)]
    pd.DataFrame([{"volume": v, "file": f"volumes/{v}.h5", "subject": v, "split": s, "n_slices": n, "height": 16,
                   "width": 16, "source": "x", "format": "fastmri"} for v, s, n in rows]).to_csv(
        store / "manifest.csv", index=False)
    return {"results": str(tmp_path), "seed": 0,
            "datasets": {"knee": {"format": "fastmri", "size": [16, 16]}},
            "accelerations": {4: {"center_fraction": 0.08}}, "methods": ["UNet"],
            "training": {"epochs": 3, "batch_size": 2, "accumulate": 2, "val_volumes": 1, **training}}


@pytest.mark.parametrize("name", ["tiny.yaml", "config.yaml"])
def test_one_row_per_training_job_with_its_source(name, tmp_path, brain_store, demo_raw):
    config = demo_layout(name, tmp_path, brain_store, demo_raw)
    table = make_plan(config).table
    jobs = trainings(config)
    assert len(table) == len(jobs)
    assert list(zip(table["dataset"], table["acceleration"], table["run"], table["replicate"], strict=True)) == [
        (d, a, r.run, rep) for d, a, r, rep in jobs]
    # demo-brain has its prepared store in results; any other dataset (demo-fastmri) is estimated from raw files
    assert list(table["source"]) == ["store" if d == "demo-brain" else "estimate" for d in table["dataset"]]
    if name == "config.yaml":
        assert set(table["source"]) == {"store", "estimate"}
    manifest = read_manifest(brain_store)
    brain = table[table["dataset"] == "demo-brain"]
    assert set(brain["train_slices"]) == {int(manifest.loc[manifest["split"] == "train", "n_slices"].sum())}
    assert set(brain["val_slices"]) == {int(manifest.loc[manifest["split"] == "val", "n_slices"].sum())}


def write_raw(root: Path) -> Dict[str, Dict[str, Any]]:
    """Raw volumes of 2 to 7 slices (so that counts depend on the split): magnitude HDF5 and fastMRI files."""
    import h5py
    import numpy as np

    rng = np.random.default_rng(0)
    for folder in ("mag", "train", "val"):
        (root / folder).mkdir(parents=True)
    for i, n in enumerate(range(2, 8)):
        with h5py.File(root / "mag" / f"sub-{i}.h5", "w") as f:
            f["image"] = rng.uniform(0.5, 1.0, (n, 32, 32)).astype(np.float32)
    for folder, slices in (("train", range(2, 8)), ("val", (3, 4))):
        for i, n in enumerate(slices):
            with h5py.File(root / folder / f"file{folder}{i}.h5", "w") as f:
                f["kspace"] = (rng.standard_normal((n, 32, 24)) + 1j * rng.standard_normal((n, 32, 24))).astype(
                    np.complex64)
                f.attrs["patient_id"] = f"{folder}{i}"
                f.attrs["acquisition"] = "CORPD_FBK"
    return {
        "magnitude": {"format": "magnitude", "input": str(root / "mag"), "size": [16, 16], "slices_per_volume": 5,
                      "split": {"train": 3, "val": 2, "test": 1}},
        "fastmri": {"format": "fastmri", "train_input": str(root / "train"), "test_input": str(root / "val"),
                    "size": [16, 16], "val_subjects": 2, "tissue_slices": False},
    }


@pytest.mark.parametrize("kind, overrides", [("magnitude", {}), ("fastmri", {}), ("fastmri", {"tissue_slices": 4}),
                                             ("fastmri", {"val_subjects": None, "val_fraction": 0.5}),
                                             ("nifti", {})])
def test_estimate_from_raw_folders_equals_the_prepared_store(kind, overrides, tmp_path, demo_raw):
    from oucr.data.prepare import prepare_dataset

    if kind == "nifti":  # the demo's 3-slice NIfTI slabs: the header's axial axis caps slices_per_volume
        section = tiny_brain_section(demo_raw / "demo-brain", slices_per_volume=5)
    else:
        section = {**write_raw(tmp_path / "raw")[kind], **overrides}
    section = {k: v for k, v in section.items() if v is not None}
    counts = dataset_counts({"results": str(tmp_path / "results"), "seed": 3, "datasets": {"d": section}}, "d")
    manifest = pd.DataFrame(prepare_dataset(section, tmp_path / "store", seed=3, name="d")).sort_values("volume")
    assert counts.source == "estimate"
    assert counts.train == manifest.loc[manifest["split"] == "train", "n_slices"].sum()
    assert counts.val == list(manifest.loc[manifest["split"] == "val", "n_slices"])
    assert counts.test == manifest.loc[manifest["split"] == "test", "n_slices"].sum()
    assert counts.size == tuple(section["size"])


def test_fastmri_estimate_applies_tissue_slices(tmp_path, demo_raw):
    def counts(tissue):
        section = tiny_fastmri_section(demo_raw / "demo-fastmri", tissue_slices=tissue)
        return dataset_counts({"results": str(tmp_path), "datasets": {"d": section}}, "d")

    every = counts(False)
    two = counts(2)  # the demo files have 3 slices each: 2 are kept per volume
    assert two.train == every.train * 2 // 3 and two.test == every.test * 2 // 3
    assert counts(True).train == every.train
    assert "upper bound" in counts(True).note and "upper bound" not in every.note


def test_steps_seconds_and_hours_by_hand(tmp_path):
    config = one_dataset_config(tmp_path)
    bench = read_bench(write_bench(tmp_path / "b.csv", [net("UNet", 16, batch=2, rate=8.0, infer_ms=100.0)]))
    plan = make_plan(config, bench)
    r = plan.table.iloc[0]
    assert (r["train_slices"], r["val_slices"], r["source"]) == (13, 5, "store")  # val_volumes=1: b1 only
    assert r["steps"] == 3 * 4  # 3 epochs x ceil(13 / (2 x 2))
    assert "work: 12 optimiser steps, 39 training slices (epochs x slices) over every job" in plan.totals
    assert r["s_per_step"] == pytest.approx(0.5)  # 2 x 2 slices / 8 slices/s
    assert r["val_s_per_epoch"] == pytest.approx(0.5)  # 5 slices x 0.1 s
    assert r["hours"] == pytest.approx(3 * (4 * 0.5 + 0.5) / 3600)
    assert plan.gpu_hours == pytest.approx(r["hours"])
    capped = make_plan(one_dataset_config(tmp_path / "cap", train_slices=5), bench).table.iloc[0]
    assert (capped["train_slices"], capped["steps"]) == (5, 3 * 2)  # training.train_slices caps an epoch
    assert "caps an epoch at 5 slices" in capped["notes"]


def test_reconstruction_cs_and_precision_notes(tmp_path):
    config = one_dataset_config(tmp_path)  # 3 test slices, one acceleration
    config["methods"] = ["CS", "UNet"]
    config["cs"] = {"tune_slices": 2, "lambdas": [0.01, 0.1]}
    cs_row = {"method": "CS", "size": 16, "batch_size": 1, "infer_ms_per_slice": 1000.0}
    bench = read_bench(write_bench(tmp_path / "b.csv", [net("UNet", 16, infer_ms=100.0), cs_row]))
    plan = make_plan(config, bench, cpus=7)
    assert plan.recon_gpu_hours == pytest.approx(3 * 0.1 / 3600)
    assert plan.cs_cpu_hours == pytest.approx((3 + 2 * 2) * 1.0 / 3600)  # test slices + tuning solves, 1 s each
    assert any(t.startswith("CS: ~0.00194 CPU-hours") and "on 7 cores" in t for t in plan.totals)
    amp_bench = read_bench(write_bench(tmp_path / "amp.csv", [{**net("UNet", 16), "amp": "bf16"}]))
    assert "bench measured with amp bf16, the training uses none" in make_plan(config, amp_bench).table.iloc[0]["notes"]
    assert "amp" not in plan.table.iloc[0]["notes"]
    failed = read_bench(write_bench(tmp_path / "err.csv", [{**net("UNet", 16), "error": "OutOfMemoryError: CUDA"},
                                                          cs_row]))
    assert math.isnan(make_plan(config, failed).table.iloc[0]["hours"])  # a failed measurement is no measurement


def test_batch_scaling_memory_fit_and_processes(tmp_path):
    bench = read_bench(write_bench(tmp_path / "b.csv", [net("UNet", 16, batch=1, rate=4.0, peak_mb=3000.0)]))
    config = one_dataset_config(tmp_path)
    r = make_plan(config, bench, gpu_memory=6.0).table.iloc[0]
    assert r["s_per_step"] == pytest.approx(2 * 2 / 4.0)
    assert r["peak_mem_gb"] == pytest.approx(6000 / 1024)
    assert r["fits"] == "yes" and "estimate" in r["notes"]
    over = make_plan(config, bench, gpu_memory=5.5)
    assert over.table.iloc[0]["fits"] == "NO" and "memory: 1 jobs exceed 5.5 GiB (UNet)" in over.totals
    assert make_plan(config, bench).table.iloc[0]["fits"] == ""
    # two processes share the batch of 2: one slice each, the bench's own batch
    two = make_plan(one_dataset_config(tmp_path / "p", nproc=2), bench, gpu_memory=5.5, gpus=2).table.iloc[0]
    assert two["s_per_step"] == pytest.approx(2 * 1 / 4.0)
    assert two["peak_mem_gb"] == pytest.approx(3000 / 1024) and two["fits"] == "yes"
    assert two["gpu_hours"] == pytest.approx(2 * two["hours"])
    assert two["val_s_per_epoch"] == pytest.approx(r["val_s_per_epoch"] / 2)  # validation volumes are shared


def test_greedy_schedule_longest_first():
    assert greedy_wall_hours([(3, 1), (2, 1), (2, 1), (1, 1)], 2) == pytest.approx(4)
    assert greedy_wall_hours([(1, 1), (2, 1), (2, 1), (3, 1)], 2) == pytest.approx(4)  # not in the given order (5)
    assert greedy_wall_hours([(1, 1), (1, 1), (2, 2)], 2) == pytest.approx(3)  # the 2-GPU job holds both
    assert greedy_wall_hours([(3, 1), (2, 2)], 2) == pytest.approx(5)  # waits for the second GPU
    assert greedy_wall_hours([(1, 1)] * 4, 1) == pytest.approx(4)
    with pytest.raises(ConfigError, match="needs 3 GPUs"):
        greedy_wall_hours([(1, 3)], 2)


def test_plan_totals_use_the_schedule(tmp_path, brain_store, demo_raw):
    config = demo_layout("tiny.yaml", tmp_path, brain_store, demo_raw)
    methods = ["UNet", "KIKI-Net", "Kiu-net", "D5C5", "PC-RNN", "OUCR"]
    bench = read_bench(write_bench(tmp_path / "b.csv", [net(m, 32, rate=1.0 + i) for i, m in enumerate(methods)]))
    plan = make_plan(config, bench, gpus=3)
    hours = list(plan.table["hours"])
    assert plan.gpu_hours == pytest.approx(sum(hours))
    assert plan.wall_hours == pytest.approx(greedy_wall_hours([(h, 1) for h in hours], 3))
    assert plan.wall_hours < plan.gpu_hours


def test_ablation_variants_and_sweep_points(tmp_path, brain_store, demo_raw):
    config = demo_layout("tiny.yaml", tmp_path, brain_store, demo_raw)
    config["ablation"]["variants"] = ["UC-CRNN", "UC-CRNN + RM", "UC-CRNN + OC-CRNN + RM (OUCR)"]
    config["models"]["OUCR"]["iterations"] = 2
    config["iterations_sweep"]["values"] = [1, 2]
    bench = read_bench(write_bench(tmp_path / "b.csv", [net("OUCR", 32, rate=4.0), net("UC-CRNN + RM", 32, rate=16.0)]))
    rows = make_plan(config, bench).table.query("dataset == 'demo-brain'").set_index("display")
    oucr = rows.loc["OUCR", "s_per_step"]
    assert rows.loc["UC-CRNN + RM", "s_per_step"] == pytest.approx(oucr / 4)  # its own row
    assert rows.loc["UC-CRNN + RM", "bench"].startswith("UC-CRNN + RM@32")
    assert rows.loc["UC-CRNN", "s_per_step"] == pytest.approx(oucr)  # OUCR's row, said so
    assert "OUCR's row" in rows.loc["UC-CRNN", "notes"]
    assert rows.loc["OUCR J=1", "s_per_step"] == pytest.approx(oucr / 2)  # J / default J
    assert rows.loc["OUCR J=1", "val_s_per_epoch"] == pytest.approx(rows.loc["OUCR", "val_s_per_epoch"] / 2)
    assert "J/2" in rows.loc["OUCR J=1", "notes"]


def test_a_method_missing_from_the_bench_is_unknown(tmp_path):
    config = one_dataset_config(tmp_path)
    config["methods"] = ["UNet", "D5C5"]
    bench = read_bench(write_bench(tmp_path / "b.csv", [net("UNet", 16)]))
    plan = make_plan(config, bench)
    rows = plan.table.set_index("display")
    assert math.isnan(rows.loc["D5C5", "hours"]) and rows.loc["D5C5", "fits"] == "?"
    assert plan.gpu_hours == pytest.approx(rows.loc["UNet", "hours"])
    assert any("unknown cost: 1 jobs (D5C5)" in t for t in plan.totals)


def test_measure_benches_only_what_is_missing(tmp_path, monkeypatch):
    import oucr.engine.bench as bench_module

    calls = []

    def fake_run_bench(config, methods, size, device_name, threads, batch_size, amp, checkpointing, min_seconds,
                       **options):
        calls.append((list(methods), size, batch_size, amp, checkpointing))
        return pd.DataFrame([{**net(m, size, batch=batch_size, rate=2.0), "device": "cpu:fake"} for m in methods])

    monkeypatch.setattr(bench_module, "run_bench", fake_run_bench)
    config = one_dataset_config(tmp_path)
    config["methods"] = ["UNet", "D5C5"]
    bench = read_bench(write_bench(tmp_path / "b.csv", [net("UNet", 16)]))
    rows = make_plan(config, bench, measure=True).table.set_index("display")
    assert calls == [(["D5C5"], 16, 2, "none", False)]
    assert rows.loc["D5C5", "s_per_step"] == pytest.approx(2 * 2 / 2.0)
    assert "measured here" in rows.loc["D5C5", "notes"]


def test_given_slice_counts(tmp_path):
    config = one_dataset_config(tmp_path)
    config["results"] = str(tmp_path / "nothing")
    r = make_plan(config, given_slices={"knee": (100, 10, 20)}).table.iloc[0]
    assert (r["train_slices"], r["val_slices"], r["source"]) == (100, 10, "given")
    assert r["steps"] == 3 * 25


def _cli_config(tmp_path: Path, config: Dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_cli_prints_the_table_and_writes_csv(tmp_path, capsys):
    config = _cli_config(tmp_path, one_dataset_config(tmp_path))
    bench = write_bench(tmp_path / "b.csv", [net("UNet", 16)])
    out = tmp_path / "plan.csv"
    assert main(["plan", "--config", str(config), "--bench", str(bench), "--gpus", "2", "--gpu-memory", "80",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split()[:3] == ["dataset", "acc", "run"]
    assert "[1] slice counts of 'knee' from the prepared store" in text
    assert "wall time on 2 GPUs" in text
    written = pd.read_csv(out)
    assert list(written.columns) == COLUMNS and len(written) == 1  # UNet at x4
    assert main(["plan", "--config", str(config), "--bench", str(bench), "--format", "md"]) == 0
    assert capsys.readouterr().out.startswith("| dataset | acc | run |")


def test_cli_errors_name_the_file(tmp_path, capsys):
    config_dict = one_dataset_config(tmp_path)
    config = _cli_config(tmp_path, config_dict)
    missing = tmp_path / "nope.csv"
    assert main(["plan", "--config", str(config), "--bench", str(missing)]) == 2
    assert f"{missing}: bench file does not exist" in capsys.readouterr().err
    other_size = write_bench(tmp_path / "b64.csv", [net("UNet", 64)])
    assert main(["plan", "--config", str(config), "--bench", str(other_size)]) == 2
    assert f"{other_size}: no row at size 16 (sizes in the file: 64)" in capsys.readouterr().err
    not_a_bench = tmp_path / "x.csv"
    not_a_bench.write_text("a,b\n1,2\n")
    assert main(["plan", "--config", str(config), "--bench", str(not_a_bench)]) == 2
    assert "bench file lacks the column(s) method, size, batch_size" in capsys.readouterr().err
    # no store and raw folders that do not exist
    config_dict["results"] = str(tmp_path / "empty")
    config_dict["datasets"]["knee"].update({"train_input": str(tmp_path / "no" / "train"),
                                            "test_input": str(tmp_path / "no" / "val")})
    assert main(["plan", "--config", str(_cli_config(tmp_path, config_dict))]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'no' / 'train'}: input folder (datasets.knee.train_input) does not exist" in err
    assert "--slices knee=TRAIN:VAL" in err
    with pytest.raises(DataError):
        dataset_counts(config_dict, "knee")
