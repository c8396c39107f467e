"""Metrics: fastMRI evaluate.py semantics, checked against direct scikit-image calls."""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from oucr import metrics


@pytest.fixture
def volumes():
    rng = np.random.default_rng(0)
    gt = rng.random((8, 40, 36)).astype(np.float32) * np.linspace(0.2, 1.0, 8)[:, None, None].astype(np.float32)
    pred = (gt + 0.05 * rng.standard_normal(gt.shape)).astype(np.float32)
    return gt, pred


def test_psnr_is_volume_psnr_with_volume_max(volumes):
    gt, pred = volumes
    expected = peak_signal_noise_ratio(gt, pred, data_range=gt.max())
    assert metrics.psnr(gt, pred) == pytest.approx(expected, abs=1e-6)
    assert metrics.psnr(gt, pred, maxval=2.0) == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=2.0), abs=1e-6)


def test_ssim_is_mean_of_2d_slices_with_volume_max(volumes):
    gt, pred = volumes
    expected = np.mean([structural_similarity(g, p, data_range=gt.max()) for g, p in zip(gt, pred)])
    assert metrics.ssim(gt, pred) == pytest.approx(expected, abs=1e-6)
    # not the 3-D SSIM that a volume passed whole would give
    three_d = structural_similarity(gt, pred, data_range=gt.max())
    assert abs(metrics.ssim(gt, pred) - three_d) > 1e-4


def test_nmse(volumes):
    gt, pred = volumes
    expected = np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2
    assert metrics.nmse(gt, pred) == pytest.approx(expected, rel=1e-6)


def test_per_slice_variants(volumes):
    gt, pred = volumes
    ps = metrics.psnr_per_slice(gt, pred)
    ss = metrics.ssim_per_slice(gt, pred)
    ns = metrics.nmse_per_slice(gt, pred)
    assert ps.shape == ss.shape == ns.shape == (8,)
    for i in range(8):
        assert ps[i] == pytest.approx(peak_signal_noise_ratio(gt[i], pred[i], data_range=gt.max()), abs=1e-6)
        assert ss[i] == pytest.approx(structural_similarity(gt[i], pred[i], data_range=gt.max()), abs=1e-6)
        assert ns[i] == pytest.approx(np.linalg.norm(gt[i] - pred[i]) ** 2 / np.linalg.norm(gt[i]) ** 2, rel=1e-6)
    assert ss.mean() == pytest.approx(metrics.ssim(gt, pred), abs=1e-12)


def test_perfect_reconstruction(volumes):
    gt, _ = volumes
    assert metrics.nmse(gt, gt) == 0
    assert metrics.ssim(gt, gt) == pytest.approx(1.0)
    with np.errstate(divide="ignore"):
        assert metrics.psnr(gt, gt) == np.inf


def test_shape_checks(volumes):
    gt, pred = volumes
    with pytest.raises(ValueError, match="shape mismatch"):
        metrics.psnr(gt, pred[:, :-1])
    with pytest.raises(ValueError, match="slices, H, W"):
        metrics.ssim(gt[0], pred[0])
    with pytest.raises(ValueError, match="magnitude"):
        metrics.nmse(gt.astype(np.complex64), pred)
