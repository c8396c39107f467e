"""Masks: bit-exact agreement with fastmri 0.3.0, seeds, realised acceleration."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from oucr import masks
from oucr.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures"


def _reference():
    meta = json.loads((FIXTURES / "fastmri_masks.json").read_text())
    arrays = np.load(FIXTURES / "fastmri_masks.npz")
    return meta, arrays


def test_masks_equal_fastmri_reference_bit_for_bit():
    meta, arrays = _reference()
    funcs = {}
    checked = 0
    for m in meta:
        # sequential calls of one case share a mask function, as they did in fastMRI
        if m["call"] == 0:
            cls = getattr(masks, m["class"])
            funcs[m["case"]] = cls(m["center_fractions"], m["accelerations"],
                                   allow_any_combination=m["allow_any_combination"], seed=m["ctor_seed"])
        func = funcs[m["case"]]
        seed = tuple(m["seed"]) if isinstance(m["seed"], list) else m["seed"]
        mask, num_low = func(tuple(m["shape"]), offset=m["offset"], seed=seed)
        expected = arrays[m["key"]]
        assert mask.dtype == torch.float32
        assert tuple(mask.shape) == expected.shape, m["key"]
        assert np.array_equal(mask.numpy(), expected), m["key"]
        assert num_low == m["num_low"], m["key"]
        checked += 1
    assert checked == 160


def test_global_rng_state_is_untouched():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    func = masks.RandomMaskFunc([0.08], [4])
    func((1, 10, 64, 2), seed=5)
    func((1, 10, 64, 2))
    assert np.array_equal(np.random.get_state()[1], before)


def test_call_seed_restores_the_functions_own_stream():
    a = masks.RandomMaskFunc([0.08], [4], seed=1)
    b = masks.RandomMaskFunc([0.08], [4], seed=1)
    first_a, _ = a((1, 1, 64, 2))
    a((1, 1, 64, 2), seed=99)  # a seeded call in between does not advance the stream
    second_a, _ = a((1, 1, 64, 2))
    first_b, _ = b((1, 1, 64, 2))
    second_b, _ = b((1, 1, 64, 2))
    assert torch.equal(first_a, first_b) and torch.equal(second_a, second_b)


def test_volume_seed_is_fastmri_convention():
    assert masks.volume_seed("file1000001") == tuple(map(ord, "file1000001.h5"))
    assert masks.volume_seed("file1000001.h5") == tuple(map(ord, "file1000001.h5"))


def test_column_mask_matches_mask_func_and_centre():
    func = masks.RandomMaskFunc([0.08], [4])
    flat, num_low = masks.column_mask(func, 64, seed=masks.volume_seed("sub-001"))
    full, num_low2 = func((1, 64, 64, 2), seed=masks.volume_seed("sub-001"))
    assert flat.dtype == np.uint8 and flat.shape == (64,)
    assert np.array_equal(flat, full.reshape(-1).numpy().astype(np.uint8))
    assert num_low == num_low2 == 5
    start = (64 - 5 + 1) // 2
    assert flat[start : start + 5].all()


def test_realised_acceleration():
    m = np.zeros(64, np.uint8)
    m[:16] = 1
    assert masks.realised_acceleration(m) == 4.0
    assert masks.realised_acceleration(torch.from_numpy(m).reshape(1, 1, 64, 1)) == 4.0
    full = np.zeros((8, 64))
    full[:, :8] = 1
    assert masks.realised_acceleration(full) == 8.0
    with pytest.raises(ValueError, match="samples no"):
        masks.realised_acceleration(np.zeros(10))


def test_realised_acceleration_varies_around_nominal():
    func = masks.RandomMaskFunc([0.08], [4])
    accs = [masks.realised_acceleration(masks.column_mask(func, 368, seed=s)[0]) for s in range(200)]
    assert 3.8 < np.mean(accs) < 4.3
    assert np.std(accs) > 0.1


def test_factory_and_errors():
    assert isinstance(masks.create_mask_for_mask_type("random", [0.08], [4]), masks.RandomMaskFunc)
    assert isinstance(masks.create_mask_for_mask_type("equispaced_fraction", [0.08], [4]),
                      masks.EquispacedMaskFractionFunc)
    with pytest.raises(ConfigError, match="unknown mask type"):
        masks.create_mask_for_mask_type("poisson", [0.08], [4])
    with pytest.raises(ValueError, match="same length"):
        masks.RandomMaskFunc([0.08, 0.04], [4])
    with pytest.raises(ValueError, match="3 dimensions"):
        masks.RandomMaskFunc([0.08], [4])((64, 2))
