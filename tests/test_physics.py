"""The shared forward model: masking, data consistency, normalisation, measurement noise, SingleCoilMRI."""

import numpy as np
import pytest
import torch

from oucr.fft import fft2c, ifft2c
from oucr.physics import (
    SingleCoilMRI,
    apply_mask,
    data_consistency,
    denormalise,
    mean_magnitude,
    measurement_noise,
    noise_seed,
    normalisation_factor,
    normalised_measurement,
    zero_filled,
)
from oucr.seeding import derive_seed


def _complex(shape, seed=0, dtype=np.complex64):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def _columns(w, sampled):
    mask = np.zeros(w, np.float32)
    mask[list(sampled)] = 1
    return mask


# ----------------------------------------------------------------------------- NumPy functions

def test_apply_mask_and_zero_filled():
    k = _complex((6, 5))
    mask = _columns(5, [0, 2])
    masked = apply_mask(k, mask)
    np.testing.assert_array_equal(masked[:, [0, 2]], k[:, [0, 2]])
    assert not masked[:, [1, 3, 4]].any()
    np.testing.assert_allclose(zero_filled(masked), ifft2c(masked), atol=0)


def test_data_consistency_keeps_the_image_where_not_sampled_and_the_measurement_where_sampled():
    image = _complex((2, 6, 5), seed=1)
    measured_full = _complex((2, 6, 5), seed=2)
    mask = _columns(5, [1, 2])
    out = data_consistency(image, apply_mask(measured_full, mask), mask)
    k_out, k_image = fft2c(out), fft2c(image)
    np.testing.assert_allclose(k_out[..., [1, 2]], measured_full[..., [1, 2]], atol=1e-5)
    np.testing.assert_allclose(k_out[..., [0, 3, 4]], k_image[..., [0, 3, 4]], atol=1e-5)
    # a fully sampled mask returns the measurement's image; an empty one leaves the image alone
    np.testing.assert_allclose(data_consistency(image, measured_full, np.ones(5)), ifft2c(measured_full), atol=1e-5)
    np.testing.assert_allclose(data_consistency(image, measured_full, np.zeros(5)), image, atol=1e-5)


def test_mean_magnitude_per_slice_and_its_floor():
    image = np.array([[3 + 4j, 0], [1, -1j]])  # |.| = 5, 0, 1, 1
    assert mean_magnitude(image) == pytest.approx(7 / 4)
    assert isinstance(mean_magnitude(image), float)
    assert mean_magnitude(np.full((2, 3), 0.25)) == pytest.approx(0.25)  # small values are not floored
    assert mean_magnitude(np.zeros((4, 4))) == 1e-12  # an empty image does not divide by zero
    batch = torch.from_numpy(np.stack([image, 2 * image, np.zeros_like(image)]))
    out = mean_magnitude(batch)
    assert out.shape == (3,)
    np.testing.assert_allclose(out.numpy(), [7 / 4, 7 / 2, 1e-12])


def test_normalisation_factor_is_the_mean_magnitude_of_the_zero_filled_image():
    k = _complex((3, 8, 6), seed=3)
    masked = apply_mask(k, _columns(6, [0, 3, 4]))
    assert normalisation_factor(masked[0]) == pytest.approx(float(np.abs(ifft2c(masked[0])).mean()), rel=1e-6)
    batch = normalisation_factor(torch.from_numpy(masked))
    np.testing.assert_allclose(batch.numpy(), np.abs(ifft2c(masked)).mean(axis=(-2, -1)), rtol=1e-6)


# ----------------------------------------------------------------------------- measurement noise

