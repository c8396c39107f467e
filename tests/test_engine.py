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
    assert list(csv.columns) == ["run", "method", "dataset", "acceleration", "replicate", "epoch", "train_loss",
                                 "val_psnr", "val_ssim", "val_nmse", "lr", "seconds", "slices_per_second"]
    assert (csv["method"] == "UNet").all() and (csv["replicate"] == 0).all()
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


def test_magnitude_loss_is_the_l1_of_magnitudes():
    from oucr.engine.losses import per_sample_loss

    g = torch.Generator().manual_seed(0)
    out, target = torch.randn(3, 2, 8, 8, generator=g), torch.randn(3, 2, 8, 8, generator=g)
    mag = lambda x: torch.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2)  # noqa: E731
    expected = torch.stack([torch.nn.functional.l1_loss(mag(out[i:i + 1]), mag(target[i:i + 1])) for i in range(3)])
    torch.testing.assert_close(per_sample_loss("l1_magnitude", out, target), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(per_sample_loss("l1", out, target).mean(), torch.nn.functional.l1_loss(out, target))
    # a global phase rotation leaves the magnitudes, not the channels: only the channel loss sees it
    rotated = torch.stack([-target[:, 1], target[:, 0]], dim=1)  # multiplied by i
    assert per_sample_loss("l1_magnitude", rotated, target).max() < 1e-5
    assert per_sample_loss("l1", rotated, target).min() > 0.1
    # the gradient is finite where the output is exactly zero
    zero = torch.zeros(1, 2, 4, 4, requires_grad=True)
    per_sample_loss("l1_magnitude", zero, torch.ones(1, 2, 4, 4)).sum().backward()
    assert torch.isfinite(zero.grad).all()


def test_every_run_of_a_dataset_and_acceleration_sees_the_same_data_stream(tiny, tmp_path):
    """UNet, an OUCR variant, a J-sweep point and another replicate: same batches, same masks; own weights."""
    from oucr.engine.train import build_datasets, epoch_order

    jobs = [
        _job(tiny, tmp_path / "a", "UNet"),
        make_job(tiny["config"], "UC-CRNN + RM", "tiny", 4, tiny["store"], tiny["masks"], tmp_path / "b", tmp_path / "bc"),
        make_job(with_overrides(tiny["config"], ["models.OUCR.iterations=3"]), "OUCR", "tiny", 4, tiny["store"],
                 tiny["masks"], tmp_path / "c", tmp_path / "cc", run_name="oucr-j3"),
        make_job(tiny["config"], "OUCR", "tiny", 4, tiny["store"], tiny["masks"], tmp_path / "d", tmp_path / "dc",
                 replicate=1),
    ]
    assert len({j.data_seed for j in jobs}) == 1 and len({j.init_seed for j in jobs}) == len(jobs)
    streams = []
    for job in jobs:
        train_ds, _ = build_datasets(job)
        stream = []
        for epoch in (0, 1):
            order = epoch_order(job, epoch, len(train_ds))
            stream.append((order, [train_ds[(i, epoch)]["mask"].numpy().tobytes() for i in order]))
        streams.append(stream)
    assert all(s == streams[0] for s in streams[1:])
    assert streams[0][0][0] != streams[0][1][0]  # each epoch is shuffled anew
    # another acceleration, dataset or global seed is another stream
    other = make_job(with_overrides(tiny["config"], ["seed=1"]), "UNet", "tiny", 4, tiny["store"], tiny["masks"],
                     tmp_path / "e", tmp_path / "ec")
    assert other.data_seed != jobs[0].data_seed


@pytest.mark.filterwarnings("ignore:.*meta parameter")
def test_resume_restores_onto_any_device_and_a_corrupt_checkpoint_is_a_clear_error(tiny, tmp_path):
    """Checkpoints are read on the CPU; the meta device stands in for a GPU."""
    from oucr.engine.checkpoint import read_checkpoint, restore_checkpoint
    from oucr.engine.runtime import rng_state
    from oucr.errors import DataError
    from oucr.models.registry import build_model

    job = _job(tiny, tmp_path, **{"training.epochs": 1})
    train(job, threads=1, progress=False)
    blob = read_checkpoint(job.checkpoint_dir / "last.pt")
    assert blob["rng"]["torch"].device.type == "cpu"
    # today's crash: a checkpoint loaded onto the training device has its RNG state on that device
    with pytest.raises(TypeError):
        torch.set_rng_state(blob["rng"]["torch"].to("meta"))
    model = build_model("UNet", None, **job.model_kwargs).to("meta")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.9)
    before = rng_state()["torch"]
    state = restore_checkpoint(blob, model, optimizer, scheduler)
    assert state["start_epoch"] == 1 and len(state["history"]) == 1
    assert next(model.parameters()).device.type == "meta"
    assert torch.equal(torch.get_rng_state(), blob["rng"]["torch"]) and not torch.equal(before, blob["rng"]["torch"])
    # a damaged last.pt: one error naming the file and how to start afresh, on every rerun
    (job.checkpoint_dir / "last.pt").write_bytes(b"\x80\x04 not a checkpoint")
    for _ in range(2):
        with pytest.raises(DataError, match="start this training afresh") as err:
            train(job, threads=1, progress=False)
        assert err.value.path == str(job.checkpoint_dir / "last.pt")


def test_a_model_trained_for_another_acceleration_is_refused_unless_forced(tiny, tmp_path):
    from oucr.engine.reconstruct import reconstruct_store

    train(_job(tiny, tmp_path, **{"training.epochs": 1}), threads=1, progress=False)
    args = (tiny["store"], tiny["masks"], tmp_path / "recon")
    with pytest.raises(ConfigError, match="trained on tiny at 4x.*--force"):
        reconstruct_store(*args, "tiny", 8, model_file=tmp_path / "out" / "model.pt", device="cpu")
    with pytest.raises(ConfigError, match="--force"):
        reconstruct_store(*args, "other", 4, model_file=tmp_path / "out" / "model.pt", device="cpu")
    assert reconstruct_store(*args, "tiny", 8, model_file=tmp_path / "out" / "model.pt", device="cpu", force=True)


def _killed_by_the_oom_killer(**kwargs):
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def _stuck(**kwargs):
    time.sleep(60)


def _measured(**kwargs):
    return {"method": kwargs["method"], "train_slices_per_s": 1.0}


def test_bench_survives_a_dead_or_stuck_measuring_process():
    from oucr.engine.bench import in_fresh_process

    t0 = time.time()
    dead = in_fresh_process(_killed_by_the_oom_killer, {"method": "Kiu-net"})
    assert dead["method"] == "Kiu-net" and "SIGKILL" in dead["error"] and "out of memory" in dead["error"]
    stuck = in_fresh_process(_stuck, {"method": "OUCR"}, timeout=3)
    assert "no result within 3 s" in stuck["error"]
    assert time.time() - t0 < 40
    assert in_fresh_process(_measured, {"method": "UNet"}) == {"method": "UNet", "train_slices_per_s": 1.0}
