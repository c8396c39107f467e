"""The one FFT of the project: centring, unitarity, batch axes, crops and the channel conversions."""

import numpy as np
import pytest
import scipy.fft
import torch

from oucr.fft import (
    center_crop,
    centred,
    channels_to_complex,
    complex_to_channels,
    fft2,
    fft2c,
    ifft2,
    ifft2c,
    magnitude_channels,
    uncentred,
)


def _centred_dft(n):
    """The centred unitary DFT matrix written out: DC at index n // 2, phases about the centre."""
    idx = np.arange(n) - n // 2
    return np.exp(-2j * np.pi * np.outer(idx, idx) / n) / np.sqrt(n)


def _reference_fft2c(x):
    """fft2c by explicit matrix products over the last two axes (an oracle independent of np.fft)."""
    h, w = x.shape[-2:]
    return _centred_dft(h) @ x @ _centred_dft(w).T


def _volume(shape=(3, 5, 7), seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex128)


# ----------------------------------------------------------------------------- fft2c / ifft2c

@pytest.mark.parametrize("shape", [(5, 7), (3, 5, 7), (2, 3, 6, 4), (3, 4, 5)])
def test_fft2c_is_the_centred_unitary_dft_over_the_last_two_axes_only(shape):
    # odd and even sizes (ifftshift and fftshift differ for odd ones) and leading batch axes
    # (a transform or shift over every axis would mix the slices)
    x = _volume(shape)
    expected = _reference_fft2c(x)
    np.testing.assert_allclose(fft2c(x), expected, atol=1e-12)
    np.testing.assert_allclose(ifft2c(expected), x, atol=1e-12)
    t = torch.from_numpy(x)
    out = fft2c(t)
    assert isinstance(out, torch.Tensor) and out.shape == t.shape
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)
    back = ifft2c(torch.from_numpy(expected))
    assert isinstance(back, torch.Tensor)
    np.testing.assert_allclose(back.numpy(), x, atol=1e-12)


