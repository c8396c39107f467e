"""The robustness analysis: identical perturbed inputs for every method, the stated SNR, the table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oucr.physics import measurement_noise, noise_seed


def _slice(size=64, seed=0):
    from oucr.fft import fft2c

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    image = (np.exp(-((yy - 0.5) ** 2 + (xx - 0.5) ** 2) / 0.05) * (1 + 0.1 * rng.random((size, size))))
    return fft2c(image.astype(np.complex64)).astype(np.complex64)


@pytest.mark.parametrize("snr_db", [10.0, 30.0])
def test_the_noise_has_the_stated_snr_on_the_sampled_locations_only(snr_db):
    kspace = _slice(128)
    mask = np.zeros(128, np.float32)
    mask[::2] = 1  # 64 sampled columns: 8192 samples
    masked = kspace * mask[None]
    noise = measurement_noise(masked, mask[None], snr_db, noise_seed("v", 3))
    sampled = np.broadcast_to(mask[None] > 0, masked.shape)
    assert np.all(noise[~sampled] == 0)
    measured = 10 * np.log10(np.mean(np.abs(masked[sampled]) ** 2) / np.mean(np.abs(noise[sampled]) ** 2))
    assert measured == pytest.approx(snr_db, abs=0.1)
    # real and imaginary parts carry half the variance each
    assert np.var(noise[sampled].real) == pytest.approx(np.var(noise[sampled].imag), rel=0.1)
    # the draw is a function of its seed alone
    assert np.array_equal(noise, measurement_noise(masked, mask[None], snr_db, noise_seed("v", 3)))
    assert not np.array_equal(noise, measurement_noise(masked, mask[None], snr_db, noise_seed("v", 4)))


def test_networks_and_cs_see_the_same_noisy_measurement(tiny):
    """The dataset (networks, zero-filled) and the CS path build identical perturbed inputs."""
    import torch

    from oucr.data.dataset import SliceDataset
    from oucr.data.fixed_masks import read_fixed_masks
    from oucr.data.store import PreparedStore
    from oucr.engine.cs import normalised_slice

    store = PreparedStore(tiny["store"])
    masks = read_fixed_masks(tiny["masks"])
    data = SliceDataset(store, "test", None, masks_file=tiny["masks"], noise_snr_db=20.0)
    clean = SliceDataset(store, "test", None, masks_file=tiny["masks"])
    for index, (volume, s) in enumerate(data.slice_index):
        item = data[index]
        kspace = store.load_slice(volume, s)["kspace"]
        cs_measured, cs_norm = normalised_slice(kspace, masks[volume].astype(np.float32), (20.0, noise_seed(volume, s)))
        assert item["norm"].item() == pytest.approx(cs_norm, rel=1e-6)
        np.testing.assert_allclose(item["masked_kspace"].numpy(), cs_measured, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(item["masked_kspace"], clean[index]["masked_kspace"])  # it is perturbed
        assert torch.equal(item["target"] * item["norm"], item["target"] * item["norm"])


def _volumes(method, values, condition=None, dataset="d", acc=4, replicate=0):
    frame = pd.DataFrame({"method": method, "dataset": dataset, "acceleration": acc, "replicate": replicate,
                          "volume": [f"v{i}" for i in range(len(values))], "psnr": values,
                          "ssim": np.asarray(values) / 100.0, "realised_acceleration": 8.0})
    if condition is not None:
        frame["condition"] = condition
    return frame


def test_the_table_gives_each_condition_and_its_drop_from_nominal():
    from oucr.robustness import robustness_markdown, robustness_table

    config = {"methods": ["OUCR"], "datasets": {"d": {}}, "robustness": {"noise_snr_db": 25}}
    nominal = pd.concat([_volumes("Zero-filled", [20, 22]), _volumes("OUCR", [30, 32]),
                         _volumes("OUCR", [31, 33], replicate=1)])
    perturbed = pd.concat([
        _volumes("Zero-filled", [18, 20], "noise"), _volumes("OUCR", [27, 29], "noise"),
        _volumes("OUCR", [28, 30], "noise", replicate=1),
        _volumes("Zero-filled", [10, 12], "acceleration"), _volumes("OUCR", [20, 22], "acceleration"),
        _volumes("OUCR", [20, 22], "acceleration", replicate=1),
    ])
    table = robustness_table(config, nominal, perturbed).set_index(["method", "condition"])
    row = table.loc[("OUCR", "noise")]
    assert row["psnr_nominal"] == pytest.approx(31.5) and row["psnr_mean"] == pytest.approx(28.5)
    assert row["psnr_drop"] == pytest.approx(3.0) and row["n_replicates"] == 2 and row["n_volumes"] == 2
    assert table.loc[("OUCR", "acceleration"), "psnr_drop"] == pytest.approx(10.5)
    assert table.loc[("Zero-filled", "noise"), "psnr_drop"] == pytest.approx(2.0)
    assert "25 dB SNR" in table.loc[("OUCR", "noise"), "perturbation"]
    assert "8x random masks" in table.loc[("OUCR", "acceleration"), "perturbation"]
    text = robustness_markdown(table.reset_index(), demo=True)
    assert "DEMO" in text and "(+3.00)" in text
    from oucr.errors import DataError

    with pytest.raises(DataError, match="no noise results for OUCR"):
        robustness_table(config, nominal, perturbed[perturbed["method"] != "OUCR"])
