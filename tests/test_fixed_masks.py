"""``oucr masks``: layout of the fixed masks file, fastMRI seeds, determinism, bad manifests."""

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from oucr import cli
from oucr.data.fixed_masks import CSV_COLUMNS, read_fixed_masks, write_fixed_masks
from oucr.errors import ConfigError, DataError
from oucr.masks import EquispacedMaskFractionFunc, RandomMaskFunc, volume_seed

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST_COLUMNS = ["volume", "file", "subject", "split", "n_slices", "height", "width", "source", "format"]


def make_store(root: Path, rows, columns=MANIFEST_COLUMNS) -> Path:
    """A store folder holding only ``manifest.csv``; ``rows`` are (volume, split, height, width)."""
    root.mkdir(parents=True, exist_ok=True)
    records = [{"volume": v, "file": f"volumes/{v}.h5", "subject": v, "split": s, "n_slices": 3,
                "height": h, "width": w, "source": f"/raw/{v}.h5", "format": "fastmri"} for v, s, h, w in rows]
    pd.DataFrame(records, columns=MANIFEST_COLUMNS)[list(columns)].to_csv(root / "manifest.csv", index=False)
    return root


ROWS = [("file1000001", "test", 640, 368), ("file1000007", "test", 640, 372), ("sub-001", "train", 64, 64),
        ("sub-002", "val", 64, 64), ("sub-003", "val", 48, 33)]


@pytest.fixture
def store(tmp_path) -> Path:
    return make_store(tmp_path / "store", ROWS)


def test_file_layout(store, tmp_path):
    out = tmp_path / "masks" / "demo" / "x4.h5"
    frame = write_fixed_masks(store, out, 4, 0.08)
    expected = ["file1000001", "file1000007", "sub-002", "sub-003"]  # val and test, sorted
    with h5py.File(out, "r") as f:
        assert sorted(f) == expected
        assert f.attrs["mask_type"] == "random" and f.attrs["acceleration"] == 4
        assert f.attrs["center_fraction"] == pytest.approx(0.08)
        for volume, split, _, width in ROWS:
            if split == "train":
                continue
            ds = f[volume]
            assert ds.dtype == np.uint8 and ds.shape == (width,)
            assert set(np.unique(ds[()])) == {0, 1}
            assert ds.attrs["split"] == split
            assert ds.attrs["num_low_frequencies"] == round(width * 0.08)
    table = pd.read_csv(out.with_suffix(".csv"), dtype={"volume": str})
    assert out.with_suffix(".csv") == tmp_path / "masks" / "demo" / "x4.csv"
    assert list(table.columns) == list(CSV_COLUMNS)
    assert table["volume"].tolist() == expected
    assert table["split"].tolist() == ["test", "test", "val", "val"]
    assert (table["acceleration"] == 4).all() and np.allclose(table["center_fraction"], 0.08)
    pd.testing.assert_frame_equal(table, frame, check_dtype=False)
    assert sorted(p.name for p in out.parent.iterdir()) == ["x4.csv", "x4.h5"]  # no temporary left


def test_mask_is_the_mask_func_with_the_volume_seed(store, tmp_path):
    out = tmp_path / "x8.h5"
    write_fixed_masks(store, out, 8, 0.04)
    masks = read_fixed_masks(out)
    for volume, split, height, width in ROWS:
        if split == "train":
            continue
        expected, num_low = RandomMaskFunc([0.04], [8])((1, height, width, 2), seed=volume_seed(volume))
        assert np.array_equal(masks[volume], expected.reshape(-1).numpy().astype(np.uint8))
        with h5py.File(out, "r") as f:
            assert f[volume].attrs["num_low_frequencies"] == num_low


def test_fastmri_volume_gets_fastmris_own_mask(store, tmp_path):
    # the reference fixture holds what fastmri 0.3.0 draws for "file1000001.h5" at width 368
    meta = json.loads((FIXTURES / "fastmri_masks.json").read_text())["masks"]
    record = next(r for r in meta if r["class"] == "RandomMaskFunc" and r["shape"] == [1, 640, 368, 2]
                  and r["seed"] == list(map(ord, "file1000001.h5")) and r["accelerations"] == [4]
                  and r["center_fractions"] == [0.08])
    with np.load(FIXTURES / "fastmri_masks.npz") as arrays:
        reference = arrays[record["key"]].reshape(-1)
    write_fixed_masks(store, tmp_path / "x4.h5", 4, 0.08)
    assert np.array_equal(read_fixed_masks(tmp_path / "x4.h5")["file1000001"], reference.astype(np.uint8))


def test_realised_acceleration_is_recorded(store, tmp_path):
    out = tmp_path / "x4.h5"
    frame = write_fixed_masks(store, out, 4, 0.08).set_index("volume")
    masks = read_fixed_masks(out)
    with h5py.File(out, "r") as f:
        for volume, mask in masks.items():
            realised = mask.size / mask.sum()
            assert f[volume].attrs["realised_acceleration"] == pytest.approx(realised)
            assert frame.loc[volume, "realised_acceleration"] == pytest.approx(realised)
            assert 2.0 < realised < 8.0


