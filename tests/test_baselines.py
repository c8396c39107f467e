"""The deep-learning baselines of Table 1: interface, data consistency, gradients, parameter counts.

Forward/backward checks use tiny widths at 16 x 16; the paper widths are only
instantiated to count their parameters.
"""

from __future__ import annotations

import copy

import pytest
import torch

from baselines.d5c5 import D5C5
from baselines.kikinet import KIKINet
from baselines.kiunet import KiUNet
from baselines.layers import checkpointed
from baselines.pcrnn import PCRNN
from baselines.unet import UNet
from oucr.fft import channels_to_complex, complex_to_channels, fft2c, ifft2c
from oucr.models.base import ReconModel, count_parameters
from oucr.models.registry import build_model
from oucr.physics import SingleCoilMRI

#: tiny configurations of every baseline: (class, kwargs)
TINY = {
    "UNet": (UNet, {"base_channels": 4, "levels": 3}),
    "KIKI-Net": (KIKINet, {"features": 8, "convs": 3, "iterations": 2}),
    "Kiu-net": (KiUNet, {"widths": (4, 6, 8)}),
    "D5C5": (D5C5, {"features": 8, "convs": 3, "cascades": 2}),
    "PC-RNN": (PCRNN, {"features": 6, "res_blocks": 1, "iterations": 2, "final_features": 6, "final_convs": 3}),
}



def conv(cin: int, cout: int, k: int = 3, bias: bool = True) -> int:
    """Parameters of a k x k convolution."""
    return k * k * cin * cout + (cout if bias else 0)


def conv_bn(cin: int, cout: int) -> int:
    """A 3 x 3 convolution with bias followed by batch norm (Kiu-net's public layers)."""
    return conv(cin, cout) + 2 * cout


def plain_cnn(features: int = 128, convs: int = 5, cin: int = 2) -> int:
    """2 -> F -> ... -> F -> 2 with 3 x 3 convolutions with bias (KIKI-Net's and D5C5's CNNs)."""
    return conv(cin, features) + (convs - 2) * conv(features, features) + conv(features, 2)


def unet_count(base: int = 32, levels: int = 5) -> int:
    """The paper's U-Net from its layer list: conv-BN-ReLU without bias, 1 x 1 head with bias."""
    w = [base * 2**i for i in range(levels)]
    cbr = lambda i, o: conv(i, o, bias=False) + 2 * o  # noqa: E731
    n = cbr(2, w[0]) + cbr(w[0], w[0])
    n += sum(cbr(w[i - 1], w[i]) + cbr(w[i], w[i]) for i in range(1, levels))
    n += sum(cbr(w[i], w[i - 1]) + cbr(2 * w[i - 1], w[i - 1]) + cbr(w[i - 1], w[i - 1]) for i in range(1, levels))
    return n + conv(w[0], 2, k=1)


def pcrnn_count(f: int = 64, res_blocks: int = 3, kernels=(8, 4, 3), final_convs: int = 5) -> int:
    """PC-RNN from its documented layer list (no public code exists)."""
    module = lambda k: (conv(2, f, k) + f + conv(2 * f, 2 * f) + conv(2 * f, f)  # noqa: E731
                        + res_blocks * (2 * conv(f, f) + f) + conv(f, 2, k))
    final = conv(2 * len(kernels), f) + (final_convs - 2) * conv(f, f) + conv(f, 2) + (final_convs - 1) * f
    return sum(module(k) for k in kernels) + final


#: the layers of the public ``kiunet`` (KiU-Net-pytorch ``arch/ae.py``) with 2 input channels, at
#: widths a/b/c and last decoder width d: name -> (parameters, called by its forward)
def public_kiunet_layers(a: int, b: int, c: int, d: int):
    layers = {}
    for prefix in ("encoder", "encoderf"):  # U- and Ki-branch encoders, each conv + BN
        for i, (cin, cout) in enumerate([(2, a), (a, b), (b, c)], 1):
            layers[f"{prefix}{i}"] = (conv_bn(cin, cout), True)
    for prefix in ("decoder", "decoderf"):
        for i, (cin, cout) in enumerate([(c, b), (b, a), (a, d)], 1):
            layers[f"{prefix}{i}"] = (conv_bn(cin, cout), True)
    for j in (1, 2):  # CRFB convolutions: encoder levels 1-3, decoder levels 1-3 (level 3 never called)
        for i, w in enumerate([a, b, c], 1):
            layers[f"intere{i}_{j}"] = (conv_bn(w, w), True)
        for i, (w, called) in enumerate([(b, True), (a, True), (c, False)], 1):
            layers[f"interd{i}_{j}"] = (conv_bn(w, w), called)
    layers["final"] = (conv(d, 2, k=1), True)
    return layers


