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
from oucr.data.store import (MANIFEST_COLUMNS, PreparedStore, PreparedVolume, assign_splits, split_subjects,
                             write_store)
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


# subject-disjoint splits of subjects with several volumes ------------------------------------


def _subject_volumes(n_subjects=8, per_subject=3):
    return [_volume(f"{s}_scan{k}", s, "", shape=(1, 4, 4), seed=i * per_subject + k)
            for i, s in enumerate(f"subj{j}" for j in range(n_subjects)) for k in range(per_subject)]


def test_split_of_subjects_with_several_volumes_keeps_each_subject_in_one_split():
    volumes = _subject_volumes()
    # every volume names its subject: 24 entries, 8 subjects (counts are subjects, not volumes)
    assignment = split_subjects([v.subject for v in volumes], train=0.5, val=0.25, test=0.25, seed=1)
    assert len(assignment) == 8 and sorted(assignment.values()).count("train") == 4
    kept = assign_splits(volumes, assignment)
    assert len(kept) == 24
    by_split = {k: [v for v in kept if v.split == k] for k in ("train", "val", "test")}
    assert [len(by_split[k]) for k in ("train", "val", "test")] == [12, 6, 6]
    subjects = {k: {v.subject for v in vols} for k, vols in by_split.items()}
    assert not (subjects["train"] & subjects["val"]) and not (subjects["train"] & subjects["test"])
    assert not (subjects["val"] & subjects["test"])
    for v in kept:
        assert v.split == assignment[v.subject]
    # a split of the volumes themselves would separate the scans of a subject: this one never does
    for subject in {v.subject for v in volumes}:
        assert len({v.split for v in kept if v.subject == subject}) == 1


def test_assign_splits_drops_volumes_of_unassigned_subjects_and_keeps_order():
    volumes = _subject_volumes(4, 2)
    kept = assign_splits(volumes, {"subj2": "test", "subj0": "train"})
    assert [v.volume for v in kept] == ["subj0_scan0", "subj0_scan1", "subj2_scan0", "subj2_scan1"]
    assert [v.split for v in kept] == ["train", "train", "test", "test"]
    assert all(v.split == "" for v in volumes if v.subject in ("subj1", "subj3"))
    assert assign_splits(volumes, {"subj1": ""}) == []


def test_split_shares_default_to_zero_and_the_seed_to_zero():
    only_train = split_subjects(SUBJECTS, train=3)
    assert sorted(only_train.values()) == ["train"] * 3
    only_val = split_subjects(SUBJECTS, val=2)
    assert sorted(only_val.values()) == ["val"] * 2
    assert split_subjects(SUBJECTS, 3, 1, 1) == split_subjects(SUBJECTS, 3, 1, 1, seed=0)
    assert split_subjects(SUBJECTS, 3, 1, 1) != split_subjects(SUBJECTS, 3, 1, 1, seed=1)


@pytest.mark.parametrize("bad", [True, "3", None, float("nan")])
def test_split_shares_must_be_numbers(bad):
    with pytest.raises(ConfigError, match=rf"^split.val must be a non-negative count or fraction, got {bad!r}$"):
        split_subjects(SUBJECTS, train=2, val=bad, test=1)


def test_split_fractions_round_to_the_nearest_total_and_tolerate_rounding():
    # 0.93 of 20 subjects is 18.6: 19 assigned (floors 6 + 6 + 6, one remainder), not 20
    a = split_subjects(SUBJECTS, 0.31, 0.31, 0.31, seed=0)
    assert len(a) == 19 and [len(_groups(a)[k]) for k in ("train", "val", "test")] == [7, 6, 6]
    assert len(split_subjects(SUBJECTS, 1 + 1e-9)) == 20  # a sum above 1 by rounding only is accepted
    with pytest.raises(ConfigError, match="sum to 1 > 1"):
        split_subjects(SUBJECTS, 1 + 1e-8)


def test_a_positive_fraction_takes_a_subject_only_from_a_split_that_keeps_one():
    with pytest.raises(ConfigError) as err:
        split_subjects(["a", "b"], 0.5, 0.25, 0.25, seed=0)
    assert str(err.value) == "too few subjects (2) to give the test split (share 0.25) at least one"
    a = split_subjects(["a", "b", "c"], 0.9, 0.05, 0.05, seed=0)
    assert sorted(a.values()) == ["test", "train", "val"]


