"""Metrics: fastMRI evaluate.py semantics, checked against direct scikit-image calls."""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from oucr import metrics


@pytest.fixture
def volumes():
    rng = np.random.default_rng(0)
    gt = rng.random((8, 40, 36)).astype(np.float32) * np.linspace(0.2, 1.0, 8)[:, None, None].astype(np.float32)
    pred = np.abs(gt + 0.05 * rng.standard_normal(gt.shape)).astype(np.float32)
    return gt, pred


def closed_form_volumes():
    """Float32 volumes at fastMRI's scale (~1e-4), built without a random generator."""
    s, y, x = np.meshgrid(np.arange(4), np.arange(48), np.arange(40), indexing="ij")
    gt = (s + 1) / 4 * (0.5 + 0.5 * np.sin(x / 3.0) * np.cos(y / 5.0)) ** 2 * 1e-4
    pred = np.abs(gt + 1e-5 * np.sin(7.0 * x + 3.0 * y + s))
    return gt.astype(np.float32), pred.astype(np.float32)


def test_values_of_fastmri_evaluate():
    # nmse, psnr, ssim and per-slice ssim that fastmri 0.3.0's fastmri.evaluate gives on
    # closed_form_volumes() (scikit-image 0.26, NumPy 2.4)
    gt, pred = closed_form_volumes()
    assert metrics.nmse(gt, pred) == pytest.approx(0.05888591334223747, abs=1e-6)
    assert metrics.psnr(gt, pred) == pytest.approx(23.494343249121904, abs=1e-6)
    assert metrics.ssim(gt, pred) == pytest.approx(0.6953340033551871, abs=1e-6)
    np.testing.assert_allclose(metrics.ssim_per_slice(gt, pred),
                               [0.43485075167017656, 0.6770419210132932, 0.8021185365857697, 0.867324804151509],
                               rtol=0, atol=1e-6)


def test_psnr_is_volume_psnr_with_volume_max(volumes):
    gt, pred = volumes
    expected = peak_signal_noise_ratio(gt, pred, data_range=gt.max())
    assert metrics.psnr(gt, pred) == pytest.approx(expected, abs=1e-6)
    expected_2 = peak_signal_noise_ratio(gt, pred, data_range=2.0)
    assert metrics.psnr(gt, pred, maxval=2.0) == pytest.approx(expected_2, abs=1e-6)
    # over the volume, not the mean of slice PSNRs (the aggregation of fastMRI PR 130): with
    # one slice 10x noisier, the volume MSE is dominated by it
    noisy = pred.copy()
    noisy[0] = gt[0] + 10 * (pred[0] - gt[0])
    mean_of_slices = metrics.psnr_per_slice(gt, noisy).mean()
    assert metrics.psnr(gt, noisy) == pytest.approx(peak_signal_noise_ratio(gt, noisy, data_range=gt.max()), abs=1e-6)
    assert metrics.psnr(gt, noisy) < mean_of_slices - 1.0


def test_ssim_is_mean_of_2d_slices_with_volume_max(volumes):
    gt, pred = volumes
    expected = np.mean([structural_similarity(g, p, data_range=gt.max()) for g, p in zip(gt, pred)])
    assert metrics.ssim(gt, pred) == pytest.approx(expected, abs=1e-6)
    assert metrics.ssim(gt, pred, maxval=3.0) == pytest.approx(
        np.mean([structural_similarity(g, p, data_range=3.0) for g, p in zip(gt, pred)]), abs=1e-6)
    # not the 3-D SSIM that a volume passed whole would give
    three_d = structural_similarity(gt, pred, data_range=gt.max())
    assert abs(metrics.ssim(gt, pred) - three_d) > 1e-4
    # nor per-slice ranges
    own_range = np.mean([structural_similarity(g, p, data_range=g.max()) for g, p in zip(gt, pred)])
    assert abs(metrics.ssim(gt, pred) - own_range) > 1e-4


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
    assert ps.dtype == ss.dtype == ns.dtype == np.float64
    for i in range(8):
        assert ps[i] == pytest.approx(peak_signal_noise_ratio(gt[i], pred[i], data_range=gt.max()), abs=1e-6)
        assert ss[i] == pytest.approx(structural_similarity(gt[i], pred[i], data_range=gt.max()), abs=1e-6)
        assert ns[i] == pytest.approx(np.linalg.norm(gt[i] - pred[i]) ** 2 / np.linalg.norm(gt[i]) ** 2, rel=1e-6)
    assert ss.mean() == pytest.approx(metrics.ssim(gt, pred), abs=1e-12)
    assert metrics.ssim_per_slice(gt, pred, maxval=3.0).mean() == pytest.approx(metrics.ssim(gt, pred, maxval=3.0))