def public_kiunet_counts(a: int, b: int, c: int, d: int):
    """(every defined parameter, parameters its forward uses) of the public kiunet."""
    layers = public_kiunet_layers(a, b, c, d).values()
    return sum(n for n, _ in layers), sum(n for n, called in layers if called)


#: the paper's Table 1 counts (M, 3 decimals)
PAPER_M = {"UNet": 8.634, "KIKI-Net": 1.790, "Kiu-net": 7.951, "D5C5": 2.237, "PC-RNN": 1.482}

#: paper widths are the constructor defaults; the counts follow from each documented layer list
EXACT = {
    "UNet": (UNet, unet_count()),
    "KIKI-Net": (KIKINet, 4 * plain_cnn()),
    "D5C5": (D5C5, 5 * plain_cnn()),
    "PC-RNN": (PCRNN, pcrnn_count()),
}


def acquisition(batch: int = 2, size: int = 16, seed: int = 0):
    """A random complex image, its column-undersampled k-space and the zero-filled input."""
    g = torch.Generator().manual_seed(seed)
    target = torch.complex(torch.randn(batch, size, size, generator=g), torch.randn(batch, size, size, generator=g))
    mask = (torch.rand(batch, 1, size, generator=g) < 0.4).float()
    mask[..., size // 2 - 1: size // 2 + 1] = 1  # low frequencies always sampled
    kspace = fft2c(target) * mask
    physics = SingleCoilMRI(kspace, mask)
    return complex_to_channels(ifft2c(kspace)), physics, complex_to_channels(target)


@pytest.mark.parametrize("name", list(TINY))
def test_shape_data_consistency_and_gradients(name):
    torch.manual_seed(0)
    cls, kwargs = TINY[name]
    model = cls(**kwargs)
    assert isinstance(model, ReconModel)
    image, physics, target = acquisition()
    out = model(image, physics)
    assert out.shape == image.shape and out.dtype == torch.float32

    # the output's k-space equals the measurements where the mask is 1
    k_out = fft2c(channels_to_complex(out.detach()))
    sampled = physics.mask.expand_as(k_out).bool()
    torch.testing.assert_close(k_out[sampled], physics.measured_kspace[sampled], atol=1e-4, rtol=1e-4)
    # ... and the network changed the rest (it is not the zero-filled image)
    assert not torch.allclose(k_out[~sampled], torch.zeros_like(k_out[~sampled]), atol=1e-3)

    (out - target).abs().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"{name}: no gradient reaches {missing}"


@pytest.mark.parametrize("name", list(TINY))
def test_checkpointing_gives_the_same_output_and_gradients(name):
    cls, kwargs = TINY[name]
    image, physics, target = acquisition(seed=1)
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = cls(**kwargs, checkpointing=checkpointing)
        out = model(image, physics)
        (out - target).abs().mean().backward()
        results.append((out.detach(), [p.grad for p in model.parameters()], model.state_dict()))
    (out0, grads0, state0), (out1, grads1, state1) = results
    torch.testing.assert_close(out1, out0)
    for g0, g1 in zip(grads0, grads1):
        torch.testing.assert_close(g1, g0, atol=1e-5, rtol=1e-4)
    for key in state0:  # batch-norm running statistics are updated once, as without checkpointing
        torch.testing.assert_close(state1[key], state0[key])


def test_checkpointed_freezes_batchnorm_statistics_only_while_recomputing():
    bn = torch.nn.BatchNorm2d(3)
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    checkpointed(bn, bn, x).sum().backward()
    reference = torch.nn.BatchNorm2d(3)
    reference(x.detach())
    torch.testing.assert_close(bn.running_mean, reference.running_mean)
    torch.testing.assert_close(bn.running_var, reference.running_var)
    assert int(bn.num_batches_tracked) == 1 and bn.momentum == reference.momentum


def test_layer_list_formulas_give_the_paper_counts():
    # independent of the implementation: the documented configurations against Table 1
    assert unet_count() == 8_633_666 and round(unet_count() / 1e6, 3) == PAPER_M["UNet"]
    assert 4 * plain_cnn() == 1_789_960 and round(4 * plain_cnn() / 1e6, 3) == PAPER_M["KIKI-Net"]
    assert 5 * plain_cnn() == 2_237_450 and round(5 * plain_cnn() / 1e6, 3) == PAPER_M["D5C5"]
    assert abs(pcrnn_count() - 1e6 * PAPER_M["PC-RNN"]) / (1e6 * PAPER_M["PC-RNN"]) < 0.01
    # the public Kiu-net at 84/168/336 (its 16/32/64 x 5.25), counted as the public code counts
    total, used = public_kiunet_counts(84, 168, 336, 42)
    assert (total, used) == (7_953_458, 5_919_314)
    assert abs(total - 1e6 * PAPER_M["Kiu-net"]) / (1e6 * PAPER_M["Kiu-net"]) < 0.001


@pytest.mark.parametrize("name", list(EXACT))
def test_parameter_count_at_paper_widths_follows_the_layer_list(name):
    cls, expected = EXACT[name]
    model = cls()
    assert count_parameters(model) == expected
    assert model.reference_parameter_count() == expected  # no unused layers in their references


@pytest.mark.parametrize("widths, last", [((84, 168, 336), None), ((4, 6, 8), None), ((5, 7, 9), 3)])
def test_kiunet_counts_are_the_public_codes(widths, last):
    model = KiUNet(widths=widths, last_width=last)
    total, used = public_kiunet_counts(*widths, last if last is not None else widths[0] // 2)
    assert count_parameters(model) == used  # built: only the layers the public forward calls
    assert model.reference_parameter_count() == total  # plus the interd3_* block it defines but never calls


def test_kiunet_defaults_are_the_paper_widths():
    assert build_model("Kiu-net").reference_parameter_count() == 7_953_458
    assert count_parameters(build_model("Kiu-net")) == 5_919_314


@pytest.mark.parametrize("name", list(TINY))
def test_registry_builds_the_baseline_with_config_widths(name):
    cls, kwargs = TINY[name]
    model = build_model(name, {name: kwargs})
    assert type(model) is cls
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in cls(**kwargs).state_dict().items()}  # the config's widths...
    assert shapes != {k: v.shape for k, v in cls().state_dict().items()}  # ... not the defaults


@pytest.mark.parametrize(
    "model, size",
    [(UNet(base_channels=2, levels=3), 18), (KiUNet(widths=(2, 2, 2)), 20), (PCRNN(features=2, res_blocks=0), 18)],
    ids=["UNet", "Kiu-net", "PC-RNN"],
)
def test_size_not_a_multiple_of_the_pooling_depth_is_a_value_error(model, size):
    image, physics, _ = acquisition(batch=1, size=size)
    with pytest.raises(ValueError, match=f"divisible by {model.size_multiple}"):
        model(image, physics)


def test_size_multiples():
    assert UNet().size_multiple == 16 and UNet(levels=3).size_multiple == 4
    assert KiUNet().size_multiple == 8  # the U-branch pools three times; the Ki-branch upsamples
    assert PCRNN().size_multiple == 4
    assert D5C5().size_multiple == 1 and KIKINet().size_multiple == 1


@pytest.mark.parametrize("name", list(TINY))
def test_bad_inputs_are_value_errors(name):
    cls, kwargs = TINY[name]
    model = cls(**kwargs)
    image, physics, _ = acquisition(batch=2, size=16)
    with pytest.raises(ValueError):  # three channels
        model(torch.cat([image, image[:, :1]], dim=1), physics)
    _, other, _ = acquisition(batch=2, size=8)
    with pytest.raises(ValueError):  # image and k-space sizes differ
        model(image, other)


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (UNet, {"levels": 1}),
        (KIKINet, {"convs": 1}),
        (KiUNet, {"widths": (4, 8)}),
        (D5C5, {"cascades": 0}),
        (PCRNN, {"kernels": (8, 4), "strides": (4, 2, 1)}),
        (PCRNN, {"kernels": (7, 4, 3)}),
    ],
)
def test_bad_constructor_arguments_are_value_errors(cls, kwargs):
    with pytest.raises(ValueError):
        cls(**kwargs)