def test_deterministic_and_independent_of_other_volumes(store, tmp_path):
    write_fixed_masks(store, tmp_path / "a" / "x4.h5", 4, 0.08)
    write_fixed_masks(store, tmp_path / "b" / "x4.h5", 4, 0.08)
    assert (tmp_path / "a" / "x4.csv").read_text() == (tmp_path / "b" / "x4.csv").read_text()
    a, b = read_fixed_masks(tmp_path / "a" / "x4.h5"), read_fixed_masks(tmp_path / "b" / "x4.h5")
    assert a.keys() == b.keys() and all(np.array_equal(a[v], b[v]) for v in a)
    # a store with one volume less gives the same masks for the others
    small = make_store(tmp_path / "small", ROWS[1:])
    write_fixed_masks(small, tmp_path / "c" / "x4.h5", 4, 0.08)
    c = read_fixed_masks(tmp_path / "c" / "x4.h5")
    assert all(np.array_equal(c[v], a[v]) for v in c)
    # the same width and seed give the same mask whatever the height
    assert np.array_equal(a["sub-002"], RandomMaskFunc([0.08], [4])((1, 1, 64, 2), seed=volume_seed("sub-002"))[0]
                          .reshape(-1).numpy().astype(np.uint8))


def test_mask_type_and_splits(store, tmp_path):
    out = tmp_path / "x4.h5"
    write_fixed_masks(store, out, 4, 0.08, mask_type="equispaced_fraction", splits=("train", "val"))
    masks = read_fixed_masks(out)
    assert sorted(masks) == ["sub-001", "sub-002", "sub-003"]
    expected, _ = EquispacedMaskFractionFunc([0.08], [4])((1, 64, 64, 2), seed=volume_seed("sub-001"))
    assert np.array_equal(masks["sub-001"], expected.reshape(-1).numpy().astype(np.uint8))
    with h5py.File(out, "r") as f:
        assert f.attrs["mask_type"] == "equispaced_fraction"


def test_manifest_needs_only_volume_split_width(tmp_path):
    store = make_store(tmp_path / "store", ROWS, columns=["volume", "split", "width"])
    write_fixed_masks(store, tmp_path / "x4.h5", 4, 0.08)
    assert len(read_fixed_masks(tmp_path / "x4.h5")) == 4


@pytest.mark.parametrize("problem, write, match", [
    ("missing manifest", None, "manifest.csv missing"),
    ("missing column", lambda root: make_store(root, ROWS, columns=["volume", "split", "height"]),
     r"manifest lacks the column\(s\) width \(it has "),
    ("duplicate volume", lambda root: make_store(root, ROWS + ROWS[:1]), "more than once: file1000001"),
    ("bad width", lambda root: make_store(root, [("v1", "val", 64, 0), ("v2", "test", 64, 32.5)]),
     "positive integer for volume.*v1, v2"),
    ("empty manifest", lambda root: (root / "manifest.csv").write_text(""), "manifest is empty"),
    ("no volume in the splits", lambda root: make_store(root, [("v1", "train", 64, 64)]), "no volume in split"),
])
def test_bad_manifest_errors_name_the_file_and_write_nothing(tmp_path, problem, write, match):
    root = tmp_path / "store"
    root.mkdir()
    if write is not None:
        write(root)
    out = tmp_path / "out" / "x4.h5"
    with pytest.raises(DataError, match=match) as err:
        write_fixed_masks(root, out, 4, 0.08)
    assert err.value.path == str(root / "manifest.csv")
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_bad_settings(store, tmp_path):
    with pytest.raises(ConfigError, match="unknown mask type"):
        write_fixed_masks(store, tmp_path / "x4.h5", 4, 0.08, mask_type="poisson")
    with pytest.raises(ConfigError, match="must end in .h5"):
        write_fixed_masks(store, tmp_path / "x4.csv", 4, 0.08)
    with pytest.raises(ConfigError, match="center fraction"):
        write_fixed_masks(store, tmp_path / "x4.h5", 4, 0.3)
    with pytest.raises(ConfigError, match="acceleration"):
        write_fixed_masks(store, tmp_path / "x4.h5", 1, 0.08)
    assert not any(tmp_path.glob("x4.*"))


def test_read_fixed_masks_errors(store, tmp_path):
    with pytest.raises(DataError, match="does not exist") as err:
        read_fixed_masks(tmp_path / "nope.h5")
    assert err.value.path == str(tmp_path / "nope.h5")
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file")
    with pytest.raises(DataError, match="not a readable masks file"):
        read_fixed_masks(garbage)
    out = tmp_path / "x4.h5"
    write_fixed_masks(store, out, 4, 0.08)
    assert sorted(read_fixed_masks(out, volumes=["sub-002", "file1000001"])) == sorted(read_fixed_masks(out))
    with pytest.raises(DataError, match="no fixed mask for volume.*sub-001"):
        read_fixed_masks(out, volumes=["sub-002", "sub-001"])


def test_cli(store, tmp_path, capsys):
    out = tmp_path / "results" / "masks" / "demo" / "x8.h5"
    assert cli.main(["masks", "--store", str(store), "--acceleration", "8", "--center-fraction", "0.04",
                     "--out", str(out)]) == 0
    assert sorted(read_fixed_masks(out)) == ["file1000001", "file1000007", "sub-002", "sub-003"]
    assert out.with_suffix(".csv").is_file()
    assert cli.main(["masks", "--store", str(tmp_path / "missing"), "--acceleration", "4",
                     "--center-fraction", "0.08", "--splits", "test", "--mask-type", "equispaced_fraction",
                     "--out", str(tmp_path / "x4.h5")]) == 2
    assert "manifest.csv" in capsys.readouterr().err
