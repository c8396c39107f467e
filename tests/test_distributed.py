"""One training over several processes (DDP with Gloo on the CPU), gradient accumulation, the data stream.

The multi-process runs go through ``oucr train --nproc N``, i.e. PyTorch's own launcher, as a user would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from oucr.config import with_overrides
from oucr.engine import distributed as dist
from oucr.engine.train import EpochBatches, epoch_order, make_job, train

# wide enough that one epoch lasts about a second, so that a kill lands inside a run
MODEL = ["--set", "models.OUCR.oc_features=8", "--set", "models.OUCR.uc_features=16", "--set", "models.OUCR.iterations=2"]


def _command(tiny, root: Path, nproc: int, epochs: int = 3):
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(tiny["config"]))
    return [sys.executable, "-m", "oucr", "train", "--config", str(config), "--method", "OUCR", "--dataset", "tiny",
            "--acceleration", "4", "--store", str(tiny["store"]), "--masks", str(tiny["masks"]),
            "--out", str(root / "out"), "--checkpoint-dir", str(root / "ckpt"), "--threads", "1",
            "--device", "cpu", "--nproc", str(nproc), "--set", f"training.epochs={epochs}",
            "--set", "training.batch_size=2", *MODEL]


def _weights(root: Path):
    return torch.load(root / "out" / "model.pt", weights_only=False)["state_dict"]


def _outputs(tiny, model_file: Path) -> torch.Tensor:
    """The trained model's reconstructions of the validation slices.

    Compared instead of raw weights: the bias of a network's last convolution adds a constant
    image, i.e. a change of the always-sampled k-space centre, which data consistency removes;
    its gradient is pure round-off, and Adam turns round-off into full steps. Every
    parameter that changes the output is compared through the output.
    """
    from oucr.data.dataset import SliceDataset
    from oucr.engine.checkpoint import load_trained_model
    from oucr.engine.inference import run_batch

    model, _ = load_trained_model(model_file)
    data = SliceDataset(tiny["store"], "val", None, masks_file=tiny["masks"])
    batch = torch.utils.data.default_collate([data[i] for i in range(len(data))])
    with torch.no_grad():
        return run_batch(model, batch)


@pytest.fixture(scope="module")
def runs(tiny, tmp_path_factory):
    """The same training with one and with two processes (global batch 2 in both)."""
    out = {}
    for nproc in (1, 2):
        root = tmp_path_factory.mktemp(f"nproc{nproc}")
        res = subprocess.run(_command(tiny, root, nproc), capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        out[nproc] = root
    return out


def test_two_processes_train_the_same_weights_as_one(tiny, runs):
    one, two = _weights(runs[1]), _weights(runs[2])
    assert one.keys() == two.keys()
    out1, out2 = _outputs(tiny, runs[1] / "out" / "model.pt"), _outputs(tiny, runs[2] / "out" / "model.pt")
    torch.testing.assert_close(out2, out1, rtol=1e-4, atol=1e-4 * out1.abs().max().item())
    h1, h2 = pd.read_csv(runs[1] / "out" / "history.csv"), pd.read_csv(runs[2] / "out" / "history.csv")
    assert np.abs(h1["val_psnr"] - h2["val_psnr"]).max() < 0.01
    assert np.allclose(h1["train_loss"], h2["train_loss"], rtol=1e-4)
    # rank 0 alone writes: one history, one model, one checkpoint
    assert torch.load(runs[2] / "out" / "model.pt", weights_only=False)["nproc"] == 2
    assert sorted(p.name for p in (runs[2] / "ckpt").iterdir()) == ["last.pt"]


def test_a_killed_two_process_run_resumes(tiny, runs, tmp_path):
    command = _command(tiny, tmp_path, 2)
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not (tmp_path / "ckpt" / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both training processes
    proc.wait()
    assert (tmp_path / "ckpt" / "last.pt").exists()
    assert not (tmp_path / "out" / "model.pt").exists(), "the run finished before it could be interrupted"
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stderr
    # the same processes, the same reductions: resuming changes nothing, bit for bit
    reference, result = _weights(runs[2]), _weights(tmp_path)
    for key in reference:
        assert torch.equal(result[key], reference[key]), key


def test_step_groups_and_shards_cover_every_sample_once_with_exact_weights():
    order = list(range(11))
    groups = dist.step_groups(order, batch_size=4, accumulate=2)
    assert groups == [[[0, 1, 2, 3], [4, 5, 6, 7]], [[8, 9, 10]]]
    for world in (1, 2, 3, 4):
        for batch in ([0, 1, 2, 3], [8, 9, 10], [7]):
            pieces = [dist.shard(batch, r, world) for r in range(world)]
            real = [i for idx, w in pieces for i, wi in zip(idx, w) if wi == 1.0]
            assert real == batch  # contiguous, in order, each once
            assert all(len(idx) >= 1 for idx, _ in pieces)  # no rank idles (it would stall the reduction)
            assert max(len(idx) for idx, _ in pieces) - min(len(idx) for idx, _ in pieces) <= 1 or len(batch) < world
    with pytest.raises(ValueError):
        dist.shard([1, 2], 2, 2)


def test_epoch_batches_weight_each_sample_by_its_step_group(tiny, tmp_path):
    job = make_job(with_overrides(tiny["config"], ["training.batch_size=2", "training.accumulate=2"]), "UNet",
                   "tiny", 4, tiny["store"], tiny["masks"], tmp_path / "o", tmp_path / "c")
    n = 6
    for world in (1, 2):
        per_rank = [EpochBatches(job, n, dist.DistributedContext(world, r, r)) for r in range(world)]
        for b in per_rank:
            b.set_epoch(3)
        total = sum(w for b in per_rank for ws in b.weights for w in ws)
        assert total == pytest.approx(2.0)  # two step groups (4 + 2 samples), each summing to 1
        seen = sorted(i for b in per_rank for batch, ws in zip(b.batches, b.weights)
                      for (i, e), w in zip(batch, ws) if w > 0)
        assert seen == sorted(epoch_order(job, 3, n))
        assert all(e == 3 for b in per_rank for batch in b.batches for _, e in batch)
        assert [b.ends_step for b in per_rank][0] == [False, True, True]


def test_gradient_accumulation_matches_the_large_batch(tiny, tmp_path):
    """batch 1 x accumulate 2 takes the steps of batch 2 (a model without batch norm, to float tolerance)."""
    base = with_overrides(tiny["config"], ["training.epochs=2", "models.OUCR.iterations=1"])
    jobs = {}
    for name, sets in (("big", ["training.batch_size=2"]), ("acc", ["training.batch_size=1", "training.accumulate=2"])):
        jobs[name] = make_job(with_overrides(base, sets), "OUCR", "tiny", 4, tiny["store"], tiny["masks"],
                              tmp_path / name / "out", tmp_path / name / "ckpt", run_name="oucr")
        train(jobs[name], threads=1, progress=False)
    big, acc = (_outputs(tiny, tmp_path / name / "out" / "model.pt") for name in ("big", "acc"))
    tolerance = dict(rtol=1e-4, atol=1e-4 * big.abs().max().item())
    torch.testing.assert_close(acc, big, **tolerance)
    # and it is not trivially equal to taking every micro-batch as a step
    single = make_job(with_overrides(base, ["training.batch_size=1"]), "OUCR", "tiny", 4, tiny["store"],
                      tiny["masks"], tmp_path / "one" / "out", tmp_path / "one" / "ckpt", run_name="oucr")
    train(single, threads=1, progress=False)
    one = _outputs(tiny, tmp_path / "one" / "out" / "model.pt")
    assert not torch.allclose(one, big, **tolerance)
