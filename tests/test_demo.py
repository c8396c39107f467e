"""`oucr demo-data`: bundled anatomy only, deterministic, distinct subjects, exact fastMRI layout."""

from __future__ import annotations

import json
import socket

import h5py
import nibabel as nib
import numpy as np
import pytest
from conftest import TINY_DEMO

from oucr.cli import main
from oucr.data.demo import build_demo_data
from oucr.data.fastmri import parse_header
from oucr.fft import center_crop, ifft2c

ONE_EACH = {
    "demo_data": {
        "demo-brain": {"subjects": 2, "slices": 2, "size": 16},
        "demo-fastmri": {"train_subjects": 1, "test_subjects": 1, "slices": 2, "size": 16},
    }
}


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_demo_is_deterministic_for_a_seed_and_needs_no_network(demo_raw, tmp_path, monkeypatch):
    _no_network(monkeypatch)
    build_demo_data(TINY_DEMO, tmp_path)
    for path in sorted((demo_raw / "demo-brain").glob("*.nii.gz")):
        # gzip without timestamps: byte-identical files
        assert (tmp_path / "demo-brain" / path.name).read_bytes() == path.read_bytes()
    for path in sorted((demo_raw / "demo-fastmri").rglob("*.h5")):
        other = tmp_path / "demo-fastmri" / path.relative_to(demo_raw / "demo-fastmri")
        with h5py.File(path, "r") as a, h5py.File(other, "r") as b:
            np.testing.assert_array_equal(a["kspace"][()], b["kspace"][()])
            assert dict(a.attrs) == dict(b.attrs)


def test_another_seed_gives_other_subjects(demo_raw, tmp_path):
    build_demo_data(TINY_DEMO, tmp_path, kinds=("demo-brain",), seed=1)
    a = nib.load(str(demo_raw / "demo-brain" / "sub-001.nii.gz")).get_fdata()
    b = nib.load(str(tmp_path / "demo-brain" / "sub-001.nii.gz")).get_fdata()
    assert a.shape == b.shape and not np.allclose(a, b)
    assert not (tmp_path / "demo-fastmri").exists()  # only the requested kind


def _relative_difference(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(a)


def test_subjects_are_distinct_but_the_same_anatomy(demo_raw):
    vols = [nib.load(str(p)).get_fdata() for p in sorted((demo_raw / "demo-brain").glob("*.nii.gz"))]
    assert len(vols) == 4 and vols[0].shape == (64, 64, 3)
    for i in range(len(vols)):
        for j in range(i + 1, len(vols)):
            diff = _relative_difference(vols[i], vols[j])
            corr = np.corrcoef(vols[i].ravel(), vols[j].ravel())[0, 1]
            assert diff > 0.1  # far more than the noise: deformation, contrast and bias differ
            assert corr > 0.5  # yet both are the same brain anatomy
    images = []
    for p in sorted((demo_raw / "demo-fastmri").rglob("*.h5")):
        with h5py.File(p, "r") as f:
            images.append(f["reconstruction_esc"][()])
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            assert _relative_difference(images[i], images[j]) > 0.1


def test_demo_fastmri_has_the_fastmri_single_coil_layout(demo_raw):
    train = sorted((demo_raw / "demo-fastmri" / "singlecoil_train").glob("file*.h5"))
    val = sorted((demo_raw / "demo-fastmri" / "singlecoil_val").glob("file*.h5"))
    assert len(train) == 4 and len(val) == 2
    patients = set()
    for path in train + val:
        with h5py.File(path, "r") as f:
            assert {"kspace", "reconstruction_esc", "ismrmrd_header"} <= set(f.keys())
            kspace, esc = f["kspace"][()], f["reconstruction_esc"][()]
            header = f["ismrmrd_header"][()]
            attrs = dict(f.attrs)
        assert kspace.dtype == np.complex64 and esc.dtype == np.float32
        # two-fold readout oversampling (H) and a phase-encode matrix 368/320 wider (W)
        assert kspace.shape == (3, 64, 36) and esc.shape == (3, 32, 32)
        assert attrs["acquisition"] in ("CORPD_FBK", "CORPDFS_FBK")
        assert attrs["max"] == pytest.approx(esc.max()) and attrs["norm"] == pytest.approx(np.linalg.norm(esc))
        patients.add(attrs["patient_id"])
        np.testing.assert_allclose(esc, np.abs(center_crop(ifft2c(kspace), (32, 32))), rtol=1e-4, atol=1e-6)
        assert parse_header(path, header) == {"encoded": (64, 36), "recon": (32, 32)}
        assert b"kspace_encoding_step_1" in header
        image = center_crop(ifft2c(kspace), (32, 32))
        phase = np.angle(image[np.abs(image) > 0.3 * np.abs(image).max()])
        assert np.ptp(np.unwrap(phase)) > 0.05  # a complex image with a non-trivial phase
    assert len(patients) == 6


def test_demo_data_cli_builds_one_kind_and_rejects_bad_config(tmp_path, capsys):
    cfg = json.dumps(ONE_EACH)
    assert main(["demo-data", "--config", cfg, "--out", str(tmp_path), "--kind", "demo-fastmri"]) == 0
    assert sorted(p.name for p in (tmp_path / "demo-fastmri" / "singlecoil_train").iterdir()) == ["file9000001.h5"]
    assert not (tmp_path / "demo-brain").exists()
    bad = json.dumps({"demo_data": {"demo-brain": {"subjects": 0}}})
    assert main(["demo-data", "--config", bad, "--out", str(tmp_path / "x")]) == 2
    assert "demo_data.demo-brain.subjects" in capsys.readouterr().err
    bad = json.dumps({"demo_data": {"demo-brian": {}}})
    assert main(["demo-data", "--config", bad, "--out", str(tmp_path / "x")]) == 2
    assert "demo-brian" in capsys.readouterr().err


def test_a_rebuild_replaces_the_dataset_whole(tmp_path):
    build_demo_data(ONE_EACH, tmp_path, kinds=("demo-brain",))
    smaller = {"demo_data": {"demo-brain": {"subjects": 1, "slices": 2, "size": 16}}}
    build_demo_data(smaller, tmp_path, kinds=("demo-brain",))
    assert [p.name for p in (tmp_path / "demo-brain").iterdir()] == ["sub-001.nii.gz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo-brain"]  # no temporary folder left