def test_measurement_noise_is_zero_off_the_mask_and_has_the_stated_snr():
    k = _complex((128, 96), seed=4) * 3.0
    mask = _columns(96, range(0, 96, 2))
    masked = apply_mask(k, mask)
    noise = measurement_noise(masked, mask, snr_db=10.0, seed=("vol", 3))
    assert noise.dtype == np.complex64 and noise.shape == (128, 96)
    assert not noise[:, 1::2].any() and np.all(noise[:, ::2] != 0)
    power = np.mean(np.abs(masked[:, ::2]) ** 2)
    sigma2 = power / 10.0  # 10 dB
    sampled = noise[:, ::2]
    assert np.mean(np.abs(sampled) ** 2) == pytest.approx(sigma2, rel=0.05)
    # the variance is split evenly between the real and the imaginary part
    assert np.var(sampled.real) == pytest.approx(sigma2 / 2, rel=0.05)
    assert np.var(sampled.imag) == pytest.approx(sigma2 / 2, rel=0.05)
    assert abs(np.corrcoef(sampled.real.ravel(), sampled.imag.ravel())[0, 1]) < 0.05
    # 20 dB is ten times less noise power
    quieter = measurement_noise(masked, mask, snr_db=20.0, seed=("vol", 3))
    assert np.mean(np.abs(quieter[:, ::2]) ** 2) == pytest.approx(sigma2 / 10, rel=0.05)


def test_measurement_noise_draw_depends_only_on_the_seed():
    k = _complex((16, 12), seed=5)
    mask = np.ones((1, 12), np.float32)
    a = measurement_noise(k, mask, 15.0, ("v", 1))
    np.testing.assert_array_equal(a, measurement_noise(k, mask, 15.0, ("v", 1)))
    assert not np.allclose(a, measurement_noise(k, mask, 15.0, ("v", 2)))
    # the documented draw: real parts first, then imaginary parts, from the named stream
    rng = np.random.default_rng(derive_seed("measurement-noise", ("v", 1)))
    sigma = np.sqrt(np.mean(np.abs(k) ** 2) / 10 ** 1.5)
    real, imag = rng.standard_normal(k.shape), rng.standard_normal(k.shape)
    np.testing.assert_allclose(a.real, real * sigma / np.sqrt(2), rtol=1e-5)
    np.testing.assert_allclose(a.imag, imag * sigma / np.sqrt(2), rtol=1e-5)


def test_measurement_noise_needs_a_sampled_location():
    with pytest.raises(ValueError, match="^the mask samples nothing: no SNR can be defined$"):
        measurement_noise(_complex((4, 4)), np.zeros(4), 10.0, 0)


def test_noise_seed_names_volume_and_slice():
    assert noise_seed("sub-001", np.int64(3)) == ("sub-001", 3)
    assert type(noise_seed("sub-001", np.int64(3))[1]) is int
    assert noise_seed(7, 0) == ("7", 0)


# ----------------------------------------------------------------------------- normalised measurement

@pytest.mark.parametrize("as_tensor", [False, True])
def test_normalised_measurement_masks_then_scales_by_the_zero_filled_mean(as_tensor):
    k = _complex((8, 6), seed=6)
    mask = _columns(6, [0, 2, 3])
    masked = apply_mask(k, mask)
    norm_expected = float(np.abs(ifft2c(masked)).mean())
    kin = torch.from_numpy(k) if as_tensor else k
    min_ = torch.from_numpy(mask) if as_tensor else mask
    out, norm = normalised_measurement(kin, min_)
    assert isinstance(norm, float) and norm == pytest.approx(norm_expected, rel=1e-6)
    out = out.numpy() if as_tensor else out
    np.testing.assert_allclose(out, masked / norm_expected, rtol=1e-5, atol=1e-7)
    assert np.abs(ifft2c(out)).mean() == pytest.approx(1.0, rel=1e-5)


def test_normalised_measurement_with_noise_is_the_same_for_arrays_and_tensors():
    k = _complex((32, 24), seed=7)
    mask = _columns(24, range(0, 24, 3))
    out_np, norm_np = normalised_measurement(k, mask, noise=(12.0, ("v", 0)))
    out_t, norm_t = normalised_measurement(torch.from_numpy(k), torch.from_numpy(mask), noise=(12.0, ("v", 0)))
    noisy = apply_mask(k, mask) + measurement_noise(apply_mask(k, mask), mask, 12.0, ("v", 0))
    assert norm_np == pytest.approx(float(np.abs(ifft2c(noisy)).mean()), rel=1e-6)
    assert norm_t == pytest.approx(norm_np, rel=1e-6)
    np.testing.assert_allclose(out_np, noisy / norm_np, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out_t.numpy(), out_np, rtol=1e-5, atol=1e-7)
    clean, _ = normalised_measurement(k, mask)
    assert not np.allclose(clean, out_np, atol=1e-3)
    assert not out_np[:, 1].any()  # the noise is on sampled columns only


