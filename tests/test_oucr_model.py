"""OUCR and its Table 2 ablation variants: data consistency, shapes, gradients, counts, memory options."""

from __future__ import annotations

import pytest
import torch

from oucr.fft import channels_to_complex, fft2c
from oucr.models.base import count_parameters
from oucr.models.crnn import CRNN
from oucr.models.oucr import OUCR
from oucr.models.registry import ABLATIONS, build_model
from oucr.physics import SingleCoilMRI

SMALL = dict(oc_features=4, uc_features=6, rm_features=4, iterations=2, res_blocks=2, oc_depth=2)

#: trainable parameters at the paper's widths: the full OUCR is the paper's 1.192 M (Table 1); the
#: variants follow from the layer list of oucr/models/crnn.py (54 nf^2 + 43 nf + 3 per branch, RM 77,378)
PAPER_COUNTS = {
    "UC-CRNN": 890_243,
    "UC-CRNN + RM": 966_469,
    "OC-CRNN": 223_939,
    "OC-CRNN + RM": 300_165,
    "UC-CRNN + OC-CRNN": 1_114_182,
    "UC-CRNN + OC-CRNN + RM (OUCR)": 1_191_560,
}


def make_physics(batch: int = 2, size: int = 16, seed: int = 0) -> SingleCoilMRI:
    g = torch.Generator().manual_seed(seed)
    image = torch.complex(torch.randn(batch, size, size, generator=g), torch.randn(batch, size, size, generator=g))
    mask = (torch.rand(batch, 1, size, generator=g) < 0.4).float()
    mask[..., size // 2 - 1 : size // 2 + 1] = 1.0
    return SingleCoilMRI(fft2c(image) * mask, mask)


def small_variant(name: str, seed: int = 0, **kwargs) -> OUCR:
    torch.manual_seed(seed)
    return build_model(name, None, **{**SMALL, **kwargs})


VARIANTS = list(ABLATIONS)


@pytest.mark.parametrize("name", VARIANTS)
def test_output_is_data_consistent_and_shaped_like_input(name):
    physics = make_physics()
    image = physics.zero_filled()
    out = small_variant(name)(image, physics)
    assert out.shape == image.shape and out.dtype == torch.float32
    kspace = fft2c(channels_to_complex(out))
    sampled = physics.mask.expand_as(kspace).bool()
    torch.testing.assert_close(kspace[sampled], physics.measured_kspace[sampled], atol=1e-5, rtol=1e-5)
    # and the network changed the unsampled part (it is not the identity)
    assert (kspace[~sampled] - fft2c(channels_to_complex(image))[~sampled]).abs().max() > 1e-4


@pytest.mark.parametrize("name", VARIANTS)
def test_every_parameter_gets_a_gradient(name):
    physics = make_physics()
    model = small_variant(name)
    model(physics.zero_filled(), physics).abs().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, f"{name}: {pname} has a zero gradient"


def test_components_of_each_variant():
    for name, flags in ABLATIONS.items():
        model = small_variant(name)
        assert (model.oc is not None, model.uc is not None, model.rm is not None) == (
            flags["use_oc"], flags["use_uc"], flags["use_rm"])
        if model.rm is not None:
            assert model.rm.body[0].in_channels == 2 * len(model.branches)
    with pytest.raises(ValueError, match="at least one"):
        OUCR(use_oc=False, use_uc=False)


def test_oc_runs_first_and_uc_starts_from_its_output():
    physics = make_physics()
    image = physics.zero_filled()
    model = small_variant("UC-CRNN + OC-CRNN")
    assert list(model.branches) == ["oc", "uc"]
    with torch.no_grad():
        expected = model.uc(model.oc(image, physics), physics)
        torch.testing.assert_close(model(image, physics), expected)
        full = small_variant("UC-CRNN + OC-CRNN + RM (OUCR)")
        y_oc = full.oc(image, physics)
        y_uc = full.uc(y_oc, physics)
        torch.testing.assert_close(full(image, physics),
                                   physics.data_consistency(full.rm(torch.cat([y_oc, y_uc], dim=1))))


def test_forward_is_deterministic_for_a_seed():
    physics = make_physics()
    image = physics.zero_filled()
    a, b = small_variant("UC-CRNN + OC-CRNN + RM (OUCR)", seed=3), small_variant("UC-CRNN + OC-CRNN + RM (OUCR)", seed=3)
    with torch.no_grad():
        out_a, out_b = a(image, physics), b(image, physics)
        assert torch.equal(out_a, out_b)
        assert torch.equal(out_a, a(image, physics))
        other = small_variant("UC-CRNN + OC-CRNN + RM (OUCR)", seed=4)(image, physics)
    assert not torch.equal(out_a, other)


@pytest.mark.parametrize("name", VARIANTS)
def test_parameter_count_at_paper_widths(name):
    assert count_parameters(build_model(name)) == PAPER_COUNTS[name]


def test_paper_defaults_and_branch_formula():
    model = OUCR()
    assert count_parameters(model) == 1_191_560
    assert abs(count_parameters(model) - 1.192e6) / 1.192e6 < 0.005
    assert model.oc.config["features"] == 64 and model.uc.config["features"] == 128
    assert model.size_multiple == 4
    for nf in (3, 8, 64):
        assert count_parameters(CRNN("uc", nf)) == 54 * nf**2 + 43 * nf + 3
    assert count_parameters(model.rm) == 77_378


def test_hidden_state_sizes():
    image = torch.randn(1, 2, 16, 16)
    oc, uc = CRNN("oc", 4, depth=2), CRNN("uc", 4, depth=2)
    assert oc.step(image, None).shape[-2:] == (64, 64)
    assert uc.step(image, None).shape[-2:] == (4, 4)
    assert CRNN("oc", 4, depth=1).step(image, None).shape[-2:] == (32, 32)


def test_checkpointing_gives_the_same_output_and_gradients():
    physics = make_physics()
    image = physics.zero_filled()
    plain = small_variant("UC-CRNN + OC-CRNN + RM (OUCR)")
    ckpt = small_variant("UC-CRNN + OC-CRNN + RM (OUCR)", checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    assert all(b.checkpointing for b in ckpt.branches.values())
    out_plain, out_ckpt = plain(image, physics), ckpt(image, physics)
    torch.testing.assert_close(out_ckpt, out_plain)
    out_plain.abs().sum().backward()
    out_ckpt.abs().sum().backward()
    grads = dict(plain.named_parameters())
    for name, p in ckpt.named_parameters():
        torch.testing.assert_close(p.grad, grads[name].grad, atol=1e-5, rtol=1e-4)
    plain.set_checkpointing(True)
    assert all(b.checkpointing for b in plain.branches.values())


def test_runs_under_bf16_autocast_with_exact_data_consistency():
    physics = make_physics()
    image = physics.zero_filled()
    model = small_variant("UC-CRNN + OC-CRNN + RM (OUCR)", checkpointing=True)
    with torch.no_grad():
        reference = model(image, physics)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(image, physics)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    out.abs().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    kspace = fft2c(channels_to_complex(out.detach()))
    sampled = physics.mask.expand_as(kspace).bool()
    torch.testing.assert_close(kspace[sampled], physics.measured_kspace[sampled], atol=1e-5, rtol=1e-5)
    # Measured on these inputs (5 seeds): relative L2 error 1.9e-4 to 3.5e-4 against float32 (the DC
    # layers restore the sampled k-space exactly). The bound is 2e-3, about 5x the worst measured and
    # half of bf16's unit roundoff (2**-8 = 3.9e-3): a model that left autocast (error 0) or ran a
    # layer in a coarser format would fail one of the two checks.
    rel = ((out.detach() - reference).norm() / reference.norm()).item()
    assert 0 < rel < 2e-3


def test_image_size_the_pooling_cannot_handle_is_a_clear_error():
    model = small_variant("UC-CRNN + OC-CRNN + RM (OUCR)")
    physics = make_physics(size=18)
    with pytest.raises(ValueError, match="divisible by 4"):
        model(physics.zero_filled(), physics)
    shallow = small_variant("UC-CRNN", uc_depth=1)
    assert shallow.size_multiple == 2
    assert shallow(physics.zero_filled(), physics).shape == (2, 2, 18, 18)
    # the OC branch alone resamples up first, so any size works
    odd = make_physics(size=17)
    assert small_variant("OC-CRNN")(odd.zero_filled(), odd).shape == (2, 2, 17, 17)
    with pytest.raises(ValueError, match="two-channel"):
        model(torch.zeros(2, 1, 16, 16), make_physics())


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="branch"):
        CRNN("xx", 4)
    with pytest.raises(ValueError, match="depth"):
        CRNN("oc", 4, depth=3)
    with pytest.raises(ValueError):
        CRNN("uc", 4, iterations=0)


def test_first_iteration_has_no_recurrent_term():
    """h_1 = PReLU(enc(y_1)); the cell acts from the second iteration on (J - 1 times)."""
    torch.manual_seed(0)
    branch = CRNN("uc", 4, iterations=3, depth=1)
    calls = []
    branch.cell.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    physics = make_physics()
    image = physics.zero_filled()
    with torch.no_grad():
        first = branch.step(image, None)
        torch.testing.assert_close(first, branch.merge(branch.encoder(image)), rtol=0, atol=0)
        assert calls == []
        branch(image, physics)
    assert len(calls) == branch.iterations - 1


@pytest.mark.parametrize("branch", ["oc", "uc"])
def test_decoder_orders(branch):
    """Where the decoder resamples; every order has the paper's parameter count."""
    conv, relu = torch.nn.Conv2d, torch.nn.ReLU
    resample = torch.nn.MaxPool2d if branch == "oc" else torch.nn.Upsample
    expected = {
        "paper": [conv, relu, resample, conv, resample],      # "a conv layer followed by max-pool / upsampling"
        "mirrored": [resample, conv, relu, resample, conv],
        "lineage": [conv, resample, resample, relu, conv],
    }
    for order, types in expected.items():
        module = CRNN(branch, 4, decoder_order=order)
        assert [type(m) for m in module.decoder] == types, order
        assert module.decoder[-1 if order != "paper" else 3].out_channels == 2
    for order in expected:
        assert count_parameters(OUCR(decoder_order=order)) == 1_191_560  # the paper's 1.192 M
    with pytest.raises(ValueError, match="decoder_order"):
        CRNN(branch, 4, decoder_order="reversed")


def test_paper_decoder_ends_with_the_resampling():
    """Paper order: the UC output is a nearest upsampling (constant 2 x 2 blocks); mirrored is not."""
    torch.manual_seed(0)
    image = torch.randn(1, 2, 16, 16)
    for order, blocky in (("paper", True), ("mirrored", False)):
        uc = CRNN("uc", 4, iterations=1, decoder_order=order)
        with torch.no_grad():
            out = uc.decoder(uc.step(image, None))
        blocks = out.reshape(1, 2, 8, 2, 8, 2)
        spread = (blocks - blocks[:, :, :, :1, :, :1]).abs().max().item()
        assert (spread == 0) == blocky, order
