"""Masks: bit-exact agreement with fastmri 0.3.0, seeds, RNG isolation, realised acceleration."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from oucr import masks
from oucr.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures"


def _seed(value):
    return tuple(value) if isinstance(value, list) else value


def _global_rng_states():
    return np.random.get_state(), torch.get_rng_state().clone()


def _assert_same_global_states(before, after):
    (np_before, torch_before), (np_after, torch_after) = before, after
    assert np_before[0] == np_after[0]
    assert np.array_equal(np_before[1], np_after[1])
    assert np_before[2:] == np_after[2:]  # position in the key, cached Gaussian
    assert torch.equal(torch_before, torch_after)


def test_fixture_comes_from_fastmri_0_3_0():
    meta = json.loads((FIXTURES / "fastmri_masks.json").read_text())
    assert meta["generator"]["fastmri"] == "0.3.0"
    records = meta["masks"]
    with np.load(FIXTURES / "fastmri_masks.npz") as arrays:
        assert sorted(arrays.files) == sorted(r["key"] for r in records)
    assert len(records) >= 200
    assert {r["class"] for r in records} == {"RandomMaskFunc", "EquispacedMaskFractionFunc"}
    assert {r["shape"][-2] for r in records} >= {368, 372, 320, 64, 72, 33}
    assert any(isinstance(r["seed"], list) for r in records)
    assert any(r["offset"] is not None for r in records)
    assert any(r["step"] > 0 and r["seed"] is None and r["ctor_seed"] is not None for r in records)


def test_masks_equal_fastmri_reference_bit_for_bit():
    records = json.loads((FIXTURES / "fastmri_masks.json").read_text())["masks"]
    funcs = {}
    with np.load(FIXTURES / "fastmri_masks.npz") as arrays:
        for r in records:
            # the calls of one case are made in order on one mask function, as in the generator
            if r["step"] == 0:
                cls = getattr(masks, r["class"])
                funcs[r["case"]] = cls(r["center_fractions"], r["accelerations"],
                                       allow_any_combination=r["allow_any_combination"], seed=r["ctor_seed"])
            mask, num_low = funcs[r["case"]](tuple(r["shape"]), offset=r["offset"], seed=_seed(r["seed"]))
            expected = arrays[r["key"]]
            assert isinstance(mask, torch.Tensor) and mask.dtype == torch.float32, r["key"]
            assert tuple(mask.shape) == expected.shape, r["key"]
            assert np.array_equal(mask.numpy(), expected), r["key"]
            assert num_low == r["num_low"] and isinstance(num_low, int), r["key"]


def test_mask_shape_is_ones_except_columns():
    func = masks.RandomMaskFunc([0.08], [4])
    assert tuple(func((1, 640, 368, 2), seed=0)[0].shape) == (1, 1, 368, 1)
    assert tuple(func((640, 368, 2), seed=0)[0].shape) == (1, 368, 1)
    assert tuple(func((3, 1, 10, 368, 2), seed=0)[0].shape) == (1, 1, 1, 368, 1)


@pytest.mark.parametrize("cls", [masks.RandomMaskFunc, masks.EquispacedMaskFractionFunc])
def test_global_rng_state_is_untouched(cls):
    np.random.seed(123)
    np.random.standard_normal(3)  # a cached Gaussian and a non-zero position in the state
    torch.manual_seed(5)
    before = _global_rng_states()
    func = cls([0.08, 0.04], [4, 8])
    func((1, 10, 64, 2), seed=5)
    func((1, 10, 64, 2), seed=masks.volume_seed("file1000001"))
    func((1, 10, 64, 2))
    masks.column_mask(func, 64, seed=(0, 1, 2))
    _assert_same_global_states(before, _global_rng_states())


def test_seeded_call_does_not_advance_the_functions_own_stream():
    a = masks.RandomMaskFunc([0.08], [4], seed=1)
    b = masks.RandomMaskFunc([0.08], [4], seed=1)
    first_a, _ = a((1, 1, 64, 2))
    a((1, 1, 64, 2), seed=99)
    second_a, _ = a((1, 1, 64, 2))
    first_b, _ = b((1, 1, 64, 2))
    second_b, _ = b((1, 1, 64, 2))
    assert torch.equal(first_a, first_b) and torch.equal(second_a, second_b)
    assert not torch.equal(first_a, second_a)


def test_same_seed_same_mask_and_seed_types():
    func = masks.EquispacedMaskFractionFunc([0.08], [4])
    m1, _ = func((1, 1, 368, 2), seed=masks.volume_seed("file1000001"))
    m2, _ = masks.EquispacedMaskFractionFunc([0.08], [4], seed=9)((1, 1, 368, 2), seed=masks.volume_seed("file1000001"))
    assert torch.equal(m1, m2)


def test_volume_seed_is_fastmri_convention():
    assert masks.volume_seed("file1000001") == tuple(map(ord, "file1000001.h5"))
    assert masks.volume_seed("file1000001.h5") == tuple(map(ord, "file1000001.h5"))
    assert masks.volume_seed("sub-003") == tuple(map(ord, "sub-003.h5"))


def test_column_mask_matches_mask_func_and_centre():
    func = masks.RandomMaskFunc([0.08], [4])
    flat, num_low = masks.column_mask(func, 64, seed=masks.volume_seed("sub-001"))
    full, num_low2 = func((1, 64, 64, 2), seed=masks.volume_seed("sub-001"))
    assert flat.dtype == np.uint8 and flat.shape == (64,)
    assert np.array_equal(flat, full.reshape(-1).numpy().astype(np.uint8))
    assert set(np.unique(flat)) <= {0, 1}
    assert num_low == num_low2 == 5
    start = (64 - 5 + 1) // 2
    assert flat[start : start + 5].all()


def test_realised_acceleration():
    m = np.zeros(64, np.uint8)
    m[:16] = 1
    assert masks.realised_acceleration(m) == 4.0
    assert masks.realised_acceleration(torch.from_numpy(m).reshape(1, 1, 64, 1).float()) == 4.0
    full = np.zeros((8, 64))
    full[:, :8] = 1
    full[0, 8:12] = 1  # 68 of 512 locations
    assert masks.realised_acceleration(full) == pytest.approx(512 / 68)
    with pytest.raises(ValueError, match="samples no"):
        masks.realised_acceleration(np.zeros(10))


@pytest.mark.parametrize("acc, cf", [(4, 0.08), (8, 0.04)])
def test_realised_acceleration_varies_around_nominal(acc, cf):
    func = masks.RandomMaskFunc([cf], [acc])
    accs = np.array([masks.realised_acceleration(masks.column_mask(func, 368, seed=s)[0]) for s in range(300)])
    assert abs(accs.mean() - acc) < 0.06 * acc
    assert accs.std() > 0.03 * acc
    # equispaced masks hit the nominal acceleration almost exactly
    eq = masks.EquispacedMaskFractionFunc([cf], [acc])
    assert masks.realised_acceleration(masks.column_mask(eq, 368, seed=0)[0]) == pytest.approx(acc, rel=0.03)


def test_factory_and_errors():
    assert isinstance(masks.create_mask_for_mask_type("random", [0.08], [4]), masks.RandomMaskFunc)
    assert isinstance(masks.create_mask_for_mask_type("equispaced_fraction", [0.08], [4]),
                      masks.EquispacedMaskFractionFunc)
    assert isinstance(masks.RandomMaskFunc([0.08], [4]), masks.MaskFunc)
    with pytest.raises(ConfigError, match="unknown mask type"):
        masks.create_mask_for_mask_type("poisson", [0.08], [4])
    with pytest.raises(ValueError, match="same length"):
        masks.RandomMaskFunc([0.08, 0.04], [4])
    with pytest.raises(ValueError, match="3 dimensions"):
        masks.RandomMaskFunc([0.08], [4])((64, 2))


def test_mask_function_argument_errors_are_stated_in_full():
    with pytest.raises(ValueError, match=r"^center_fractions and accelerations must have the same length unless "
                                         r"allow_any_combination is True$"):
        masks.RandomMaskFunc([0.08, 0.04], [4])
    for fractions, accelerations in (([], [4]), ([0.08], []), ([], [])):
        with pytest.raises(ValueError, match="^at least one center fraction and one acceleration are needed$"):
            masks.RandomMaskFunc(fractions, accelerations, allow_any_combination=True)
    with pytest.raises(ValueError, match=r"^shape must have at least 3 dimensions \(\.\.\., columns, 2\)$"):
        masks.EquispacedMaskFractionFunc([0.08], [4]).columns((64, 2))
    with pytest.raises(ConfigError, match="^unknown mask type 'poisson'; known: random, equispaced_fraction$"):
        masks.create_mask_for_mask_type("poisson", [0.08], [4])
    with pytest.raises(ValueError, match="^the mask samples no k-space location$"):
        masks.realised_acceleration(np.zeros(10))


@pytest.mark.parametrize("cls", [masks.RandomMaskFunc, masks.EquispacedMaskFractionFunc])
def test_columns_are_a_float32_numpy_mask(cls):
    flat, num_low = cls([0.08], [4]).columns((1, 10, 64, 2), seed=3)
    assert isinstance(flat, np.ndarray) and flat.dtype == np.float32 and flat.shape == (64,)
    assert set(np.unique(flat)) == {0.0, 1.0} and num_low == 5


def test_factory_passes_the_generator_seed_on():
    made = masks.create_mask_for_mask_type("random", [0.08], [4], seed=7)
    direct = masks.RandomMaskFunc([0.08], [4], seed=7)
    for _ in range(3):  # the same unseeded stream, call after call
        assert torch.equal(made((1, 1, 64, 2))[0], direct((1, 1, 64, 2))[0])
    other = masks.create_mask_for_mask_type("equispaced_fraction", [0.08], [4], seed=7)
    assert torch.equal(other((1, 1, 64, 2))[0], masks.EquispacedMaskFractionFunc([0.08], [4], seed=7)((1, 1, 64, 2))[0])


def test_realised_acceleration_of_a_tensor_attached_to_a_graph():
    m = torch.zeros(1, 1, 64, 1)
    m[..., :16, :] = 1
    m.requires_grad_(True)  # e.g. a learnt mask: NumPy cannot take it without detaching
    assert masks.realised_acceleration(m) == 4.0