# volumes and the writer ------------------------------------------------------------------


@pytest.mark.parametrize("shape, message", [((4, 4), "got shape (4, 4)"), ((0, 4, 4), "got shape (0, 4, 4)"),
                                            ((1, 2, 4, 4), "got shape (1, 2, 4, 4)")])
def test_prepared_volume_must_be_a_non_empty_stack_of_slices(shape, message):
    with pytest.raises(DataError) as err:
        PreparedVolume("v", "s", np.zeros(shape), "/raw/v.nii", "magnitude", np.arange(1))
    assert err.value.path == "/raw/v.nii"
    assert err.value.problem == f"expected a non-empty (slices, H, W) volume, {message}"


def test_prepared_volume_refuses_non_finite_images_and_normalises_types():
    target = np.ones((1, 4, 4))
    target[0, 1, 2] = np.inf
    with pytest.raises(DataError) as err:
        PreparedVolume("v", "s", target, "/raw/v.nii", "magnitude", [0])
    assert (err.value.path, err.value.problem) == ("/raw/v.nii", "the image contains NaN or Inf values")
    vol = PreparedVolume("v", "s", np.ones((1, 4, 4)), "/raw/v.nii", "magnitude", np.array([2.0]))
    assert vol.target.dtype == np.complex64 and vol.slices.dtype == np.int64 and vol.slices.tolist() == [2]


def test_write_store_records_extra_attributes_logs_each_volume_and_rewrites_a_folder(tmp_path, caplog):
    vol = _volume("v1", "b", "train", (3, 16, 12), seed=2)
    vol.extra_attrs = {"readout_oversampling": 2, "note": "x"}
    with caplog.at_level("INFO", logger="oucr.data.store"):
        manifest = write_store(tmp_path, [vol])
    assert [r.getMessage() for r in caplog.records if r.name == "oucr.data.store"] == [
        "wrote volumes/v1.h5 (train, subject b, 3 slices of 16 x 12) from /raw/v1.h5"]
    assert manifest.to_dict("records") == [{"volume": "v1", "file": "volumes/v1.h5", "subject": "b", "split": "train",
                                            "n_slices": 3, "height": 16, "width": 12, "source": "/raw/v1.h5",
                                            "format": "fastmri"}]
    with h5py.File(tmp_path / "volumes" / "v1.h5") as f:
        assert f.attrs["readout_oversampling"] == 2 and f.attrs["note"] == "x"
    # writing into an existing store folder again works (the folder exists already)
    write_store(tmp_path, [vol, _volume("v0", "a", "test")])
    assert list(pd.read_csv(tmp_path / "manifest.csv")["volume"]) == ["v0", "v1"]


def test_write_store_refusals(tmp_path):
    with pytest.raises(ValueError, match="^volume v has no split assigned$"):
        write_store(tmp_path / "a", [_volume("v", "a", "")])
    with pytest.raises(DataError) as err:
        write_store(tmp_path / "b", [_volume("v", "a", "train"), _volume("v", "b", "test")])
    assert err.value.path == "/raw/v.h5" and err.value.problem == "duplicate volume identifier 'v'"
    with pytest.raises(DataError) as err:
        write_store(tmp_path / "c", [])
    assert (err.value.path, err.value.problem) == (str(tmp_path / "c"), "no volume to write (every input was skipped)")


# the manifest reader -----------------------------------------------------------------------


def _manifest(tmp_path, rows, columns=MANIFEST_COLUMNS):
    tmp_path.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=columns).to_csv(tmp_path / "manifest.csv", index=False)
    return tmp_path / "manifest.csv"


def _row(volume, split="train", width=32, **extra):
    row = {"volume": volume, "file": f"volumes/{volume}.h5", "subject": f"s{volume}", "split": split, "n_slices": 2,
           "height": 16, "width": width, "source": "/raw", "format": "magnitude"}
    row.update(extra)
    return row


