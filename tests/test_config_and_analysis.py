"""Config reading, overrides, training settings, seeds and the k-space band analysis."""

import json

import numpy as np
import pytest

from oucr.analysis import band_window, kspace_band
from oucr.config import acceleration_settings, load_config, training_config, with_overrides
from oucr.seeding import derive_seed
from oucr.errors import ConfigError


def test_load_config_file_and_inline(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("seed: 3\ntraining: {epochs: 2}\n")
    assert load_config(p)["seed"] == 3
    assert load_config(json.dumps({"seed": 4}))["seed"] == 4
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "bad.yaml")


def test_overrides_are_parsed_as_yaml_and_do_not_mutate():
    base = {"models": {"OUCR": {"iterations": 5}}}
    out = with_overrides(base, ["models.OUCR.iterations=3", "training.lr=1e-3"])
    assert out["models"]["OUCR"]["iterations"] == 3
    assert out["training"]["lr"] == pytest.approx(1e-3)
    assert base["models"]["OUCR"]["iterations"] == 5
    with pytest.raises(ConfigError):
        with_overrides(base, ["no-equals-sign"])


def test_training_defaults_are_the_paper_protocol():
    t = training_config({})
    assert (t.epochs, t.batch_size, t.lr, t.lr_step, t.lr_gamma, t.loss) == (50, 4, 1.5e-4, 5, 0.9, "l1")


@pytest.mark.parametrize("section, message", [
    ({"epochs": 0}, "epochs"),
    ({"epochs": -3}, "epochs"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"lr": 0}, "lr"),
    ({"amp": "fp8"}, "amp"),
    ({"epoch": 3}, "unknown key"),
])
def test_bad_training_values_are_rejected(section, message):
    with pytest.raises(ConfigError, match=message):
        training_config({"training": section})


def test_per_method_training_override():
    cfg = {"training": {"epochs": 10, "methods": {"PC-RNN": {"epochs": 4}}}}
    assert training_config(cfg, "PC-RNN").epochs == 4
    assert training_config(cfg, "UNet").epochs == 10


def test_acceleration_settings():
    cfg = {"accelerations": {4: {"center_fraction": 0.08}}, "mask_type": "random"}
    assert acceleration_settings(cfg, 4) == {"center_fraction": 0.08, "mask_type": "random"}
    assert acceleration_settings({"accelerations": {"4": {"center_fraction": 0.08}}}, 4)["center_fraction"] == 0.08
    with pytest.raises(ConfigError, match="not configured"):
        acceleration_settings(cfg, 8)


def test_derive_seed_is_stable_and_distinct():
    assert derive_seed(0, "demo-brain", "oucr", 4) == derive_seed(0, "demo-brain", "oucr", 4)
    assert derive_seed(0, "demo-brain", "oucr", 4) != derive_seed(0, "demo-brain", "oucr", 8)
    assert derive_seed(0, "a", 1) == 855916615  # fixed across processes and platforms


def test_kspace_bands_partition_the_spectrum():
    rng = np.random.default_rng(0)
    vol = rng.random((2, 16, 20)).astype(np.float32)
    low, high = band_window((16, 20), "low", 0.25), band_window((16, 20), "high", 0.25)
    assert np.array_equal(low + high, np.ones((16, 20)))
    assert low.sum() == 4 * 5 and low[8, 10] == 1
    # a constant image lives entirely in the low band
    const = np.ones((1, 16, 20), np.float32)
    assert np.allclose(kspace_band(const, "low", 0.25), 1, atol=1e-5)
    assert np.allclose(kspace_band(const, "high", 0.25), 0, atol=1e-5)
    with pytest.raises(ValueError):
        kspace_band(vol, "mid", 0.25)
