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
    # the paper's schedule (Sec. 3) and the lineage's magnitude L1, fp32, one process, no accumulation
    assert (t.epochs, t.batch_size, t.lr, t.lr_step, t.lr_gamma, t.loss) == (50, 4, 1.5e-4, 5, 0.9, "l1_magnitude")
    assert (t.amp, t.accumulate, t.nproc, t.deterministic, t.compile) == ("none", 1, 1, True, False)


@pytest.mark.parametrize("section, message", [
    ({"epochs": 0}, "epochs"),
    ({"epochs": -3}, "epochs"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"lr": 0}, "lr"),
    ({"amp": "fp8"}, "amp"),
    ({"epoch": 3}, "unknown key"),
    ({"loss": "l1_mag"}, "loss"),
    ({"accumulate": 0}, "accumulate"),
    ({"nproc": 4, "batch_size": 2}, "global batch"),
    ({"deterministic": "yes"}, "deterministic"),
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
    const = np.ones((1, 16, 20), np.complex64)
    assert np.allclose(kspace_band(const, "low", 0.25), 1, atol=1e-5)
    assert np.allclose(kspace_band(const, "high", 0.25), 0, atol=1e-5)
    with pytest.raises(ValueError):
        kspace_band(vol.astype(np.complex64), "mid", 0.25)
    with pytest.raises(ValueError, match="complex"):
        kspace_band(vol, "low", 0.25)  # a magnitude image has no acquired k-space


def test_bands_are_taken_of_the_complex_images():
    """A reconstruction wrong only in high-frequency k-space is exact in the low band, and not in the high one.

    With bands of the magnitude images (the old analysis) the same reconstruction is not exact in the
    low band: the magnitude mixes the frequencies of the complex error into the centre.
    """
    from oucr import metrics
    from oucr.fft import fft2c, ifft2c

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:32, :32] / 32.0
    reference = ((1 + rng.random((2, 32, 32))) * np.exp(1j * 3 * (yy + xx))).astype(np.complex64)
    error = np.zeros((2, 32, 32), np.complex64)
    high = band_window((32, 32), "high", 0.25).astype(bool)
    error[:, high] = 0.3 * (rng.standard_normal(high.sum()) + 1j * rng.standard_normal(high.sum()))
    recon = ifft2c(fft2c(reference) + error).astype(np.complex64)
    low_ref, low_rec = kspace_band(reference, "low", 0.25), kspace_band(recon, "low", 0.25)
    assert np.allclose(low_ref, low_rec, atol=1e-5)
    assert metrics.ssim(low_ref, low_rec) > 0.99999
    high_ref, high_rec = kspace_band(reference, "high", 0.25), kspace_band(recon, "high", 0.25)
    assert metrics.psnr(high_ref, high_rec) < 30
    # the magnitude spectrum mixes the bands: the old analysis would have found a low-band error
    mag_low_ref = np.abs(ifft2c(fft2c(np.abs(reference).astype(np.complex64)) * band_window((32, 32), "low", 0.25)))
    mag_low_rec = np.abs(ifft2c(fft2c(np.abs(recon).astype(np.complex64)) * band_window((32, 32), "low", 0.25)))
    assert np.abs(mag_low_ref - mag_low_rec).max() > 1e-3


@pytest.mark.parametrize("shape, fraction, rows, cols", [
    ((16, 20), 0.25, (6, 10), (8, 13)),   # 4 x 5 block: top (16 - 4 + 1) // 2, left (20 - 5 + 1) // 2
    ((16, 20), 0.3, (6, 11), (7, 13)),    # 5 x 6: the odd side is centred on the DC row 8
    ((15, 9), 0.2, (6, 9), (4, 6)),       # 3 x 2 on odd sides: DC at (7, 4) inside
    ((4, 6), 0.1, (2, 3), (3, 4)),        # round() gives 0: at least the DC sample is kept
])
def test_band_window_is_the_centred_block_around_dc(shape, fraction, rows, cols):
    low = band_window(shape, "low", fraction)
    expected = np.zeros(shape, np.float32)
    expected[rows[0]:rows[1], cols[0]:cols[1]] = 1
    assert low.dtype == np.float32 and low.shape == shape
    np.testing.assert_array_equal(low, expected)
    high = band_window(shape, "high", fraction)
    assert high.dtype == np.float32
    np.testing.assert_array_equal(high, 1 - expected)
    assert low[shape[0] // 2, shape[1] // 2] == 1  # the DC sample of the centred k-space is low


@pytest.mark.parametrize("fraction", [0, 0.0, 1, 1.0, 1.5, -0.2])
def test_band_window_fraction_must_lie_strictly_between_0_and_1(fraction):
    with pytest.raises(ValueError, match=rf"^fraction must lie in \(0, 1\), got {fraction}$"):
        band_window((8, 8), "low", fraction)


def test_band_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"^band must be one of \('low', 'high'\), got 'mid'$"):
        band_window((8, 8), "mid", 0.25)
    with pytest.raises(ValueError, match=r"^expected a \(slices, H, W\) volume, got shape \(8, 8\)$"):
        kspace_band(np.zeros((8, 8), np.complex64), "low", 0.25)
    with pytest.raises(ValueError, match=r"^k-space bands are taken of complex images, got a real \(magnitude\) "
                                         r"volume$"):
        kspace_band(np.zeros((1, 8, 8)), "low", 0.25)


def test_kspace_band_is_a_float32_magnitude_of_the_windowed_spectrum():
    from oucr.fft import fft2c, ifft2c

    rng = np.random.default_rng(2)
    vol = (rng.standard_normal((2, 12, 10)) + 1j * rng.standard_normal((2, 12, 10))).astype(np.complex128)
    for band in ("low", "high"):
        out = kspace_band(vol, band, 0.3)
        assert out.dtype == np.float32 and out.shape == (2, 12, 10)
        expected = np.abs(ifft2c(fft2c(vol) * band_window((12, 10), band, 0.3)))
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
