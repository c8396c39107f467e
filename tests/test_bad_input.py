"""Bad raw input: one clear error naming the file and the problem, exit 2, no partial store."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
from conftest import tiny_brain_section, tiny_fastmri_section

from oucr.cli import main

BAD_FASTMRI = "file9999999.h5"  # sorts after the good files: good volumes are written before it fails
BAD_NIFTI = "sub-999.nii.gz"


def _good_fastmri(demo_raw) -> Path:
    return sorted((demo_raw / "demo-fastmri" / "singlecoil_train").glob("*.h5"))[0]


def _copy_with(src: Path, dst: Path, edit) -> None:
    """Copy a fastMRI file, changing it with ``edit(h5py.File)``."""
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)


def _replace_kspace(value):
    def edit(f):
        kspace = f["kspace"][()]
        del f["kspace"]
        f["kspace"] = value(kspace)
    return edit


def _with_nan(k):
    k = k.copy()
    k[1, 3, 4] = np.nan
    return k


def _with_inf(k):
    k = k.copy()
    k[0, 0, 0] = np.inf
    return k


def _truncate(src: Path, dst: Path, fraction: float = 0.6) -> None:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])


def _header_without_recon_space(f):
    header = f["ismrmrd_header"][()].decode()
    start, end = header.index("<reconSpace>"), header.index("</reconSpace>") + len("</reconSpace>")
    del f["ismrmrd_header"]
    f["ismrmrd_header"] = (header[:start] + header[end:]).encode()


FASTMRI_CASES = {
    # name: (make the bad file (good file, bad path), config change, expected problem)
    "truncated": (lambda g, b: _truncate(g, b), {}, "not a readable HDF5 file"),
    "corrupt": (lambda g, b: b.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 40), {},
                "not a readable HDF5 file"),
    "missing-kspace": (lambda g, b: _copy_with(g, b, lambda f: f.__delitem__("kspace")), {}, "missing key 'kspace'"),
    "multicoil": (lambda g, b: _copy_with(g, b, _replace_kspace(lambda k: np.stack([k, k], axis=1))), {},
                  "single-coil.*4 dimensions.*multi-coil"),
    "2d-kspace": (lambda g, b: _copy_with(g, b, _replace_kspace(lambda k: k[0])), {}, "2 dimensions"),
    "real-kspace": (lambda g, b: _copy_with(g, b, _replace_kspace(lambda k: np.abs(k))), {}, "must be complex"),
    "nan": (lambda g, b: _copy_with(g, b, _replace_kspace(_with_nan)), {}, r"NaN or Inf values \(slice\(s\) 1\)"),
    "inf": (lambda g, b: _copy_with(g, b, _replace_kspace(_with_inf)), {}, r"NaN or Inf values \(slice\(s\) 0\)"),
    "no-header": (lambda g, b: _copy_with(g, b, lambda f: f.__delitem__("ismrmrd_header")), {},
                  "missing key 'ismrmrd_header' and no size configured"),
    "bad-header": (lambda g, b: _copy_with(g, b, _header_without_recon_space), {}, "ismrmrd_header is malformed"),
    "recon-larger": (lambda g, b: shutil.copy(g, b), {"size": [128, 128]},
                     "reconstruction size 128 x 128 is larger than the k-space matrix 64 x 36"),
}


def _store_dir(tmp_path: Path) -> Path:
    """A parent folder holding an older store that a failed prepare must leave alone."""
    stores = tmp_path / "stores"
    (stores / "ds").mkdir(parents=True)
    (stores / "ds" / "manifest.csv").write_text("sentinel\n")
    return stores


def _assert_untouched(stores: Path) -> None:
    assert sorted(p.name for p in stores.iterdir()) == ["ds"]  # no temporary or partial folder beside it
    assert [p.name for p in (stores / "ds").iterdir()] == ["manifest.csv"]
    assert (stores / "ds" / "manifest.csv").read_text() == "sentinel\n"


def _prepare(section, stores: Path, capsys) -> tuple:
    config = json.dumps({"seed": 0, "datasets": {"ds": section}})
    status = main(["prepare", "--config", config, "--dataset", "ds", "--out", str(stores / "ds")])
    err = capsys.readouterr().err.strip()
    return status, err


@pytest.mark.parametrize("case", sorted(FASTMRI_CASES))
def test_bad_fastmri_input(case, demo_raw, tmp_path, capsys):
    make, change, problem = FASTMRI_CASES[case]
    raw = tmp_path / "raw"
    shutil.copytree(demo_raw / "demo-fastmri", raw)
    bad = raw / "singlecoil_train" / BAD_FASTMRI
    make(_good_fastmri(demo_raw), bad)
    section = tiny_fastmri_section(raw, **change)
    if "size" not in change:
        section.pop("size", None)
    stores = _store_dir(tmp_path)
    status, err = _prepare(section, stores, capsys)
    assert status == 2
    assert len(err.splitlines()) == 1 and err.startswith("oucr prepare: error: ")
    if case == "recon-larger":  # every file is too small: the first one is named
        assert "singlecoil_train/file9000001.h5" in err
    else:
        assert str(bad) in err
    assert re.search(problem, err), err
    _assert_untouched(stores)


def _nifti(path: Path, data: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))


MAGNITUDE_CASES = {
    "garbage-nifti": (BAD_NIFTI, lambda g, b: b.write_bytes(b"this is not a nifti file" * 20), {},
                      "unreadable NIfTI file"),
    "truncated-nifti": (BAD_NIFTI, lambda g, b: _truncate(g, b, 0.5), {}, "unreadable NIfTI file"),
    "2d-nifti": (BAD_NIFTI, lambda g, b: _nifti(b, np.ones((32, 32), np.float32)), {},
                 r"expected a 3-D volume, got shape \(32, 32\)"),
    "nan-nifti": (BAD_NIFTI, lambda g, b: _nifti(b, np.full((32, 32, 3), np.nan, np.float32)), {},
                  "NaN or Inf"),
    "blank-nifti": (BAD_NIFTI, lambda g, b: _nifti(b, np.zeros((32, 32, 3), np.float32)), {},
                    "no positive intensity"),
    "h5-missing-key": ("sub-999.h5", lambda g, b: h5py.File(b, "w").create_dataset("other", data=np.ones((2, 4, 4))),
                       {}, "missing dataset 'image'"),
    "h5-truncated": ("sub-999.h5", None, {}, "not a readable HDF5 file"),
    "size-larger": (None, None, {"size": [96, 96]}, r"configured size 96 x 96 is larger than the slices \(64 x 64\)"),
}


def _truncated_magnitude_h5(path: Path) -> None:
    full = path.with_suffix(".full")
    with h5py.File(full, "w") as f:
        f["image"] = np.random.default_rng(0).random((4, 64, 64)).astype(np.float32)
    _truncate(full, path, 0.5)
    full.unlink()


@pytest.mark.parametrize("case", sorted(MAGNITUDE_CASES))
def test_bad_magnitude_input(case, demo_raw, tmp_path, capsys):
    name, make, change, problem = MAGNITUDE_CASES[case]
    raw = tmp_path / "raw"
    shutil.copytree(demo_raw / "demo-brain", raw)
    good = sorted(raw.glob("*.nii.gz"))[0]
    bad = raw / name if name else good
    if case == "h5-truncated":
        _truncated_magnitude_h5(bad)
    elif make is not None:
        out = make(good, bad)
        if hasattr(out, "file"):  # the h5py dataset of the missing-key case: close its file
            out.file.close()
    # all five subjects in a split, so that the bad one is read
    stores = _store_dir(tmp_path)
    section = tiny_brain_section(raw, split={"train": 0.6, "val": 0.2, "test": 0.2}, **change)
    status, err = _prepare(section, stores, capsys)
    assert status == 2
    assert len(err.splitlines()) == 1 and str(bad) in err
    assert re.search(problem, err), err
    _assert_untouched(stores)


@pytest.mark.parametrize("fmt", ["magnitude", "fastmri"])
def test_empty_input_folder(fmt, demo_raw, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a volume")
    if fmt == "magnitude":
        section = tiny_brain_section(empty)
    else:
        raw = tmp_path / "raw"
        shutil.copytree(demo_raw / "demo-fastmri", raw)
        section = tiny_fastmri_section(raw, train_input=str(empty))
    stores = tmp_path / "stores"
    config = json.dumps({"seed": 0, "datasets": {"ds": section}})
    assert main(["prepare", "--config", config, "--dataset", "ds", "--out", str(stores / "ds")]) == 2
    err = capsys.readouterr().err
    assert f"{empty}: no input files found in the folder" in err
    assert list(stores.iterdir()) == []  # not even an empty store


def test_missing_input_folder_and_unknown_dataset(tmp_path, capsys):
    config = json.dumps({"datasets": {"ds": tiny_brain_section(tmp_path / "nowhere")}})
    assert main(["prepare", "--config", config, "--dataset", "ds", "--out", str(tmp_path / "s")]) == 2
    assert "nowhere: input folder (datasets.ds.input) does not exist" in capsys.readouterr().err
    assert main(["prepare", "--config", config, "--dataset", "other", "--out", str(tmp_path / "s")]) == 2
    assert "dataset 'other' is not configured" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
