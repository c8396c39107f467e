"""SliceDataset: sample contract, normalisation, fixed vs fresh masks, collation, lazy files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from oucr.data.dataset import SliceDataset
from oucr.data.fixed_masks import write_fixed_masks
from oucr.data.store import PreparedStore
from oucr.errors import DataError
from oucr.fft import channels_to_complex, ifft2c
from oucr.masks import RandomMaskFunc, column_mask, volume_seed


@pytest.fixture()
def mask_func():
    return RandomMaskFunc([0.08], [4])


def test_sample_contract(fastmri_store, mask_func):
    ds = SliceDataset(fastmri_store, "val", mask_func)
    store = PreparedStore(fastmri_store)
    assert len(ds) == len(store.slices("val")) == 3
    sample = ds[1]
    assert set(sample) == {"masked_kspace", "mask", "image", "target", "norm", "max", "volume", "slice"}
    assert sample["masked_kspace"].dtype == torch.complex64 and sample["masked_kspace"].shape == (32, 32)
    assert sample["mask"].dtype == torch.float32 and sample["mask"].shape == (1, 32)
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (2, 32, 32)
    assert sample["target"].dtype == torch.float32 and sample["target"].shape == (2, 32, 32)
    assert sample["norm"].dtype == torch.float32 and sample["norm"].ndim == 0
    assert sample["max"].dtype == torch.float32 and sample["max"].ndim == 0
    volume, s = store.slices("val")[1]
    assert sample["volume"] == volume and sample["slice"] == s == 1
    assert set(torch.unique(sample["mask"]).tolist()) == {0.0, 1.0}


def test_normalisation_by_mean_zero_filled_magnitude(fastmri_store, mask_func):
    ds = SliceDataset(fastmri_store, "test", mask_func)
    store = PreparedStore(fastmri_store)
    sample = ds[4]
    raw = store.load(sample["volume"])
    kspace = torch.from_numpy(raw["kspace"][sample["slice"]])
    masked = kspace * sample["mask"]
    norm = ifft2c(masked).abs().mean()
    assert float(sample["norm"]) == pytest.approx(float(norm), rel=1e-5)
    torch.testing.assert_close(sample["masked_kspace"], masked / norm, rtol=1e-5, atol=1e-6)
    image = channels_to_complex(sample["image"][None])[0]
    assert float(image.abs().mean()) == pytest.approx(1.0, rel=1e-5)
    torch.testing.assert_close(image, ifft2c(sample["masked_kspace"]), rtol=1e-4, atol=1e-5)
    target = channels_to_complex(sample["target"][None])[0] * sample["norm"]
    torch.testing.assert_close(target, torch.from_numpy(raw["target"][sample["slice"]]), rtol=1e-4, atol=1e-5)
    assert float(sample["max"]) == pytest.approx(raw["attrs"]["max"])
    # unsampled columns are zero
    assert torch.all(sample["masked_kspace"][:, sample["mask"][0] == 0] == 0)


def test_validation_masks_are_fixed_per_volume_and_match_the_masks_file(fastmri_store, mask_func, tmp_path):
    store = PreparedStore(fastmri_store)
    ds = SliceDataset(store, "test", mask_func)
    by_volume = {}
    for epoch in (0, 3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            sample = ds[i]
            mask = sample["mask"][0].numpy().astype(np.uint8)
            first = by_volume.setdefault(sample["volume"], mask)
            np.testing.assert_array_equal(mask, first)  # every slice, every epoch
    assert len(by_volume) == 2
    for volume, mask in by_volume.items():
        expected, _ = column_mask(RandomMaskFunc([0.08], [4]), 32, seed=volume_seed(volume))
        np.testing.assert_array_equal(mask, expected)
    # the masks file of `oucr masks` gives the same masks (volume seed of fastMRI) ...
    masks_h5 = tmp_path / "x4.h5"
    write_fixed_masks(fastmri_store, masks_h5, 4, 0.08)
    from_file = SliceDataset(store, "test", mask_func, masks_file=masks_h5)
    for i in range(len(from_file)):
        sample = from_file[i]
        np.testing.assert_array_equal(sample["mask"][0].numpy().astype(np.uint8), by_volume[sample["volume"]])
    # ... and when given, the file decides (an 8x file read with a 4x mask function)
    masks_x8 = tmp_path / "x8.h5"
    write_fixed_masks(fastmri_store, masks_x8, 8, 0.04)
    x8 = SliceDataset(store, "test", mask_func, masks_file=masks_x8)
    assert x8[0]["mask"].sum() < from_file[0]["mask"].sum()


def test_a_masks_file_missing_a_volume_is_an_error(fastmri_store, mask_func, tmp_path):
    masks_h5 = tmp_path / "x4.h5"
    write_fixed_masks(fastmri_store, masks_h5, 4, 0.08, splits=("test",))
    with pytest.raises(DataError, match="no fixed mask for volume"):
        SliceDataset(fastmri_store, "val", mask_func, masks_file=masks_h5)


def test_training_masks_are_fresh_per_example_and_reproducible(brain_store, mask_func):
    a = SliceDataset(brain_store, "train", mask_func, seed=7)
    b = SliceDataset(brain_store, "train", RandomMaskFunc([0.08], [4]), seed=7)
    masks_a = [a[i]["mask"] for i in range(len(a))]
    assert len({tuple(m[0].tolist()) for m in masks_a}) > len(a) // 2  # fresh per example
    for i in range(len(a)):
        torch.testing.assert_close(b[i]["mask"], masks_a[i])  # same (seed, epoch, index): same mask
    a.set_epoch(1)
    assert any(not torch.equal(a[i]["mask"], masks_a[i]) for i in range(len(a)))
    expected, _ = column_mask(mask_func, 32, seed=(7, 1, 2))
    np.testing.assert_array_equal(a[2]["mask"][0].numpy().astype(np.uint8), expected)
    other_seed = SliceDataset(brain_store, "train", mask_func, seed=8)
    assert any(not torch.equal(other_seed[i]["mask"], masks_a[i]) for i in range(len(a)))


def test_default_collate_and_lazy_file_cache(brain_store, mask_func):
    ds = SliceDataset(brain_store, "train", mask_func, open_files=1)
    batch = next(iter(DataLoader(ds, batch_size=4, shuffle=False)))
    assert batch["masked_kspace"].shape == (4, 32, 32) and batch["masked_kspace"].dtype == torch.complex64
    assert batch["mask"].shape == (4, 1, 32) and batch["image"].shape == (4, 2, 32, 32)
    assert batch["norm"].shape == (4,) and len(batch["volume"]) == 4 and batch["slice"].shape == (4,)
    # slices 0-2 of the first volume, slice 0 of the second: at most one file open at a time
    assert len(set(batch["volume"])) == 2 and len(ds._files) == 1
    clone = pickle.loads(pickle.dumps(ds))  # what DataLoader workers receive: no open handles
    assert clone._files == {} and torch.equal(clone[0]["target"], ds[0]["target"])
    ds.close()
    assert len(ds._files) == 0


def test_masks_need_a_source_and_splits_a_known_name(brain_store):
    with pytest.raises(ValueError, match="mask_func"):
        SliceDataset(brain_store, "train", None)
    with pytest.raises(ValueError, match="split"):
        SliceDataset(brain_store, "validation", RandomMaskFunc([0.08], [4]))
    assert len(SliceDataset(brain_store, "val", RandomMaskFunc([0.08], [4]))) == 3


def test_a_damaged_prepared_volume_is_one_error_naming_the_file(tmp_path, brain_store):
    """Reading a slice of a truncated volume file names the file (not a raw h5py traceback)."""
    import shutil

    from oucr.data.dataset import SliceDataset
    from oucr.data.store import PreparedStore
    from oucr.errors import DataError
    from oucr.masks import RandomMaskFunc

    store_dir = tmp_path / "store"
    shutil.copytree(brain_store, store_dir)
    store = PreparedStore(store_dir)
    volume = store.volumes("train")[0]
    path = store.path(volume)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # truncated
    dataset = SliceDataset(store, "train", RandomMaskFunc([0.08], [4]))
    index = next(i for i, (v, _) in enumerate(dataset.slice_index) if v == volume)
    with pytest.raises(DataError) as err:
        dataset[index]
    assert err.value.path == str(path)
    with pytest.raises(DataError) as err:
        store.load(volume)
    assert err.value.path == str(path)