def test_read_manifest_keeps_identifiers_as_text_sorts_and_types_sizes(tmp_path):
    from oucr.data.store import read_manifest

    _manifest(tmp_path, [_row("010", width=32.0, subject="007"), _row("002", split="val", width=1)])
    manifest = read_manifest(tmp_path)
    assert list(manifest.columns) == MANIFEST_COLUMNS and list(manifest.index) == [0, 1]
    assert list(manifest["volume"]) == ["002", "010"]  # text, not the numbers 2 and 10
    assert list(manifest["subject"]) == ["s002", "007"]
    assert list(manifest["width"]) == [1, 32] and manifest["width"].dtype.kind == "i"
    assert manifest["height"].dtype.kind == "i" and manifest["n_slices"].dtype.kind == "i"
    # only the needed columns; sizes that are present are still checked and typed
    _manifest(tmp_path / "masks", [{"volume": "a", "split": "test", "height": 16.0}], ["volume", "split", "height"])
    small = read_manifest(tmp_path / "masks", required=("volume", "split"))
    assert small["height"].tolist() == [16] and small["height"].dtype.kind == "i"
    _manifest(tmp_path / "nosplit", [{"volume": "a", "width": 8}], ["volume", "width"])
    assert read_manifest(tmp_path / "nosplit", required=("volume",))["width"].tolist() == [8]
    # numeric-looking subjects stay text; slice counts written as floats are read as integers
    _manifest(tmp_path / "numeric", [_row("a", subject="007", n_slices=3.0), _row("b", subject="010", n_slices=2.0)])
    numeric = read_manifest(tmp_path / "numeric")
    assert list(numeric["subject"]) == ["007", "010"]
    assert list(numeric["n_slices"]) == [3, 2] and numeric["n_slices"].dtype.kind == "i"


@pytest.mark.parametrize("rows, columns, problem", [
    ([_row("a", split="training")], MANIFEST_COLUMNS, "unknown split name(s) ['training']"),
    ([_row(f"v{i}") for i in range(7)] * 2, MANIFEST_COLUMNS,
     "manifest lists volume(s) more than once: v0, v1, v2, v3, v4"),
    ([_row(f"v{i}", width=w) for i, w in enumerate([0, -3, 2.5, "abc", 8, 0, 0, 0])], MANIFEST_COLUMNS,
     "width is not a positive integer for volume(s) v0, v1, v2, v3, v5"),
    ([_row("a")], [c for c in MANIFEST_COLUMNS if c not in ("split", "width")], "manifest lacks the column(s) split, width (it has volume, file, subject, n_slices, height, source, format)"),
    ([_row("a", n_slices=0), _row("b")], MANIFEST_COLUMNS, "n_slices is not a positive integer for volume(s) a"),
    ([_row("a"), _row("b", height=1.5)], MANIFEST_COLUMNS, "height is not a positive integer for volume(s) b"),
])
def test_read_manifest_refusals_name_the_manifest(tmp_path, rows, columns, problem):
    path = _manifest(tmp_path, rows, columns)
    with pytest.raises(DataError) as err:
        PreparedStore(tmp_path)
    assert err.value.path == str(path) and err.value.problem == problem


def test_missing_or_empty_manifest(tmp_path):
    with pytest.raises(DataError) as err:
        PreparedStore(tmp_path)
    assert err.value.path == str(tmp_path / "manifest.csv")
    assert err.value.problem == "not a prepared store (manifest.csv missing); run `oucr prepare` first"
    (tmp_path / "manifest.csv").write_text("")
    with pytest.raises(DataError) as err:
        PreparedStore(tmp_path)
    assert err.value.path == str(tmp_path / "manifest.csv") and err.value.problem == "manifest is empty"


# the reader ------------------------------------------------------------------------------


