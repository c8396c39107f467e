"""Training, resume, reconstruction and evaluation on a tiny prepared store."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from oucr.cli import main as cli
from oucr.config import ConfigError, with_overrides
from oucr.engine.train import make_job, train

TINY = {
    "seed": 0,
    "demo_data": {"seed": 0, "demo-brain": {"subjects": 6, "slices": 2, "size": 32}},
    "datasets": {
        "tiny": {"paper_dataset": "HPKS", "format": "magnitude", "input": None, "size": [32, 32],
                 "slices_per_volume": 2, "split": {"train": 3, "val": 1, "test": 2}},
    },
    "accelerations": {4: {"center_fraction": 0.08}},
    "mask_type": "random",
    "models": {"UNet": {"base_channels": 4, "levels": 3},
               "OUCR": {"oc_features": 4, "uc_features": 8, "rm_features": 4, "iterations": 2, "oc_depth": 1}},
    "training": {"epochs": 3, "batch_size": 2, "lr": 1e-3, "device": "cpu"},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A prepared tiny store and its fixed masks."""
    from oucr.data.demo import build_demo_data
    from oucr.data.fixed_masks import write_fixed_masks
    from oucr.data.prepare import prepare_dataset

    root = tmp_path_factory.mktemp("tiny")
    build_demo_data(TINY, root / "raw", kinds=("demo-brain",))
    config = with_overrides(TINY, [f"datasets.tiny.input={root / 'raw' / 'demo-brain'}"])
    prepare_dataset(config["datasets"]["tiny"], root / "store", seed=0, name="tiny")
    write_fixed_masks(root / "store", root / "masks.h5", 4, 0.08)
    return {"root": root, "config": config, "store": root / "store", "masks": root / "masks.h5"}


def _job(tiny, tmp_path, method="UNet", **overrides):
    config = with_overrides(tiny["config"], [f"{k}={v}" for k, v in overrides.items()])
    return make_job(config, method, "tiny", 4, tiny["store"], tiny["masks"], tmp_path / "out", tmp_path / "ckpt")


def test_short_training_lowers_the_loss_and_writes_outputs(tiny, tmp_path):
    torch.set_num_threads(1)
    history = train(_job(tiny, tmp_path, **{"training.epochs": 4}), threads=1, progress=False)
    assert list(history["epoch"]) == [1, 2, 3, 4]
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert np.isfinite(history["val_psnr"]).all()
    csv = pd.read_csv(tmp_path / "out" / "history.csv")
    assert list(csv.columns) == ["epoch", "train_loss", "val_psnr", "val_ssim", "val_nmse", "lr", "seconds",
                                 "slices_per_second"]
    blob = torch.load(tmp_path / "out" / "model.pt", weights_only=False)
    assert blob["method"] == "UNet" and blob["epoch"] == int(history["val_psnr"].idxmax()) + 1
    assert (tmp_path / "ckpt" / "last.pt").is_file()


def test_same_seed_same_numbers(tiny, tmp_path):
    a = train(_job(tiny, tmp_path / "a", **{"training.epochs": 2}), threads=1, progress=False)
    b = train(_job(tiny, tmp_path / "b", **{"training.epochs": 2}), threads=1, progress=False)
    pd.testing.assert_frame_equal(a.drop(columns=["seconds", "slices_per_second"]),
                                  b.drop(columns=["seconds", "slices_per_second"]))


def _train_cmd(tiny, out, ckpt, epochs):
    cfg = tiny["root"] / "config.yaml"
    import yaml

    cfg.write_text(yaml.safe_dump({**tiny["config"], "accelerations": {4: {"center_fraction": 0.08}}}))
    return [sys.executable, "-m", "oucr", "train", "--config", str(cfg), "--method", "OUCR", "--dataset", "tiny",
            "--acceleration", "4", "--store", str(tiny["store"]), "--masks", str(tiny["masks"]),
            "--out", str(out), "--checkpoint-dir", str(ckpt), "--threads", "1", "--set", f"training.epochs={epochs}",
            "--set", "training.batch_size=1",
            # wide enough that an epoch lasts about a second, so the kill lands inside a run
            "--set", "models.OUCR.oc_features=12", "--set", "models.OUCR.uc_features=24",
            "--set", "models.OUCR.iterations=3"]