def test_normalised_measurement_takes_one_slice():
    with pytest.raises(ValueError, match=r"expected one \(H, W\) k-space slice, got shape \(1, 4, 4\)"):
        normalised_measurement(np.zeros((1, 4, 4), np.complex64), np.ones(4))


def test_denormalise_broadcasts_per_slice_factors():
    x = torch.ones(3, 2, 4, 5)
    norm = torch.tensor([1.0, 2.0, 3.0])
    out = denormalise(x, norm)
    assert out.shape == (3, 2, 4, 5)
    np.testing.assert_array_equal(out[:, 0, 0, 0].numpy(), [1.0, 2.0, 3.0])
    assert torch.equal(out[1], torch.full((2, 4, 5), 2.0))
    assert torch.equal(denormalise(torch.ones(3, 4, 5), norm)[2], torch.full((4, 5), 3.0))
    assert torch.equal(denormalise(x, 2.5), x * 2.5)
    assert torch.equal(denormalise(x, 2), x * 2)
    assert torch.equal(denormalise(x, torch.tensor(0.5)), x * 0.5)  # a 0-d factor scales everything
    np.testing.assert_array_equal(denormalise(np.ones((4, 5)), np.float64(3.0)), np.full((4, 5), 3.0))
    np.testing.assert_array_equal(denormalise(np.ones((3, 4)), np.array([1.0, 2.0, 3.0, 4.0])),
                                  np.tile([1.0, 2.0, 3.0, 4.0], (3, 1)))  # arrays broadcast as NumPy does


# ----------------------------------------------------------------------------- SingleCoilMRI

def _operator(b=3, h=6, w=5, sampled=(0, 2), seed=8):
    k = torch.from_numpy(_complex((b, h, w), seed=seed))
    mask = torch.from_numpy(_columns(w, sampled)).reshape(1, 1, w).expand(b, 1, w)
    return SingleCoilMRI(k, mask), k, mask


def test_operator_zeroes_unsampled_measurements_and_casts_the_mask():
    k = torch.from_numpy(_complex((2, 4, 5), seed=9))
    mask = torch.from_numpy(_columns(5, [1, 4]).astype(np.float64)).reshape(1, 1, 5)
    op = SingleCoilMRI(k, mask)
    assert op.mask.dtype == torch.float32 and op.measured_kspace.dtype == torch.complex64
    assert op.shape == (2, 4, 5)
    assert torch.equal(op.measured_kspace[..., [1, 4]], k[..., [1, 4]])
    assert not op.measured_kspace[..., [0, 2, 3]].any()
    op64 = SingleCoilMRI(k.to(torch.complex128), mask.float())
    assert op64.mask.dtype == torch.float64


@pytest.mark.parametrize("kspace, mask, message", [
    (torch.zeros(2, 4, 5), torch.ones(1, 1, 5), r"^measured_kspace must be a complex tensor shaped \(B, H, W\), "
                                                 r"got dtype torch.float32 shape \(2, 4, 5\)$"),
    (torch.zeros(4, 5, dtype=torch.complex64), torch.ones(1, 5), "got dtype torch.complex64 shape"),
    (torch.zeros(1, 2, 4, 5, dtype=torch.complex64), torch.ones(1, 1, 5), "shaped \\(B, H, W\\)"),
    (torch.zeros(2, 4, 5, dtype=torch.complex64), torch.ones(1, 1, 5, dtype=torch.complex64),
     r"^mask must be real-valued \(0/1\)$"),
    (torch.zeros(2, 4, 5, dtype=torch.complex64), torch.ones(1, 1, 4),
     r"^mask of shape \(1, 1, 4\) does not broadcast to k-space \(2, 4, 5\)$"),
])
def test_operator_refuses_bad_inputs(kspace, mask, message):
    with pytest.raises(ValueError, match=message):
        SingleCoilMRI(kspace, mask)