# KIKI-Net topology (Eo et al.): K-net plain on k-space, inverse FFT, residual I-net, DC ----------

def record_io(module: torch.nn.Module, log: list) -> None:
    """Append ``(input, output)`` of every call of ``module`` to ``log``."""
    module.register_forward_hook(lambda m, args, out: log.append((args[0].detach().clone(), out.detach().clone())))


def test_kikinet_follows_the_eo_topology():
    torch.manual_seed(0)
    model = KIKINet(features=8, convs=3, iterations=2)
    k_calls, i_calls = [], []
    for k_net, i_net in zip(model.k_nets, model.i_nets):
        record_io(k_net, k_calls)
        record_io(i_net, i_calls)
    image, physics, _ = acquisition(seed=3)
    out = model(image, physics)
    assert len(k_calls) == len(i_calls) == 2

    x = image
    for (k_in, k_out), (i_in, i_out) in zip(k_calls, i_calls):
        # the K-net sees the full k-space of the current image (the measured k-space at first)
        torch.testing.assert_close(k_in, physics.image_to_kspace(x))
        # its output goes straight to the inverse FFT: no residual (k_in + k_out), no DC
        torch.testing.assert_close(i_in, physics.kspace_to_image(k_out), atol=1e-5, rtol=1e-5)
        # the I-net is residual and DC follows it
        x = physics.data_consistency(i_in + i_out)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=1e-5)