def test_resume_after_kill_matches_uninterrupted_run(tiny, tmp_path):
    epochs = 3
    ref = subprocess.run(_train_cmd(tiny, tmp_path / "ref", tmp_path / "ref_ckpt", epochs), capture_output=True,
                         text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr
    # run again, kill it once the first epoch's checkpoint exists (mid-way through a later epoch)
    ckpt = tmp_path / "ckpt"
    proc = subprocess.Popen(_train_cmd(tiny, tmp_path / "out", ckpt, epochs), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (ckpt / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (ckpt / "last.pt").exists()
    assert not (tmp_path / "out" / "model.pt").exists(), "the run finished before it could be interrupted"
    resumed = subprocess.run(_train_cmd(tiny, tmp_path / "out", ckpt, epochs), capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    a = torch.load(tmp_path / "ref" / "model.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "out" / "model.pt", weights_only=False)["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ha = pd.read_csv(tmp_path / "ref" / "history.csv")
    hb = pd.read_csv(tmp_path / "out" / "history.csv")
    assert np.allclose(ha["train_loss"], hb["train_loss"]) and np.allclose(ha["val_psnr"], hb["val_psnr"])


def test_reconstruct_and_evaluate_write_documented_files(tiny, tmp_path):
    train(_job(tiny, tmp_path, **{"training.epochs": 1}), threads=1, progress=False)
    common = ["--store", str(tiny["store"]), "--masks", str(tiny["masks"]), "--dataset", "tiny",
              "--acceleration", "4"]
    assert cli(["reconstruct", "--model", str(tmp_path / "out" / "model.pt"), *common,
                "--out", str(tmp_path / "recon"), "--device", "cpu"]) == 0
    assert cli(["reconstruct", "--zero-filled", *common, "--out", str(tmp_path / "zf"), "--device", "cpu"]) == 0
    from oucr.data.store import PreparedStore

    store = PreparedStore(tiny["store"])
    tests = store.volumes("test")
    assert sorted(p.stem for p in (tmp_path / "recon").glob("*.h5")) == tests
    with h5py.File(tmp_path / "recon" / f"{tests[0]}.h5") as f:
        rec = f["reconstruction"][()]
        assert rec.dtype == np.float32 and rec.shape == store.load(tests[0])["target"].shape
        assert f.attrs["method"] == "UNet" and int(f.attrs["acceleration"]) == 4
    # zero-filled: exactly the magnitude of the inverse FFT of the masked k-space
    from oucr.data.fixed_masks import read_fixed_masks
    from oucr.fft import ifft2c

    mask = read_fixed_masks(tiny["masks"])[tests[0]]
    with h5py.File(tmp_path / "zf" / f"{tests[0]}.h5") as f:
        zf = f["reconstruction"][()]
    expected = np.abs(ifft2c(store.load(tests[0])["kspace"] * mask))
    assert np.allclose(zf, expected, rtol=1e-4, atol=1e-5 * expected.max())

    assert cli(["evaluate", "--recon", str(tmp_path / "recon"), "--store", str(tiny["store"]), "--masks",
                str(tiny["masks"]), "--method", "UNet", "--dataset", "tiny", "--acceleration", "4",
                "--out-volumes", str(tmp_path / "v.csv"), "--out-slices", str(tmp_path / "s.csv")]) == 0
    vols, slices = pd.read_csv(tmp_path / "v.csv"), pd.read_csv(tmp_path / "s.csv")
    assert len(vols) == len(tests) and len(slices) == 2 * len(tests)
    for col in ("method", "dataset", "acceleration", "volume", "psnr", "ssim", "nmse", "realised_acceleration",
                "git_commit", "versions", "device"):
        assert col in vols.columns
    assert {"psnr_low", "ssim_low", "psnr_high", "ssim_high"} <= set(slices.columns)
    assert vols["realised_acceleration"].between(2, 8).all()


@pytest.mark.parametrize("overrides, method, message", [
    ({}, "NoSuchNet", "unknown method"),
    ({"training.epochs": 0}, "UNet", "epochs"),
    ({"training.epochs": -2}, "UNet", "epochs"),
])
def test_bad_config_values_are_rejected(tiny, tmp_path, overrides, method, message):
    with pytest.raises(ConfigError, match=message):
        _job(tiny, tmp_path, method, **overrides)


def test_missing_dataset_gives_clear_cli_error(tiny, tmp_path, capsys):
    import yaml

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny["config"]))
    status = cli(["train", "--config", str(cfg), "--method", "UNet", "--dataset", "nope", "--acceleration", "4",
                  "--out", str(tmp_path / "o"), "--checkpoint-dir", str(tmp_path / "c")])
    assert status == 2
    assert "dataset 'nope' is not configured" in capsys.readouterr().err
    status = cli(["train", "--config", str(cfg), "--method", "UNet", "--dataset", "tiny", "--acceleration", "4",
                  "--store", str(tmp_path / "missing"), "--masks", str(tiny["masks"]),
                  "--out", str(tmp_path / "o"), "--checkpoint-dir", str(tmp_path / "c")])
    assert status == 2
    assert "manifest.csv missing" in capsys.readouterr().err
    assert not (tmp_path / "o" / "model.pt").exists()


def test_a_checkpoint_of_other_data_is_not_resumed(tiny, tmp_path):
    job = _job(tiny, tmp_path, **{"training.epochs": 1})
    train(job, threads=1, progress=False)
    before = job.fingerprint()
    # rewriting the masks file (as `oucr masks` would) changes the data identity
    import shutil

    masks = tmp_path / "masks.h5"
    shutil.copy(tiny["masks"], masks)
    moved = _job(tiny, tmp_path, **{"training.epochs": 1})
    moved.masks = masks
    masks.write_bytes(masks.read_bytes())
    assert moved.fingerprint() == before  # same bytes: same identity
    from oucr.data.fixed_masks import write_fixed_masks

    write_fixed_masks(tiny["store"], masks, 4, 0.04)  # other masks
    assert moved.fingerprint() != before


def test_bench_writes_one_row_per_method_with_documented_columns(tmp_path):
    from oucr.engine.bench import COLUMNS

    out = tmp_path / "bench.csv"
    tiny_config = Path(__file__).resolve().parents[1] / "config" / "tiny.yaml"
    status = cli(["bench", "--config", str(tiny_config), "--size", "32", "--batch-size", "2", "--threads", "1",
                  "--min-seconds", "0.01", "--methods", "CS", "OUCR", "--out", str(out)])
    assert status == 0
    frame = pd.read_csv(out)
    assert list(frame.columns[: len(COLUMNS)]) == COLUMNS
    assert list(frame["method"]) == ["CS", "OUCR"]
    oucr_row = frame.set_index("method").loc["OUCR"]
    assert oucr_row["train_slices_per_s"] > 0 and oucr_row["infer_ms_per_slice"] > 0
    assert oucr_row["train_gflop_per_step"] > 0 and oucr_row["peak_conv_gflops"] > 0
    assert oucr_row["pct_of_conv_peak"] == pytest.approx(
        100 * oucr_row["train_gflops"] / oucr_row["peak_conv_gflops"])
    assert oucr_row["amp"] == "none" and oucr_row["threads"] == 1
    assert frame.set_index("method").loc["CS", "infer_ms_per_slice"] > 0