def test_perfect_reconstruction(volumes):
    gt, _ = volumes
    assert metrics.nmse(gt, gt) == 0
    assert np.all(metrics.nmse_per_slice(gt, gt) == 0)
    assert metrics.ssim(gt, gt) == pytest.approx(1.0)
    assert np.allclose(metrics.ssim_per_slice(gt, gt), 1.0)
    with np.errstate(divide="ignore"):
        assert metrics.psnr(gt, gt) == np.inf
        assert np.all(metrics.psnr_per_slice(gt, gt) == np.inf)


def test_worse_reconstruction_scores_worse(volumes):
    gt, pred = volumes
    worse = np.abs(gt + 3 * (pred - gt))
    assert metrics.nmse(gt, worse) > metrics.nmse(gt, pred)
    assert metrics.psnr(gt, worse) < metrics.psnr(gt, pred)
    assert metrics.ssim(gt, worse) < metrics.ssim(gt, pred)


@pytest.mark.parametrize("fn", [metrics.nmse, metrics.psnr, metrics.ssim,
                                metrics.nmse_per_slice, metrics.psnr_per_slice, metrics.ssim_per_slice])
def test_shape_checks(fn, volumes):
    gt, pred = volumes
    with pytest.raises(ValueError, match="shape mismatch"):
        fn(gt, pred[:, :-1])
    with pytest.raises(ValueError, match=r"^expected volumes shaped \(slices, H, W\), got gt shape \(40, 36\)$"):
        fn(gt[0], pred[0])
    with pytest.raises(ValueError, match="slices, H, W"):
        fn(gt[None], pred[None])
    with pytest.raises(ValueError, match="magnitude"):
        fn(gt.astype(np.complex64), pred)
    with pytest.raises(ValueError, match="magnitude"):
        fn(gt, pred.astype(np.complex64))


@pytest.mark.parametrize("dtypes", [("float32", "float32"), ("float64", "float32"), ("float16", "float64"),
                                    ("uint8", "uint8"), ("int16", "float32")])
def test_psnr_is_scikit_images_bit_for_bit(dtypes):
    """The project's PSNR is scikit-image's function, operation for operation, for every dtype pairing."""
    rng = np.random.default_rng(3)
    gt = (rng.random((3, 24, 20)) * 200).astype(dtypes[0])
    pred = (gt.astype(np.float64) + rng.normal(0, 7, gt.shape)).clip(0, 255).astype(dtypes[1])
    for data_range in (float(gt.max()), 255.0, 1.5):
        assert metrics.peak_signal_noise_ratio(gt, pred, data_range) == peak_signal_noise_ratio(
            gt, pred, data_range=data_range)


def test_per_slice_psnr_uses_the_given_data_range(volumes):
    gt, pred = volumes
    ps = metrics.psnr_per_slice(gt, pred, maxval=2.0)
    for i in range(8):
        assert ps[i] == pytest.approx(peak_signal_noise_ratio(gt[i], pred[i], data_range=2.0), abs=1e-6)
    assert not np.allclose(ps, metrics.psnr_per_slice(gt, pred))


