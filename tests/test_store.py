"""The prepared store: splits, writer/reader round trip, and `oucr prepare` on both formats."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import tiny_brain_section, tiny_fastmri_section

from oucr.cli import main
from oucr.data.prepare import prepare_dataset
from oucr.data.store import MANIFEST_COLUMNS, PreparedStore, PreparedVolume, split_subjects, write_store
from oucr.errors import ConfigError, DataError
from oucr.fft import fft2c

SUBJECTS = [f"s{i:02d}" for i in range(20)]


# splits ---------------------------------------------------------------------------------


def _groups(assignment):
    return {k: {s for s, v in assignment.items() if v == k} for k in ("train", "val", "test")}


def test_split_by_fractions_is_disjoint_complete_and_deterministic():
    a = split_subjects(SUBJECTS, 0.7, 0.1, 0.2, seed=3)
    groups = _groups(a)
    assert [len(groups[k]) for k in ("train", "val", "test")] == [14, 2, 4]
    assert set(a) == set(SUBJECTS)  # every subject once: disjoint by construction of the dict
    assert split_subjects(SUBJECTS, 0.7, 0.1, 0.2, seed=3) == a
    # the order (and repetition) of the subject list does not matter
    assert split_subjects(list(reversed(SUBJECTS)) + SUBJECTS[:3], 0.7, 0.1, 0.2, seed=3) == a
    assert split_subjects(SUBJECTS, 0.7, 0.1, 0.2, seed=4) != a


def test_split_by_counts_leaves_the_rest_out():
    a = split_subjects(SUBJECTS, train=10, val=2, test=4, seed=0)
    groups = _groups(a)
    assert [len(groups[k]) for k in ("train", "val", "test")] == [10, 2, 4]
    assert len(a) == 16


def test_split_fraction_rounding_and_train_val_only():
    a = split_subjects([f"p{i}" for i in range(12)], train=0.83, val=0.17, seed=0)
    assert sorted(a.values()).count("val") == 2 and sorted(a.values()).count("train") == 10
    assert "test" not in a.values()


@pytest.mark.parametrize(
    "shares, message",
    [
        ({"train": 15, "val": 5, "test": 5}, "only 20 are available"),
        ({"train": 0.8, "val": 0.2, "test": 0.2}, "sum to 1.2"),
        ({"train": -1, "val": 1, "test": 1}, "split.train"),
    ],
)
def test_invalid_splits_raise_config_errors(shares, message):
    with pytest.raises(ConfigError, match=message):
        split_subjects(SUBJECTS, **shares, seed=0)


def test_small_positive_fractions_get_one_subject_while_possible():
    a = split_subjects(SUBJECTS, 0.98, 0.01, 0.01, seed=0)
    assert [len(_groups(a)[k]) for k in ("train", "val", "test")] == [18, 1, 1]
    with pytest.raises(ConfigError, match="too few subjects"):
        split_subjects(["a", "b"], 0.8, 0.1, 0.1, seed=0)


# store round trip -------------------------------------------------------------------------


def _volume(name, subject, split, shape=(2, 16, 12), seed=0):
    rng = np.random.default_rng(seed)
    target = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    return PreparedVolume(volume=name, subject=subject, target=target, source=f"/raw/{name}.h5", format="fastmri",
                          slices=np.arange(3, 3 + shape[0]), acquisition="CORPD_FBK", split=split)


def test_store_round_trip(tmp_path):
    vols = [_volume("v2", "a", "val", seed=1), _volume("v1", "b", "train", (3, 16, 12), seed=2),
            _volume("v3", "c", "test", seed=3)]
    manifest = write_store(tmp_path, vols)
    assert list(manifest.columns) == MANIFEST_COLUMNS
    store = PreparedStore(tmp_path)
    on_disk = pd.read_csv(tmp_path / "manifest.csv")
    assert list(on_disk.columns) == MANIFEST_COLUMNS and list(on_disk["volume"]) == ["v1", "v2", "v3"]
    assert store.volumes() == ["v1", "v2", "v3"] and store.volumes("val") == ["v2"]
    assert store.slices("train") == [("v1", 0), ("v1", 1), ("v1", 2)]
    assert store.path("v3") == tmp_path / "volumes" / "v3.h5"
    row = store.manifest.set_index("volume").loc["v1"]
    assert (row.n_slices, row.height, row.width, row.subject, row.split, row.format) == (3, 16, 12, "b", "train",
                                                                                         "fastmri")
    for v in vols:
        loaded = store.load(v.volume)
        assert loaded["target"].dtype == np.complex64 and loaded["kspace"].dtype == np.complex64
        np.testing.assert_array_equal(loaded["target"], v.target)
        np.testing.assert_allclose(loaded["kspace"], fft2c(v.target), atol=1e-5)
        attrs = loaded["attrs"]
        assert attrs["volume"] == v.volume and attrs["subject"] == v.subject and attrs["source"] == v.source
        assert attrs["format"] == "fastmri" and attrs["acquisition"] == "CORPD_FBK"
        assert attrs["max"] == pytest.approx(np.abs(v.target).max())
        assert attrs["norm"] == pytest.approx(np.linalg.norm(np.abs(v.target)), rel=1e-5)
        np.testing.assert_array_equal(attrs["slices"], v.slices)
    # nothing but the store's own files
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["manifest.csv", "v1.h5", "v2.h5", "v3.h5", "volumes"]
    with pytest.raises(DataError, match="not in the store"):
        store.path("nope")


def test_store_rejects_duplicates_and_missing_manifest(tmp_path):
    with pytest.raises(DataError, match="duplicate"):
        write_store(tmp_path / "a", [_volume("v", "a", "train"), _volume("v", "b", "test")])
    with pytest.raises(DataError, match="manifest.csv missing"):
        PreparedStore(tmp_path / "nowhere")


# prepare ---------------------------------------------------------------------------------


def _subjects_by_split(store):
    m = store.manifest
    return {k: set(m.loc[m["split"] == k, "subject"]) for k in ("train", "val", "test")}


def test_prepare_brain_store(brain_store, demo_raw):
    store = PreparedStore(brain_store)
    m = store.manifest
    assert len(m) == 4 and (m["format"] == "magnitude").all()
    assert list(m["split"].value_counts().sort_index()) == [1, 2, 1]  # test, train, val
    groups = _subjects_by_split(store)
    assert not (groups["train"] & groups["val"]) and not (groups["train"] & groups["test"])
    assert (m["n_slices"] == 3).all() and (m["height"] == 32).all() and (m["width"] == 32).all()
    loaded = store.load(m["volume"][0])
    assert np.all(loaded["target"].imag == 0)  # magnitude data: zero phase (HPKS protocol)
    assert loaded["attrs"]["source"].startswith(str(demo_raw / "demo-brain"))


def test_prepare_fastmri_store_splits_train_folder_and_uses_val_folder_as_test(fastmri_store, demo_raw):
    store = PreparedStore(fastmri_store)
    m = store.manifest
    raw = demo_raw / "demo-fastmri"
    train_files = {p.stem for p in (raw / "singlecoil_train").glob("*.h5")}
    val_files = {p.stem for p in (raw / "singlecoil_val").glob("*.h5")}
    assert set(store.volumes("test")) == val_files
    assert set(store.volumes("train")) | set(store.volumes("val")) == train_files
    assert len(store.volumes("val")) == 1 and len(store.volumes("train")) == 3
    groups = _subjects_by_split(store)
    assert not (groups["train"] & groups["val"])
    assert (m["format"] == "fastmri").all() and (m["height"] == 32).all() and (m["width"] == 32).all()


def test_prepare_is_deterministic_and_replaces_an_old_store(demo_raw, brain_store, tmp_path):
    out = tmp_path / "store"
    (out / "volumes").mkdir(parents=True)
    (out / "volumes" / "stale.h5").write_bytes(b"old")
    prepare_dataset(tiny_brain_section(demo_raw / "demo-brain"), out, seed=0, name="demo-brain")
    assert not (out / "volumes" / "stale.h5").exists()
    a, b = PreparedStore(out), PreparedStore(brain_store)
    pd.testing.assert_frame_equal(a.manifest, b.manifest)
    for v in a.volumes():
        np.testing.assert_array_equal(a.load(v)["target"], b.load(v)["target"])
    assert [p.name for p in tmp_path.iterdir()] == ["store"]  # no temporary folder left beside it


def test_prepare_fastmri_filters_acquisitions_and_sizes_by_fraction(demo_raw, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(demo_raw / "demo-fastmri", raw)
    files = sorted(raw.rglob("*.h5"))
    for i, p in enumerate(files):  # alternate the two knee acquisitions
        with h5py.File(p, "r+") as f:
            f.attrs["acquisition"] = "CORPD_FBK" if i % 2 == 0 else "CORPDFS_FBK"
    section = tiny_fastmri_section(raw, size=[24, 24], acquisitions=["CORPD_FBK"], val_subjects=None,
                                   val_fraction=0.2)
    section = {k: v for k, v in section.items() if v is not None}
    prepare_dataset(section, tmp_path / "s", seed=0, name="f")
    store = PreparedStore(tmp_path / "s")
    assert store.volumes() == [p.stem for p in files[::2]]
    assert (store.manifest["height"] == 24).all() and (store.manifest["width"] == 24).all()
    assert len(store.volumes("val")) == 1 and len(store.volumes("train")) == 1 and len(store.volumes("test")) == 1
    assert {store.load(v)["attrs"]["acquisition"] for v in store.volumes()} == {"CORPD_FBK"}


def test_prepare_cli_with_inline_config(demo_raw, tmp_path, caplog):
    config = {"seed": 0, "datasets": {"b": tiny_brain_section(demo_raw / "demo-brain")}}
    with caplog.at_level("INFO"):
        assert main(["prepare", "--config", json.dumps(config), "--dataset", "b", "--out", str(tmp_path / "b")]) == 0
    assert len(PreparedStore(tmp_path / "b").volumes()) == 4
    per_volume = [r for r in caplog.records if r.name == "oucr.data.store" and r.message.startswith("wrote")]
    assert len(per_volume) == 4
    assert any("prepared b" in r.message and "train 2 volumes" in r.message for r in caplog.records)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"size": [32]}, "datasets.b.size"),
        ({"size": None}, "datasets.b.size is required"),
        ({"slices_per_volume": 0}, "datasets.b.slices_per_volume"),
        ({"split": {"train": 2, "validation": 1}}, "datasets.b.split: unknown key"),
        ({"split": {"train": 9, "val": 1, "test": 1}}, "datasets.b.split"),
        ({"format": "dicom"}, "datasets.b.format"),
        ({"input": None}, "datasets.b.input is required"),
        ({"colour": "red"}, "unknown key.*colour"),
    ],
)
def test_prepare_config_errors_name_the_key(demo_raw, tmp_path, change, message):
    section = tiny_brain_section(demo_raw / "demo-brain", **change)
    section = {k: v for k, v in section.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        prepare_dataset(section, tmp_path / "s", seed=0, name="b")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "change, message",
    [
        ({"val_fraction": 1.5, "val_subjects": None}, "val_fraction"),
        ({"val_subjects": 4}, "val_subjects=4 leaves no training subject"),
        ({"val_fraction": 0.1}, "not both"),
        ({"tissue_slices": "yes"}, "tissue_slices"),
        ({"acquisitions": "CORPD_FBK"}, "acquisitions"),
        ({"acquisitions": ["NOPE"]}, None),
    ],
)
def test_prepare_fastmri_config_errors(demo_raw, tmp_path, change, message):
    section = tiny_fastmri_section(demo_raw / "demo-fastmri", **change)
    section = {k: v for k, v in section.items() if v is not None}
    if message is None:  # no file left after filtering: a data error naming the folder
        with pytest.raises(DataError, match="singlecoil_train: no file with an acquisition in"):
            prepare_dataset(section, tmp_path / "s", seed=0, name="f")
    else:
        with pytest.raises(ConfigError, match=message):
            prepare_dataset(section, tmp_path / "s", seed=0, name="f")
    assert list(tmp_path.iterdir()) == []