def test_kikinet_constant_k_net_output_becomes_a_centre_spike():
    # the mechanism of KIKI-Net's centre pixel: the K-net replaced by a known function, a constant
    # c over k-space (what its biases give where its input is ~0), the I-net by zero. One iteration
    # returns DC(F^-1(c)): the measurements plus c on the unmeasured columns, whose inverse FFT is
    # c sqrt(H W) (1 - sampled fraction) at the image centre and zero off the centre row
    torch.manual_seed(0)
    model = KIKINet(features=4, convs=2, iterations=1)
    image, physics, _ = acquisition(batch=1, seed=4)
    constant = torch.randn(1, 2, 1, 1)

    class Constant(torch.nn.Module):
        def forward(self, k):
            return torch.zeros_like(k) + constant

    class Zero(torch.nn.Module):
        def forward(self, x):
            return torch.zeros_like(x)

    model.k_nets[0], model.i_nets[0] = Constant(), Zero()
    spike = channels_to_complex(model(image, physics) - image)[0]  # minus the zero-filled image
    h, w = spike.shape
    c = complex(constant[0, 0, 0, 0], constant[0, 1, 0, 0])
    unsampled = 1 - physics.mask.mean().item()
    assert spike[h // 2, w // 2].item() == pytest.approx(c * (h * w) ** 0.5 * unsampled, rel=1e-4)
    off_centre_rows = torch.cat([spike[: h // 2], spike[h // 2 + 1:]])
    assert off_centre_rows.abs().max() < 1e-5


# Kiu-net: the public forward pass, written out from arch/ae.py's kiunet.forward -------------------

def public_kiunet_forward(model: KiUNet, x: torch.Tensor) -> torch.Tensor:
    """The public ``kiunet.forward`` with ``model``'s layers (final ReLU dropped as documented).

    Resampling as the public code calls it: ``F.interpolate(..., scale_factor=s, mode='bilinear')``
    (default ``align_corners``) and ``F.max_pool2d(..., 2, 2)``.
    """
    import torch.nn.functional as F

    def up(t, s):
        return F.interpolate(t, scale_factor=(s, s), mode="bilinear")

    def cbr(layer, t, resample=None):  # conv -> [resample] -> BN -> ReLU
        t = layer.conv(t)
        t = up(t, 2) if resample == "up" else F.max_pool2d(t, 2, 2) if resample == "down" else t
        return F.relu(layer.bn(t))

    enc, dec = model.encoder, model.decoder
    u, ki, skips = x, x, []
    for level, ratio in zip(enc, (4, 16, 64)):  # Ki is `ratio` times U's size after each encoder level
        u, ki = cbr(level.u, u, "down"), cbr(level.ki, ki, "up")
        u, ki = u + up(cbr(level.fuse.ki_to_u, ki), 1 / ratio), ki + up(cbr(level.fuse.u_to_ki, u), ratio)
        skips.append((u, ki))
    for level, ratio, (su, ski) in zip(dec[:2], (16, 4), (skips[1], skips[0])):
        u, ki = cbr(level.u, u, "up"), cbr(level.ki, ki, "down")
        u, ki = u + up(cbr(level.fuse.ki_to_u, ki), 1 / ratio), ki + up(cbr(level.fuse.u_to_ki, u), ratio)
        u, ki = u + su, ki + ski
    u, ki = cbr(dec[2].u, u, "up"), cbr(dec[2].ki, ki, "down")
    return model.head(u + ki)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_kiunet_is_the_public_forward(training):
    torch.manual_seed(0)
    model = KiUNet(widths=(3, 4, 5), last_width=3, residual=False).double().train(training)
    for m in model.modules():  # non-trivial batch-norm statistics for the eval mode
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 2, 24, 16, dtype=torch.float64)
    # an empty mask makes data consistency the identity, so the output is the network's
    identity = SingleCoilMRI(torch.zeros(2, 24, 16, dtype=torch.complex128), torch.zeros(2, 1, 16, dtype=torch.float64))
    reference = public_kiunet_forward(copy.deepcopy(model), x)
    out = model(x, identity)
    torch.testing.assert_close(out, reference, atol=1e-10, rtol=1e-10)
    assert (out < 0).any()  # no final ReLU: negative real/imaginary values survive


def test_kiunet_residual_adds_the_zero_filled_input():
    torch.manual_seed(0)
    model = KiUNet(widths=(3, 4, 5), residual=False).eval()
    x = torch.randn(1, 2, 16, 16)
    identity = SingleCoilMRI(torch.zeros(1, 16, 16, dtype=torch.complex64), torch.zeros(1, 1, 16))
    plain = model(x, identity)
    model.residual = True
    torch.testing.assert_close(model(x, identity), plain + x, atol=1e-5, rtol=1e-5)