def test_complex_input_message_says_what_to_do(volumes):
    gt, pred = volumes
    with pytest.raises(ValueError, match=r"^metrics take magnitude \(real\) volumes; apply np.abs to complex images "
                                         r"first$"):
        metrics.psnr(gt.astype(np.complex64), pred)


def _scaled_pair():
    """A reference whose maximum is 1 and a reconstruction at twice its scale (closed-form metrics)."""
    s, y, x = np.meshgrid(np.arange(3), np.arange(24), np.arange(20), indexing="ij")
    gt = (s + 1) / 3 * (0.25 + 0.75 * (0.5 + 0.5 * np.sin(x / 2.0 + s) * np.cos(y / 3.0)))
    gt /= gt.max()  # slice maxima about 1/3, 2/3 and 1
    return gt, 2.0 * gt


def test_metrics_are_against_the_reference_not_the_reconstruction():
    """Swapped arguments, or the reconstruction scored against itself, give other numbers.

    With pred = 2 gt: NMSE ||gt - pred||^2 / ||gt||^2 = 1 (against pred it would be 1/4), PSNR uses the
    reference's maximum 1 (pred's maximum 2 would add 20 log10 2 = 6.02 dB).
    """
    gt, pred = _scaled_pair()
    assert metrics.nmse(gt, pred) == pytest.approx(1.0)
    assert metrics.nmse(pred, gt) == pytest.approx(0.25)
    expected_psnr = 10 * np.log10(1.0 / np.mean(gt ** 2))
    assert metrics.psnr(gt, pred) == pytest.approx(expected_psnr, abs=1e-9)
    assert metrics.psnr(pred, gt) == pytest.approx(expected_psnr + 20 * np.log10(2.0), abs=1e-9)
    np.testing.assert_allclose(metrics.nmse_per_slice(gt, pred), 1.0)
    np.testing.assert_allclose(metrics.psnr_per_slice(gt, pred),
                               [10 * np.log10(1.0 / np.mean(g ** 2)) for g in gt], atol=1e-9)
    # SSIM with the reference's range differs from SSIM with the reconstruction's
    forward = metrics.ssim(gt, pred)
    assert forward == pytest.approx(np.mean([structural_similarity(g, p, data_range=1.0) for g, p in zip(gt, pred)]))
    assert abs(forward - metrics.ssim(pred, gt)) > 1e-3
    # the reconstruction against itself is perfect: a wrong target could never fail
    assert metrics.nmse(pred, pred) == 0 and metrics.ssim(pred, pred) == pytest.approx(1.0)
    assert forward < 0.95 and metrics.nmse(gt, pred) > 0.5


def test_evaluate_scores_the_reconstruction_against_the_stored_target():
    """The evaluation step's scorer passes (target, reconstruction) in that order, with the volume's range."""
    from oucr.engine.evaluate import score_volume

    gt, pred = _scaled_pair()
    volume, per_slice = score_volume(gt.astype(np.float32), pred.astype(np.float32), None,
                                     gt.astype(np.complex64), 0.25)
    assert volume["nmse"] == pytest.approx(1.0, rel=1e-6)
    assert volume["psnr"] == pytest.approx(10 * np.log10(1.0 / np.mean(gt ** 2)), abs=1e-4)
    assert volume["ssim"] == pytest.approx(metrics.ssim(gt.astype(np.float32), pred.astype(np.float32)), abs=1e-12)
    np.testing.assert_allclose(per_slice["psnr"], metrics.psnr_per_slice(gt, pred), atol=1e-4)
    # the slice values use the volume's maximum (1), not each slice's
    own_max = 10 * np.log10(gt[0].max() ** 2 / np.mean((gt[0] - pred[0]) ** 2))
    assert per_slice["psnr"][0] > own_max + 9.0  # slice 0 peaks near 1/3: 20 log10 3 = 9.5 dB apart
    assert np.isnan(per_slice["psnr_low"]).all()  # no complex reconstruction: no k-space bands