def test_store_reader_slices_widths_and_source_slices(tmp_path):
    vols = [_volume("v1", "a", "train", (3, 16, 12), seed=1), _volume("v2", "b", "test", (2, 16, 10), seed=2)]
    write_store(tmp_path, vols)
    store = PreparedStore(tmp_path)
    assert store.slices() == [("v1", 0), ("v1", 1), ("v1", 2), ("v2", 0), ("v2", 1)]
    assert store.slices("test") == [("v2", 0), ("v2", 1)]
    assert store.width("v2") == 10 and type(store.width("v2")) is int
    np.testing.assert_array_equal(store.source_slices("v1"), [3, 4, 5])
    assert store.source_slices("v1").dtype == np.int64
    one = store.load_slice("v1", 2)
    np.testing.assert_array_equal(one["target"], vols[0].target[2])
    np.testing.assert_allclose(one["kspace"], fft2c(vols[0].target[2]), atol=1e-5)
    assert one["max"] == pytest.approx(float(np.abs(vols[0].target).max())) and type(one["max"]) is float
    assert sorted(one) == ["kspace", "max", "target"]
    with pytest.raises(DataError) as err:
        store.path("v9")
    assert (err.value.path, err.value.problem) == (str(tmp_path), "volume 'v9' is not in the store")


def test_source_slices_default_and_disagreement(tmp_path):
    write_store(tmp_path, [_volume("v1", "a", "train", (3, 4, 4))])
    store = PreparedStore(tmp_path)
    path = tmp_path / "volumes" / "v1.h5"
    with h5py.File(path, "r+") as f:
        del f.attrs["slices"]
    np.testing.assert_array_equal(store.source_slices("v1"), [0, 1, 2])  # absent: the prepared order
    with h5py.File(path, "r+") as f:
        f.attrs["slices"] = np.array([4, 5, 6], dtype=np.int32)  # another integer type (an older writer)
    assert store.source_slices("v1").dtype == np.int64 and store.source_slices("v1").tolist() == [4, 5, 6]
    with h5py.File(path, "r+") as f:
        f.attrs["slices"] = np.arange(5)
    with pytest.raises(DataError) as err:
        store.source_slices("v1")
    assert err.value.path == str(path)
    assert err.value.problem == "attribute 'slices' has 5 entries, the manifest says 3 slices"


def test_damaged_volume_files_are_data_errors_naming_the_file(tmp_path):
    write_store(tmp_path, [_volume("v1", "a", "train", (2, 4, 4))])
    store = PreparedStore(tmp_path)
    path = tmp_path / "volumes" / "v1.h5"
    with h5py.File(path, "r+") as f:
        del f["kspace"]
        del f.attrs["max"]
    for read in (lambda: store.load("v1"), lambda: store.load_slice("v1", 0)):
        with pytest.raises(DataError) as err:
            read()
        assert err.value.path == str(path)
    with pytest.raises(DataError) as err:
        store.load("v1")
    assert err.value.problem == "prepared volume lacks kspace; run `oucr prepare` again"
    with pytest.raises(DataError) as err:
        store.load_slice("v1", 0)
    assert err.value.problem == "prepared volume lacks kspace, attribute max; run `oucr prepare` again"
    with h5py.File(path, "r+") as f:
        del f["target"]
    with pytest.raises(DataError) as err:
        store.load("v1")
    assert err.value.problem == "prepared volume lacks kspace, target; run `oucr prepare` again"
    path.unlink()
    for read in (store.load, store.source_slices, lambda v: store.load_slice(v, 0)):
        with pytest.raises(DataError) as err:
            read("v1")
        assert (err.value.path, err.value.problem) == (str(path), "prepared volume does not exist")


def test_prepare_fastmri_keeps_every_scan_of_a_subject_in_one_split(demo_raw, tmp_path):
    """Two subjects with two scans each (``patient_id``): the validation subject takes both its scans."""
    raw = tmp_path / "raw"
    shutil.copytree(demo_raw / "demo-fastmri", raw)
    files = sorted((raw / "singlecoil_train").glob("*.h5"))
    assert len(files) == 4
    for i, path in enumerate(files):
        with h5py.File(path, "a") as f:
            f.attrs["patient_id"] = f"patient{i // 2}"
    out = tmp_path / "store"
    prepare_dataset(tiny_fastmri_section(raw, val_subjects=1), out, seed=0, name="two-scans")
    m = PreparedStore(out).manifest
    train = m[m["split"].isin(["train", "val"])]
    assert sorted(train["subject"].unique()) == ["patient0", "patient1"]
    assert train.groupby("subject")["split"].nunique().eq(1).all()  # a split by volume would part a subject
    assert (train["split"] == "val").sum() == 2 and (train["split"] == "train").sum() == 2
