"""Inspection of the OUCR branches: recurrent-cell feature maps, receptive fields, `oucr inspect`."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest
import torch

from oucr.errors import DataError
from oucr.fft import fft2c
from oucr.engine import inspect as cli_insp
from oucr.inspect_files import read_features
from oucr.models import inspect as insp
from oucr.models.crnn import CRNN
from oucr.models.oucr import OUCR
from oucr.physics import SingleCoilMRI

SMALL = dict(oc_features=4, uc_features=6, rm_features=4, iterations=3, res_blocks=2, oc_depth=2)


def make_physics(size: int = 16) -> SingleCoilMRI:
    g = torch.Generator().manual_seed(1)
    image = torch.complex(torch.randn(1, size, size, generator=g), torch.randn(1, size, size, generator=g))
    mask = (torch.rand(1, 1, size, generator=g) < 0.5).float()
    return SingleCoilMRI(fft2c(image) * mask, mask)


def test_record_cells_gives_every_iteration_and_removes_its_hooks():
    torch.manual_seed(0)
    model = OUCR(**SMALL)
    physics = make_physics()
    image = physics.zero_filled()
    output, records = insp.cell_feature_maps(model, image, physics)
    with torch.no_grad():
        torch.testing.assert_close(output, model(image, physics))
    assert set(records) == {"oc", "uc"}
    # the first iteration has no recurrent term: J - 1 cell outputs, J hidden states
    assert len(records["oc"].cell) == 2 and len(records["oc"].hidden) == 3
    assert records["oc"].hidden[0].shape == (1, 4, 64, 64)  # 4x per axis at depth 2
    assert records["uc"].cell[-1].shape == (1, 6, 4, 4)  # 1/4 per axis
    # the recorded hidden state is the one the branch carries: the next cell input
    with torch.no_grad():
        assert torch.allclose(model.oc.cell(records["oc"].hidden[0]), records["oc"].cell[0])
    for branch in model.branches.values():  # hooks are gone
        assert not branch.cell._forward_hooks and not branch.merge._forward_hooks
    _, last = insp.cell_feature_maps(model, image, physics, last_only=True)
    assert len(last["uc"].hidden) == 1 and torch.equal(last["uc"].hidden[0], records["uc"].hidden[-1])


def test_record_cells_on_a_single_branch_variant():
    torch.manual_seed(0)
    model = OUCR(**SMALL, use_uc=False, use_rm=False)
    physics = make_physics()
    _, records = insp.cell_feature_maps(model, physics.zero_filled(), physics)
    assert list(records) == ["oc"]
    with pytest.raises(TypeError):
        insp.branches_of(torch.nn.Conv2d(2, 2, 3))


def test_overcomplete_receptive_field_is_smaller():
    torch.manual_seed(0)
    model = OUCR(oc_features=6, uc_features=6, rm_features=4, iterations=2, oc_depth=2)
    for iterations in (1, 2):
        rf = insp.receptive_field(model, size=48, seeds=(0, 1), iterations=iterations)
        oc, uc = rf["oc"], rf["uc"]
        assert oc.radius < uc.radius, (iterations, oc.radius, uc.radius)
        assert oc.extent < uc.extent and oc.area < uc.area
        assert not oc.clipped and uc.clipped == (iterations == 2)  # 2 UC iterations reach 23 px
        assert oc.hidden_size == 192 and uc.hidden_size == 12
        assert oc.gradient.shape == (48, 48) and abs(oc.gradient.sum() - 1) < 1e-4
    # unrolling engages the recurrent cell and widens the field
    assert insp.receptive_field(model.uc, size=48, seeds=(0,), iterations=2)["uc"].extent > uc.extent / 2


def test_trained_weights_match_a_fresh_twin_of_the_same_seed():
    torch.manual_seed(7)
    branch = CRNN("uc", 5, iterations=2)
    trained = insp.receptive_field(branch, size=32, seeds=(7,), init="trained")["uc"]
    fresh = insp.receptive_field(branch, size=32, seeds=(7,), init="fresh")["uc"]
    assert trained.radius == fresh.radius and np.array_equal(trained.gradient, fresh.gradient)
    state = torch.random.get_rng_state()
    insp.receptive_field(branch, size=32, seeds=(1, 2))
    assert torch.equal(state, torch.random.get_rng_state())  # fresh twins leave the global RNG alone
    with pytest.raises(ValueError, match="divisible by 4"):
        insp.receptive_field(branch, size=30)
    with pytest.raises(ValueError, match="init"):
        insp.receptive_field(branch, size=32, init="pretrained")


def test_mass_summaries_on_known_maps():
    delta = np.zeros((9, 9))
    delta[4, 4] = 1.0
    assert insp.radius_holding(delta) == 0.0 and insp.area_holding(delta) == 1
    assert insp.support_half_width(delta) == 0
    ring = np.zeros((9, 9))
    ring[4, 4], ring[4, 7] = 0.5, 0.5  # half the mass 3 px to the right
    assert insp.radius_holding(ring, 0.95) == 3.0 and insp.radius_holding(ring, 0.4) == 0.0
    assert insp.area_holding(ring, 0.95) == 2 and insp.support_half_width(ring) == 3


def _args(tmp_path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli_insp.add_arguments(parser)
    return parser.parse_args(
        ["--out-features", str(tmp_path / "features.h5"), "--out-receptive-field", str(tmp_path / "rf.csv"),
         "--size", "32", "--rf-seeds", "2", "--channels", "3", *extra]
    )


SMALL_ARGS = [a for kv in ("oc_features=4", "uc_features=6", "rm_features=4", "iterations=2", "oc_depth=1")
              for a in ("--model-arg", kv)]


def test_inspect_command_with_random_weights_on_a_phantom(tmp_path):
    assert cli_insp.run(_args(tmp_path, *SMALL_ARGS, "--rf-iterations", "1", "2")) == 0
    maps = read_features(tmp_path / "features.h5")
    assert set(maps) == {"input", "oc", "uc"}
    assert maps["input"].shape == (32, 32)
    assert maps["oc"].shape == (3, 64, 64) and maps["uc"].shape == (3, 8, 8)  # oc_depth 1, uc_depth 2
    everything = read_features(tmp_path / "features.h5", everything=True)
    assert everything["oc_hidden"].shape == (3, 64, 64) and everything["uc_erf"].shape == (32, 32)
    assert len(set(everything["oc_channels"])) == 3
    table = pd.read_csv(tmp_path / "rf.csv")
    assert list(table["branch"]) == ["oc", "oc", "uc", "uc"] and set(table["init"]) == {"fresh"}
    oc, uc = table[table["branch"] == "oc"], table[table["branch"] == "uc"]
    assert (oc["radius"].to_numpy() < uc["radius"].to_numpy()).all()


def test_inspect_command_with_a_checkpoint_and_a_store(tmp_path):
    from oucr.data.store import PreparedVolume, write_store

    torch.manual_seed(0)
    kwargs = dict(oc_features=4, uc_features=6, rm_features=4, iterations=2, oc_depth=1)
    model = OUCR(**kwargs)
    torch.save({"model": model.state_dict(), "model_kwargs": kwargs, "acceleration": 8}, tmp_path / "ckpt.pt")
    rng = np.random.default_rng(0)
    volumes = [PreparedVolume(volume=f"vol{i}", subject=f"s{i}", target=rng.normal(size=(3, 32, 32)).astype(np.complex64),
                              source="synthetic", format="magnitude", slices=np.arange(3), split=split)
               for i, split in enumerate(["train", "test"])]
    write_store(tmp_path / "store", volumes)
    args = _args(tmp_path, "--checkpoint", str(tmp_path / "ckpt.pt"), "--store", str(tmp_path / "store"),
                 "--slice", "1")
    args.out_receptive_field = tmp_path / "rf.json"
    assert cli_insp.run(args) == 0
    everything = read_features(tmp_path / "features.h5", everything=True)
    assert everything["target"].shape == (32, 32)
    import h5py

    with h5py.File(tmp_path / "features.h5") as f:
        assert f.attrs["volume"] == "vol1" and f.attrs["slice"] == 1 and f.attrs["acceleration"] == 8
        assert json.loads(f.attrs["model_kwargs"])["oc_features"] == 4
    rows = json.loads((tmp_path / "rf.json").read_text())
    assert [(r["branch"], r["init"], r["iterations"]) for r in rows] == [
        (b, init, its) for b in ("oc", "uc") for init in ("trained", "fresh") for its in (1, 2)]
    assert all(r["seeds"] == (1 if r["init"] == "trained" else 2) for r in rows)
    # weights that do not fit the model arguments are a DataError naming the file
    torch.save({"model": model.state_dict()}, tmp_path / "bare.pt")
    with pytest.raises(DataError, match="bare.pt"):
        cli_insp.run(_args(tmp_path, "--checkpoint", str(tmp_path / "bare.pt")))
    with pytest.raises(DataError, match="does not exist"):
        read_features(tmp_path / "missing.h5")
