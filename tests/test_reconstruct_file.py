"""``oucr reconstruct-file``: a trained model on a researcher's own fastMRI and NIfTI files."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from oucr import metrics, perceptual
from oucr.cli import main as cli
from oucr.fft import center_crop, fft2c, ifft2c
from oucr.masks import RandomMaskFunc, column_mask, realised_acceleration, volume_seed

MODEL_MULTIPLE = 4  # the tiny UNet (3 levels) pools twice


@pytest.fixture(scope="module")
def model_file(tiny, tmp_path_factory) -> Path:
    """A tiny UNet trained for one epoch on the `tiny` brain store at 4x (32 x 32 images)."""
    import torch

    from oucr.config import with_overrides
    from oucr.engine.train import make_job, train

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("reconstruct_file_model")
    config = with_overrides(tiny["config"], ["training.epochs=1"])
    job = make_job(config, "UNet", "tiny", 4, tiny["store"], tiny["masks"], root / "out", root / "ckpt")
    train(job, threads=1, progress=False)
    return root / "out" / "model.pt"


def _val_file(demo_raw, i: int = 0) -> Path:
    return sorted((demo_raw / "demo-fastmri" / "singlecoil_val").glob("*.h5"))[i]


def _copy_with(src: Path, dst: Path, edit) -> Path:
    """Copy a fastMRI file and change it with ``edit(h5py.File)``."""
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


def _as_test_file(width=None, mask_width=None):
    """An edit turning a fastMRI file into a test file: masked k-space, `mask`, no reference.

    ``width`` first keeps only the central ``width`` raw k-space columns (a narrower phase FOV).
    """
    def edit(f):
        kspace = f["kspace"][()]
        if width is not None:
            left = kspace.shape[-1] // 2 - width // 2
            kspace = kspace[..., left:left + width]
        w = kspace.shape[-1]
        mask, num_low = column_mask(RandomMaskFunc([0.08], [4]), w, seed=volume_seed("test-file"))
        del f["kspace"], f["reconstruction_esc"]
        f["kspace"] = kspace * mask
        f["mask"] = mask.astype(bool) if mask_width is None else np.ones(mask_width, bool)
        f.attrs["acceleration"] = 4
        f.attrs["num_low_frequencies"] = num_low
    return edit


def _run(model_file, inputs, out, *options) -> int:
    return cli(["reconstruct-file", str(model_file), *map(str, inputs), "--out", str(out), "--device", "cpu",
                "--threads", "1", *options])


def _read(path: Path):
    with h5py.File(path) as f:
        return {k: f[k][()] for k in f}, dict(f.attrs)


def _stderr_line(capsys) -> str:
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "error:" in ln]
    assert len(lines) == 1, lines
    return lines[0]


# ---------------------------------------------------------------------------------- fastMRI files

def test_fastmri_file_with_simulated_mask_round_trip(model_file, demo_raw, tmp_path):
    src = _val_file(demo_raw)
    assert _run(model_file, [src], tmp_path / "out", "--acceleration", "4") == 0
    data, attrs = _read(tmp_path / "out" / f"{src.stem}.h5")
    rec = data["reconstruction"]
    assert rec.dtype == np.float32 and rec.shape == (3, 32, 32)
    assert np.array_equal(rec, np.abs(data["reconstruction_complex"]))
    assert "reconstruction_uncropped" not in data  # the pipeline geometry: nothing beyond the recon size
    # the mask oucr masks draws: fastMRI's random mask on the 32 cropped columns, per-file seed, 0.32 / 4 centre
    expected_mask, num_low = column_mask(RandomMaskFunc([0.08], [4]), 32, seed=volume_seed(src.name))
    assert np.array_equal(data["mask"], expected_mask)
    assert attrs["model_file"] == str(model_file) and attrs["mask_source"] == "simulated"
    assert int(attrs["acceleration"]) == 4 and attrs["center_fraction"] == pytest.approx(0.08)
    assert attrs["realised_acceleration"] == pytest.approx(realised_acceleration(expected_mask))
    assert int(attrs["num_low_frequencies"]) == num_low and list(attrs["slices"]) == [0, 1, 2]
    row = pd.read_csv(tmp_path / "out" / "metrics.csv").iloc[0]
    with h5py.File(src) as f:
        esc = f["reconstruction_esc"][()]
    assert row["volume"] == src.stem and row["reference"] == "reconstruction_esc" and row["n_slices"] == 3
    assert row["realised_acceleration"] == pytest.approx(realised_acceleration(expected_mask))
    assert row["psnr"] == pytest.approx(metrics.psnr(esc, rec), rel=1e-12)
    assert row["ssim"] == pytest.approx(metrics.ssim(esc, rec), rel=1e-12)
    assert row["nmse"] == pytest.approx(metrics.nmse(esc, rec), rel=1e-12)
    assert row["haarpsi"] == pytest.approx(perceptual.haarpsi_volume(esc, rec), rel=1e-12)
    assert np.isnan(row["vif"])  # undefined below 41 pixels a side
    assert 10 < row["psnr"] < 60


def test_file_mask_reconstructs_on_the_raw_columns_with_exact_data_consistency(model_file, demo_raw, tmp_path):
    src = _copy_with(_val_file(demo_raw), tmp_path / "file7000001.h5", _as_test_file())
    assert _run(model_file, [src], tmp_path / "out") == 0
    data, attrs = _read(tmp_path / "out" / "file7000001.h5")
    full = data["reconstruction_uncropped"]
    assert full.shape == (3, 32, 36) and data["reconstruction"].shape == (3, 32, 32)
    assert np.array_equal(data["reconstruction"], np.abs(center_crop(full, (32, 32))).astype(np.float32))
    with h5py.File(src) as f:
        raw, mask = f["kspace"][()], f["mask"][()]
    assert np.array_equal(data["mask"], mask.astype(np.uint8))
    # the measurement: the raw k-space with its readout cropped to the recon height, every raw column kept
    measured = fft2c(center_crop(ifft2c(raw), (32, 36)))
    sampled = mask.astype(bool)
    got = fft2c(full)[..., sampled]
    assert np.abs(got - measured[..., sampled]).max() < 1e-5 * np.abs(measured).max()
    assert np.abs(fft2c(full)[..., ~sampled]).max() > 1e-3 * np.abs(measured).max()  # the network filled the rest
    assert attrs["mask_source"] == "file" and int(attrs["acceleration"]) == 4
    assert attrs["realised_acceleration"] == pytest.approx(36 / sampled.sum())
    assert attrs["acquisition_grid"] == "32 x 36" and "raw 36 columns" in attrs["geometry"]
    row = pd.read_csv(tmp_path / "out" / "metrics.csv").iloc[0]
    assert row["reference"].startswith("none") and np.isnan(row[["psnr", "ssim", "nmse"]].astype(float)).all()


def test_padding_to_the_model_multiple_keeps_data_consistency(model_file, demo_raw, tmp_path):
    # 34 raw columns and a 30-row reconstruction: neither is a multiple of 4
    src = _copy_with(_val_file(demo_raw), tmp_path / "file7000002.h5", _as_test_file(width=34))
    assert _run(model_file, [src], tmp_path / "out", "--recon-size", "30", "32") == 0
    data, attrs = _read(tmp_path / "out" / "file7000002.h5")
    assert attrs["network_grid"] == "32 x 36" and attrs["acquisition_grid"] == "30 x 34"
    full = data["reconstruction_uncropped"]
    assert full.shape == (3, 30, 34) and data["reconstruction"].shape == (3, 30, 32)
    with h5py.File(src) as f:
        raw, sampled = f["kspace"][()], f["mask"][()].astype(bool)
    measured = fft2c(center_crop(ifft2c(raw), (30, 34)))
    assert np.abs(fft2c(full)[..., sampled] - measured[..., sampled]).max() < 1e-5 * np.abs(measured).max()
    # --no-pad refuses the size instead, naming the file
    assert _run(model_file, [src], tmp_path / "refused", "--recon-size", "30", "32", "--no-pad") == 2


def test_extension_keeps_dc_centred_and_rows_exact():
    from oucr.engine.reconstruct_file import extend_to_grid, restore_from_grid

    rng = np.random.default_rng(0)
    image = rng.uniform(0.5, 1.0, size=(2, 30, 33)).astype(np.complex64)  # real: Hermitian k-space
    mask = np.ones(33, np.uint8)
    kspace, wide_mask = extend_to_grid(fft2c(image), mask, (32, 36))
    assert kspace.shape == (2, 32, 36) and wide_mask.sum() == 33 and wide_mask[[0, 1, 35]].sum() == 0
    padded = ifft2c(kspace)
    # DC stays the centre column: the interpolated image of a real image is real (no phase ramp)
    assert np.abs(padded.imag).max() < 1e-5 * np.abs(padded.real).max()
    assert np.abs(padded[:, [0, 31]]).max() < 1e-5  # the added rows are zero in image space
    assert np.allclose(restore_from_grid(padded, (30, 33)), image, atol=1e-5)


def test_a_file_mask_and_acceleration_need_simulate_mask(model_file, demo_raw, tmp_path, capsys):
    src = _copy_with(_val_file(demo_raw), tmp_path / "file7000003.h5", _as_test_file())
    assert _run(model_file, [src], tmp_path / "out", "--acceleration", "8") == 2
    line = _stderr_line(capsys)
    assert str(src) in line and "--simulate-mask" in line
    assert not (tmp_path / "out" / "file7000003.h5").exists()
    assert _run(model_file, [src], tmp_path / "out", "--acceleration", "8", "--simulate-mask") == 0
    data, attrs = _read(tmp_path / "out" / "file7000003.h5")
    assert attrs["mask_source"] == "simulated" and data["mask"].shape == (32,)
    assert int(attrs["acceleration"]) == 8 and attrs["center_fraction"] == pytest.approx(0.04)


def test_equals_the_pipeline_for_a_simulated_mask(model_file, fastmri_store, demo_raw, tmp_path):
    from oucr.data.fixed_masks import write_fixed_masks
    from oucr.data.store import PreparedStore
    from oucr.engine.reconstruct import reconstruct_store

    write_fixed_masks(fastmri_store, tmp_path / "x4.h5", 4, 0.08)
    reconstruct_store(fastmri_store, tmp_path / "x4.h5", tmp_path / "pipeline", "demo-fastmri", 4,
                      model_file=model_file, device="cpu", force=True)
    store = PreparedStore(fastmri_store)
    sources = [Path(store.manifest.set_index("volume").loc[v, "source"]) for v in store.volumes("test")]
    assert _run(model_file, sources, tmp_path / "mine", "--acceleration", "4") == 0
    for volume in store.volumes("test"):
        ours, our_attrs = _read(tmp_path / "mine" / f"{volume}.h5")
        theirs, their_attrs = _read(tmp_path / "pipeline" / f"{volume}.h5")
        assert list(our_attrs["slices"]) == list(their_attrs["slices"])
        np.testing.assert_allclose(ours["reconstruction_complex"], theirs["reconstruction_complex"], rtol=0,
                                   atol=1e-6 * np.abs(theirs["reconstruction_complex"]).max())


def test_model_precision_and_mismatch_warning(model_file, demo_raw, tmp_path, caplog):
    src = _val_file(demo_raw, 1)
    with caplog.at_level(logging.WARNING, logger="oucr.engine.reconstruct_file"):
        assert _run(model_file, [src], tmp_path / "a", "--acceleration", "8", "--dataset", "knee") == 0
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "trained at 4x" in warnings and "trained on tiny" in warnings
    assert _read(tmp_path / "a" / f"{src.stem}.h5")[1]["amp"] == "none"  # the model's training precision
    assert _run(model_file, [src], tmp_path / "b", "--acceleration", "8", "--amp", "bf16") == 0
    assert _read(tmp_path / "b" / f"{src.stem}.h5")[1]["amp"] == "bf16"


# ---------------------------------------------------------------------------------- magnitude volumes

def _brain(demo_raw, i: int = 0) -> Path:
    return sorted((demo_raw / "demo-brain").glob("*.nii.gz"))[i]


def test_nifti_round_trip_keeps_the_input_grid(model_file, demo_raw, tmp_path):
    src = _brain(demo_raw)
    assert _run(model_file, [src], tmp_path / "out", "--acceleration", "4") == 0
    name = src.name[: -len(".nii.gz")]
    data, attrs = _read(tmp_path / "out" / f"{name}.h5")
    rec = data["reconstruction"]
    assert rec.shape == (3, 64, 64)  # the volume's own in-plane size, every slice
    inp, out = nib.load(str(src)), nib.load(str(tmp_path / "out" / f"{name}.nii.gz"))
    assert out.shape == inp.shape and np.array_equal(out.affine, inp.affine)
    assert out.header.get_sform(coded=True)[1] == inp.header.get_sform(coded=True)[1]
    volume = np.asarray(inp.dataobj, dtype=np.float32)
    # RAS input: axial slice z is volume[:, :, z] transposed, anterior up
    as_slices = np.flip(np.transpose(np.asarray(out.dataobj), (2, 1, 0)), axis=1)
    assert np.array_equal(as_slices, rec)
    reference = np.flip(np.transpose(volume, (2, 1, 0)), axis=1)
    row = pd.read_csv(tmp_path / "out" / "metrics.csv").iloc[0]
    assert row["reference"] == "input"
    assert row["psnr"] == pytest.approx(metrics.psnr(reference, rec), rel=1e-12)
    assert row["ssim"] == pytest.approx(metrics.ssim(reference, rec), rel=1e-12)
    assert row["nmse"] == pytest.approx(metrics.nmse(reference, rec), rel=1e-12)
    assert row["vif"] == pytest.approx(perceptual.vif_volume(reference, rec), rel=1e-12)
    assert data["mask"].shape == (64,) and attrs["input_format"] == "magnitude"


def test_nifti_output_follows_any_input_orientation(model_file, demo_raw, tmp_path):
    src = _brain(demo_raw)
    turned = nib.load(str(src)).as_reoriented(np.array([[1, -1], [2, 1], [0, -1]]))  # axes permuted and flipped
    nib.save(turned, str(tmp_path / "turned.nii"))
    turned = nib.load(str(tmp_path / "turned.nii"))  # the affine as stored (float32 in the header)
    assert _run(model_file, [src, tmp_path / "turned.nii"], tmp_path / "out", "--acceleration", "4", "--seed",
                "3") == 0
    name = src.name[: -len(".nii.gz")]
    a = nib.load(str(tmp_path / "out" / f"{name}.nii.gz"))
    b = nib.load(str(tmp_path / "out" / "turned.nii.gz"))
    assert b.shape == turned.shape and np.array_equal(b.affine, turned.affine)
    # the same anatomy, the same axial slices, the same mask: the same reconstruction in world space
    np.testing.assert_allclose(np.asarray(nib.as_closest_canonical(b).dataobj),
                               np.asarray(nib.as_closest_canonical(a).dataobj), rtol=1e-5, atol=1e-6)


def test_nifti_slices_are_oriented_as_prepare_orients_them(demo_raw):
    from oucr.data.volumes import load_axial_stack, read_nifti_stack

    src = _brain(demo_raw)
    stack, _ = read_nifti_stack(src)
    assert np.array_equal(stack, load_axial_stack(src))


def test_magnitude_hdf5_and_slice_selection(model_file, demo_raw, tmp_path):
    volume = np.abs(np.random.default_rng(1).normal(size=(5, 32, 28))).astype(np.float32) + 0.1
    with h5py.File(tmp_path / "vol.h5", "w") as f:
        f["image"] = volume
    assert _run(model_file, [tmp_path / "vol.h5"], tmp_path / "out", "--acceleration", "4", "--slices", "0,3:5") == 0
    data, attrs = _read(tmp_path / "out" / "vol.h5")
    assert data["reconstruction"].shape == (3, 32, 28) and list(attrs["slices"]) == [0, 3, 4]
    assert attrs["network_grid"] == "32 x 28"
    row = pd.read_csv(tmp_path / "out" / "metrics.csv").iloc[0]
    assert row["psnr"] == pytest.approx(metrics.psnr(volume[[0, 3, 4]], data["reconstruction"]), rel=1e-12)
    assert not (tmp_path / "out" / "vol.nii.gz").exists()


# ---------------------------------------------------------------------------------- errors

def _multicoil(f):
    k = f["kspace"][()]
    del f["kspace"]
    f["kspace"] = np.stack([k, k], axis=1)


def _nan(f):
    k = f["kspace"][()]
    k[1, 5, 5] = np.nan
    del f["kspace"]
    f["kspace"] = k


def _no_kspace(f):
    del f["kspace"]


BAD_INPUTS = {
    # name: (make the file in tmp_path from a good one, extra options, words the message must hold)
    "missing file": (lambda good, d: d / "absent.h5", ["--acceleration", "4"], "does not exist"),
    "not HDF5 or NIfTI": (lambda good, d: _write(d / "notes.txt", b"hello"), ["--acceleration", "4"], "NIfTI"),
    "corrupt HDF5": (lambda good, d: _write(d / "broken.h5", b"\x00" * 64), ["--acceleration", "4"],
                     "not a readable HDF5"),
    "corrupt NIfTI": (lambda good, d: _write(d / "broken.nii.gz", b"\x1f\x8b garbage"), ["--acceleration", "4"],
                      "unreadable NIfTI"),
    "no kspace": (lambda good, d: _copy_with(good, d / "nokspace.h5", _no_kspace), ["--acceleration", "4"],
                  "neither a 'kspace'"),
    "multi-coil": (lambda good, d: _copy_with(good, d / "multicoil.h5", _multicoil), ["--acceleration", "4"],
                   "multi-coil"),
    "NaN k-space": (lambda good, d: _copy_with(good, d / "nan.h5", _nan), ["--acceleration", "4"], "NaN"),
    "mask width": (lambda good, d: _copy_with(good, d / "badmask.h5", _as_test_file(mask_width=32)), [],
                   "32 entries but the k-space has 36 columns"),
    "no mask, no acceleration": (lambda good, d: good, [], "--acceleration"),
    "size the model cannot take": (lambda good, d: _copy_with(good, d / "odd.h5", _as_test_file(width=34)),
                                   ["--no-pad"], "multiples of 4"),
    "slice out of range": (lambda good, d: good, ["--acceleration", "4", "--slices", "2:9"], "has 3 slices"),
}


def _write(path: Path, payload: bytes) -> Path:
    path.write_bytes(payload)
    return path


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_error_naming_the_file(case, model_file, demo_raw, tmp_path, capsys):
    make, options, words = BAD_INPUTS[case]
    bad = make(_val_file(demo_raw), tmp_path)
    out = tmp_path / "out"
    assert _run(model_file, [bad], out, *options) == 2
    line = _stderr_line(capsys)
    assert line.startswith("oucr reconstruct-file: error:") and str(bad) in line and words in line, line
    assert not out.exists() or list(out.iterdir()) == []


def test_an_error_in_the_third_of_five_files_keeps_the_first_two(model_file, demo_raw, tmp_path, capsys):
    good = sorted((demo_raw / "demo-fastmri" / "singlecoil_train").glob("*.h5"))
    bad = _copy_with(good[0], tmp_path / "file8000000.h5", _nan)
    inputs = [good[0], good[1], bad, good[2], good[3]]
    out = tmp_path / "out"
    assert _run(model_file, inputs, out, "--acceleration", "4") == 2
    assert str(bad) in _stderr_line(capsys)
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{good[0].stem}.h5", f"{good[1].stem}.h5",
                                                            "metrics.csv"])  # no temporary file either
    assert list(pd.read_csv(out / "metrics.csv")["volume"]) == [good[0].stem, good[1].stem]


def test_a_failure_while_writing_the_nifti_leaves_neither_output(model_file, demo_raw, tmp_path, monkeypatch):
    import oucr.engine.reconstruct_file as module
    from oucr.errors import DataError

    def fail(*args, **kwargs):
        raise DataError("disk", "full")

    monkeypatch.setattr(module, "nifti_from_stack", fail)
    with pytest.raises(DataError):
        module.reconstruct_files(model_file, [_brain(demo_raw)], tmp_path / "out", module.MaskRequest(acceleration=4),
                                 device="cpu")
    assert list((tmp_path / "out").iterdir()) == []


# ---------------------------------------------------------------------------------- help

def test_help_documents_every_option_and_ends_with_two_examples(capsys):
    import argparse

    from oucr.engine.reconstruct_file_cli import add_arguments

    with pytest.raises(SystemExit) as exit_info:
        cli(["reconstruct-file", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out.rstrip()
    examples = text[text.rindex("examples:"):]
    commands = [ln for ln in examples.splitlines() if ln.strip().startswith("oucr reconstruct-file")]
    assert len(commands) == 2 and text.splitlines()[-1].strip().endswith("--out my_recon")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert all(a.help for a in parser._actions), [a.dest for a in parser._actions if not a.help]