def test_fft2c_puts_dc_in_the_centre_and_preserves_energy():
    x = np.ones((1, 5, 6), np.complex64)
    k = fft2c(x)
    assert abs(k[0, 5 // 2, 6 // 2] - np.sqrt(30)) < 1e-5  # sum / sqrt(N) at the centre
    k[0, 2, 3] = 0
    assert np.abs(k).max() < 1e-5  # and nothing else
    y = _volume((2, 9, 4), seed=1)
    assert np.linalg.norm(fft2c(y)) == pytest.approx(np.linalg.norm(y), rel=1e-12)
    assert torch.linalg.vector_norm(ifft2c(torch.from_numpy(y))).item() == pytest.approx(np.linalg.norm(y), rel=1e-12)
    # an impulse at the centre has a flat spectrum 1 / sqrt(N)
    impulse = np.zeros((4, 6), np.complex128)
    impulse[2, 3] = 1
    np.testing.assert_allclose(fft2c(impulse), np.full((4, 6), 1 / np.sqrt(24)), atol=1e-12)


@pytest.mark.parametrize("fn, name", [(fft2c, "fft2c"), (ifft2c, "ifft2c"), (center_crop, "center_crop")])
def test_fewer_than_two_dimensions_are_refused_naming_the_function(fn, name):
    args = ((4, 4),) if fn is center_crop else ()
    with pytest.raises(ValueError, match=rf"^{name}: expected at least 2 dimensions, got shape \(6,\)$"):
        fn(np.zeros(6, np.complex64), *args)
    with pytest.raises(ValueError, match=rf"^{name}: expected at least 2 dimensions"):
        fn(torch.zeros(6, dtype=torch.complex64), *args)


# ----------------------------------------------------------------------------- uncentred transforms

def test_uncentred_fft2_agrees_with_fft2c_through_the_shifts():
    x = _volume((3, 5, 7), seed=2)
    np.testing.assert_allclose(centred(fft2(uncentred(x))), fft2c(x), atol=1e-12)
    np.testing.assert_allclose(centred(ifft2(uncentred(fft2c(x)))), x, atol=1e-12)
    np.testing.assert_allclose(fft2(x), np.fft.fft2(x, norm="ortho"), atol=1e-12)  # per slice, unitary
    np.testing.assert_allclose(ifft2(fft2(x)), x, atol=1e-12)
    # the shifts move the last two axes only: uncentred puts the centre (n // 2) at index 0
    assert uncentred(x)[1, 0, 0] == x[1, 2, 3]
    assert centred(x)[1, 2, 3] == x[1, 0, 0]
    np.testing.assert_array_equal(centred(uncentred(x)), x)


@pytest.mark.parametrize("fn, target", [(fft2, "fft2"), (ifft2, "ifft2")])
@pytest.mark.parametrize("overwrite", [False, True])
def test_uncentred_transforms_run_on_one_thread_and_pass_overwrite_on(monkeypatch, fn, target, overwrite):
    # one worker: CS runs one slice per process, and threads inside would oversubscribe the cores
    calls = []
    real = getattr(scipy.fft, target)

    def spy(x, **kwargs):
        calls.append(kwargs)
        return real(x, **kwargs)

    monkeypatch.setattr(scipy.fft, target, spy)
    fn(_volume((2, 4, 4)), overwrite=overwrite)
    assert calls == [{"axes": (-2, -1), "norm": "ortho", "workers": 1, "overwrite_x": overwrite}]
    calls.clear()
    fn(_volume((2, 4, 4)))
    assert calls[0]["overwrite_x"] is False


# ----------------------------------------------------------------------------- crops

def test_center_crop_follows_fastmri_offsets():
    x = np.arange(2 * 7 * 9).reshape(2, 7, 9)
    out = center_crop(x, (4, 5))  # (7 - 4) // 2 = 1, (9 - 5) // 2 = 2
    np.testing.assert_array_equal(out, x[:, 1:5, 2:7])
    np.testing.assert_array_equal(center_crop(x, (7, 9)), x)  # the full size is allowed
    np.testing.assert_array_equal(center_crop(x, (1, 1)), x[:, 3:4, 4:5])  # and a single pixel
    np.testing.assert_array_equal(center_crop(x, [6, 2]), x[:, 0:6, 3:5])
    t = torch.arange(7 * 8).reshape(7, 8)
    assert torch.equal(center_crop(t, (3, 8)), t[2:5, :])


@pytest.mark.parametrize("shape", [(8, 5), (7, 10), (0, 5), (7, 0), (-1, 3)])
def test_center_crop_refuses_empty_or_larger_windows(shape):
    with pytest.raises(ValueError, match=rf"^cannot centre-crop an image of size 7 x 9 to {shape[0]} x {shape[1]}: "
                                         r"the crop size must be positive and no larger than the data$"):
        center_crop(np.zeros((2, 7, 9)), shape)


# ----------------------------------------------------------------------------- channels

def test_complex_to_channels_and_back():
    z = torch.complex(torch.arange(24.0).reshape(2, 3, 4), -torch.arange(24.0).reshape(2, 3, 4) - 1)
    ch = complex_to_channels(z)
    assert ch.shape == (2, 2, 3, 4) and ch.dtype == torch.float32
    assert torch.equal(ch[:, 0], z.real) and torch.equal(ch[:, 1], z.imag)
    back = channels_to_complex(ch)
    assert back.dtype == torch.complex64 and torch.equal(back, z)
    assert torch.equal(magnitude_channels(ch), z.abs())


def test_complex_to_channels_checks_its_input():
    with pytest.raises(TypeError, match="expected a complex tensor, got dtype torch.float32"):
        complex_to_channels(torch.zeros(1, 3, 4))
    with pytest.raises(ValueError, match=r"^complex_to_channels: expected at least 3 dimensions"):
        complex_to_channels(torch.zeros(3, 4, dtype=torch.complex64))


def test_channels_to_complex_checks_its_input():
    with pytest.raises(ValueError, match=r"^channels_to_complex: expected at least 4 dimensions"):
        channels_to_complex(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"expected 2 channels \(real, imaginary\) at dim -3, got shape \(2, 3, 4, 5\)"):
        channels_to_complex(torch.zeros(2, 3, 4, 5))
    with pytest.raises(TypeError, match="^expected a real tensor with 2 channels, got a complex tensor$"):
        channels_to_complex(torch.zeros(3, 2, 4, 5, dtype=torch.complex64))


def test_channels_to_complex_keeps_double_and_widens_half_precision():
    x = torch.randn(3, 2, 4, 5, dtype=torch.float64)
    assert channels_to_complex(x).dtype == torch.complex128
    assert torch.equal(channels_to_complex(x).real, x[:, 0]) and torch.equal(channels_to_complex(x).imag, x[:, 1])
    for half in (torch.float16, torch.bfloat16):
        out = channels_to_complex(x.to(half))
        assert out.dtype == torch.complex64
        assert torch.equal(out.real, x[:, 0].to(half).float()) and torch.equal(out.imag, x[:, 1].to(half).float())


def test_magnitude_channels():
    x = torch.tensor([[[[3.0, -1.0]], [[-4.0, 0.0]]]])  # (1, 2, 1, 2): (3, -4) and (-1, 0)
    assert torch.equal(magnitude_channels(x), torch.tensor([[[5.0, 1.0]]]))
    with pytest.raises(ValueError, match=r"expected 2 channels at dim -3, got shape \(1, 3, 1, 2\)"):
        magnitude_channels(torch.zeros(1, 3, 1, 2))