def test_forward_operator_and_its_adjoint():
    op, k, mask = _operator()
    x = torch.from_numpy(_complex((3, 6, 5), seed=10))
    y = torch.from_numpy(_complex((3, 6, 5), seed=11))
    ax = op.A(x)
    np.testing.assert_allclose(ax.numpy(), (fft2c(x) * mask).numpy(), atol=1e-6)
    assert not ax[..., [1, 3, 4]].any()
    aty = op.A_adjoint(y)
    np.testing.assert_allclose(aty.numpy(), ifft2c(y * mask).numpy(), atol=1e-6)
    # <A x, y> = <x, A^H y>
    assert torch.vdot(ax.flatten(), y.flatten()).item() == pytest.approx(
        torch.vdot(x.flatten(), aty.flatten()).item(), abs=1e-4)


def test_channel_helpers():
    op, k, mask = _operator()
    zf = op.zero_filled()
    assert zf.shape == (3, 2, 6, 5)
    expected = ifft2c(k * mask)
    assert torch.allclose(zf[:, 0], expected.real, atol=1e-6) and torch.allclose(zf[:, 1], expected.imag, atol=1e-6)
    image = torch.randn(3, 2, 6, 5)
    kspace = op.image_to_kspace(image)
    full = fft2c(torch.complex(image[:, 0], image[:, 1]))
    assert kspace.shape == (3, 2, 6, 5)
    assert torch.allclose(kspace[:, 0], full.real, atol=1e-5) and torch.allclose(kspace[:, 1], full.imag, atol=1e-5)
    assert torch.allclose(op.kspace_to_image(kspace), image, atol=1e-5)
    assert op.image_to_kspace(image.bfloat16()).dtype == torch.float32


def test_data_consistency_layer_replaces_sampled_kspace_and_runs_in_float32():
    op, k, mask = _operator()
    image = torch.randn(3, 2, 6, 5)
    out = op.data_consistency(image)
    assert out.shape == (3, 2, 6, 5) and out.dtype == torch.float32
    k_out = fft2c(torch.complex(out[:, 0], out[:, 1]))
    k_in = fft2c(torch.complex(image[:, 0], image[:, 1]))
    assert torch.allclose(k_out[..., [0, 2]], k[..., [0, 2]], atol=1e-5)
    assert torch.allclose(k_out[..., [1, 3, 4]], k_in[..., [1, 3, 4]], atol=1e-5)
    for dtype in (torch.bfloat16, torch.float16, torch.int32):
        low = op.data_consistency((image * 10).to(dtype))
        assert low.dtype == torch.float32
        expected = op.data_consistency((image * 10).to(dtype).float())
        assert torch.equal(low, expected)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert op.data_consistency(image.bfloat16()).dtype == torch.float32
    double = op.data_consistency(image.double())
    assert double.dtype == torch.float64  # float64 is kept (the operator's k-space decides the product's type)


def test_kspace_data_consistency():
    op, k, mask = _operator()
    kspace = torch.randn(3, 2, 6, 5)
    out = op.kspace_data_consistency(kspace)
    z = torch.complex(out[:, 0], out[:, 1])
    assert torch.allclose(z[..., [0, 2]], k[..., [0, 2]])
    assert torch.equal(out[..., [1, 3, 4]], kspace[..., [1, 3, 4]])
    assert op.kspace_data_consistency(kspace.bfloat16()).dtype == torch.float32
    assert op.kspace_data_consistency(kspace.double()).dtype == torch.float64


@pytest.mark.parametrize("shape", [(3, 2, 6), (3, 3, 6, 5), (3, 2, 5, 6), (3, 2, 6, 4)])
def test_layers_refuse_images_of_another_shape(shape):
    op, _, _ = _operator()
    for layer in (op.data_consistency, op.kspace_data_consistency):
        with pytest.raises(ValueError, match=rf"^expected a two-channel image shaped \(B, 2, 6, 5\), got "
                                             rf"\({', '.join(map(str, shape))}\)$"):
            layer(torch.zeros(shape))


def test_to_returns_the_same_operator():
    op, k, mask = _operator()
    moved = op.to("cpu")
    assert isinstance(moved, SingleCoilMRI) and moved is not op
    assert torch.equal(moved.measured_kspace, op.measured_kspace) and torch.equal(moved.mask, op.mask)
    meta = op.to("meta")  # a device without data: both tensors move
    assert meta.measured_kspace.device.type == "meta" and meta.mask.device.type == "meta"
    assert meta.shape == op.shape
