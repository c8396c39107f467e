"""The deep-learning baselines of Table 1: interface, data consistency, gradients, parameter counts.

Forward/backward checks use tiny widths at 16 x 16; the paper widths are only
instantiated to count their parameters.
"""

from __future__ import annotations

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

#: paper widths are the constructor defaults: exact counts (DESIGN.md section 5) and the paper's
EXACT = {"UNet": (UNet, 8_633_666), "KIKI-Net": (KIKINet, 1_789_960), "D5C5": (D5C5, 2_237_450)}
WITHIN_1PCT = {"Kiu-net": (KiUNet, 7_951_000), "PC-RNN": (PCRNN, 1_482_000)}


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


@pytest.mark.parametrize("name", list(EXACT))
def test_parameter_count_at_paper_widths_is_exact(name):
    cls, expected = EXACT[name]
    assert count_parameters(cls()) == expected


@pytest.mark.parametrize("name", list(WITHIN_1PCT))
def test_parameter_count_at_paper_widths_within_one_percent(name):
    cls, paper = WITHIN_1PCT[name]
    n = count_parameters(cls())
    assert abs(n - paper) / paper < 0.01, f"{name}: {n:,} vs the paper's {paper:,}"


def test_documented_counts_of_the_chosen_configurations():
    assert count_parameters(KiUNet(widths=(97, 194, 388))) == 7_889_978
    assert count_parameters(PCRNN(features=64, res_blocks=3, iterations=5)) == 1_468_296


@pytest.mark.parametrize("name", list(TINY))
def test_registry_builds_the_baseline_with_config_widths(name):
    cls, kwargs = TINY[name]
    model = build_model(name, {name: kwargs})
    assert type(model) is cls
    assert count_parameters(model) == count_parameters(cls(**kwargs))


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
