"""The SigPy CS baseline: solver exactness, reconstruction quality, tuning and pipeline files."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import sigpy as sp

from baselines.cs import (
    REGULARISERS,
    finite_difference,
    finite_difference_adjoint,
    reconstruct_slice,
    tv_eigenvalues,
    tv_normal_solve,
)
from oucr.engine.cs import (
    chunk_volumes,
    read_lambda_file,
    reconstruct_volumes,
    tune_lambda,
)
from oucr.errors import ConfigError, DataError
from oucr.fft import fft2c, ifft2c
from oucr.masks import RandomMaskFunc, column_mask
from oucr.metrics import psnr

RNG = np.random.default_rng(1234)


def complex_image(shape, rng=RNG):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def phantom(size: int, shift: float = 0.0) -> np.ndarray:
    """Piecewise-smooth phantom: ellipses with smooth intensity ramps and a smooth phase."""
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    img = np.zeros((size, size))
    img[(xx / 0.8) ** 2 + (yy / 0.9) ** 2 < 1] = 0.6
    img[((xx - 0.25 - shift) / 0.25) ** 2 + ((yy + 0.2) / 0.35) ** 2 < 1] = 1.0
    img[((xx + 0.3) / 0.2) ** 2 + ((yy - 0.3 + shift) / 0.15) ** 2 < 1] = 0.2
    img[(xx / 0.1) ** 2 + ((yy - 0.55) / 0.1) ** 2 < 1] = 0.9
    img = img * (1 + 0.3 * xx)  # smooth shading inside the pieces
    return (img * np.exp(0.5j * (xx + yy))).astype(np.complex64)


def random_mask(width: int, acceleration: int = 4, seed: int = 0) -> np.ndarray:
    mask, _ = column_mask(RandomMaskFunc([0.08], [acceleration]), width, seed=seed)
    return mask.astype(np.float32)


# ------------------------------------------------------------------------------------------
# Operators and the exact solve
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6, 5), (7, 8)])
def test_finite_difference_matches_sigpy(shape):
    D = sp.linop.FiniteDifference(shape)
    x = complex_image(shape).astype(np.complex128)
    w = np.stack([complex_image(shape), complex_image(shape)]).astype(np.complex128)
    np.testing.assert_allclose(finite_difference(x), D(x), atol=1e-12)
    np.testing.assert_allclose(finite_difference_adjoint(w), D.H(w), atol=1e-12)
    # eigenvalues of D^H D: 4 sin^2(pi k / n) summed over the axes
    h, wd = shape
    expected = (4 * np.sin(np.pi * np.arange(h) / h) ** 2)[:, None] + (4 * np.sin(np.pi * np.arange(wd) / wd) ** 2)
    np.testing.assert_allclose(tv_eigenvalues(shape), expected, atol=1e-12)


@pytest.mark.parametrize("shape", [(6, 5), (5, 8)])
@pytest.mark.parametrize("mask_kind", ["columns", "random2d", "no_dc"])
def test_exact_tv_solve_matches_dense_solve(shape, mask_kind):
    """(F^H M F + rho D^H D) x = F^H y + rho D^H w, solved densely, in the centred convention.

    With the DC sample missing the system is singular (TV ignores the mean); the
    solve then returns the minimum-norm solution, as least squares does.
    """
    rng = np.random.default_rng(7)
    h, w = shape
    mask = (rng.random(w) < 0.5).astype(np.float64) if mask_kind == "columns" else (rng.random(shape) < 0.4) * 1.0
    mask = np.broadcast_to(mask, shape).copy()
    mask[h // 2, w // 2] = 0 if mask_kind == "no_dc" else 1  # centred k-space: DC at (h // 2, w // 2)
    rho = 0.37
    y = complex_image(shape, rng).astype(np.complex128) * mask
    wv = np.stack([complex_image(shape, rng), complex_image(shape, rng)]).astype(np.complex128)
    D = sp.linop.FiniteDifference(shape)
    n = h * w
    dense = np.zeros((n, n), dtype=np.complex128)
    for j in range(n):
        e = np.zeros(n, dtype=np.complex128)
        e[j] = 1
        e = e.reshape(shape)
        dense[:, j] = (ifft2c(mask * fft2c(e)) + rho * D.H(D(e))).ravel()
    rhs = (ifft2c(y) + rho * D.H(wv)).ravel()
    expected = np.linalg.lstsq(dense, rhs, rcond=1e-10)[0].reshape(shape)
    np.testing.assert_allclose(tv_normal_solve(y, mask, rho, wv), expected, atol=1e-10)
    if mask_kind == "no_dc":
        return
    # and SigPy's conjugate gradient on the same normal equations agrees
    A = sp.linop.FFT(shape, center=True)
    M = sp.linop.Multiply(shape, mask)
    normal = A.H * M * A + rho * D.H * D
    x = np.zeros(shape, dtype=np.complex128)
    cg = sp.alg.ConjugateGradient(normal, rhs.reshape(shape), x, max_iter=500, tol=1e-14)
    while not cg.done():
        cg.update()
    np.testing.assert_allclose(x, expected, atol=1e-8)


# ------------------------------------------------------------------------------------------
# reconstruct_slice
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("regulariser", REGULARISERS)
@pytest.mark.parametrize("mask_shape", ["columns", "full2d"])
def test_full_mask_returns_the_image(regulariser, mask_shape):
    img = complex_image((16, 12))
    mask = np.ones(12, np.float32) if mask_shape == "columns" else np.ones((16, 12), np.float32)
    x = reconstruct_slice(fft2c(img), mask, 0.05, max_iter=5, regulariser=regulariser)
    assert x.dtype == np.complex64 and x.shape == img.shape
    np.testing.assert_allclose(x, img, atol=1e-5)


@pytest.mark.parametrize("regulariser", REGULARISERS)
def test_cs_beats_zero_filled_on_undersampled_phantom(regulariser):
    # 128 x 128: at 64 x 64 the ellipse edges are too coarse for wavelet sparsity to pay off
    img = phantom(128)
    mask = random_mask(128, 4)
    y = fft2c(img) * mask
    gt = np.abs(img)[None]
    zf = psnr(gt, np.abs(ifft2c(y))[None])
    lamda = 0.003 if regulariser == "tv" else 0.001
    x = reconstruct_slice(y, mask, lamda, regulariser=regulariser)
    gain = psnr(gt, np.abs(x)[None]) - zf
    assert gain > (5.0 if regulariser == "tv" else 2.0), f"{regulariser}: only {gain:.2f} dB over zero-filled"


def test_output_is_data_consistent_and_scale_equivariant():
    img = phantom(32)
    mask = random_mask(32, 4)
    y = (fft2c(img) * mask).astype(np.complex64)
    x = reconstruct_slice(y, mask, 0.01)
    np.testing.assert_allclose(fft2c(x) * mask, y, atol=1e-5)
    # scaling the data and the weight together scales the result (rho follows the image scale)
    x_scaled = reconstruct_slice(y * 1000, mask, 10.0)
    np.testing.assert_allclose(x_scaled / 1000, x, atol=1e-4)
    # without the final projection the TV solution is a different, smoother image
    x_free = reconstruct_slice(y, mask, 0.01, data_consistency=False)
    assert not np.allclose(fft2c(x_free) * mask, y, atol=1e-3)


@pytest.mark.parametrize("regulariser", REGULARISERS)
def test_unsampled_centre_and_empty_slices_stay_finite(regulariser):
    mask = np.zeros(8, np.float32)
    mask[[0, 3]] = 1  # the centre column 4 is missing
    x = reconstruct_slice(fft2c(complex_image((8, 8))) * mask, mask, 0.1, regulariser=regulariser)
    assert np.isfinite(x).all()
    empty = reconstruct_slice(np.zeros((8, 8), np.complex64), np.ones(8) * (np.arange(8) % 2), 0.1,
                              regulariser=regulariser)
    assert np.array_equal(empty, np.zeros((8, 8)))


def test_iterations_stop_on_tolerance():
    img = phantom(32)
    mask = random_mask(32, 4)
    y = fft2c(img) * mask
    _, loose = reconstruct_slice(y, mask, 0.01, max_iter=500, tol=1e-2, return_iterations=True)
    _, tight = reconstruct_slice(y, mask, 0.01, max_iter=500, tol=1e-6, return_iterations=True)
    _, capped = reconstruct_slice(y, mask, 0.01, max_iter=3, tol=0, return_iterations=True)
    assert 1 < loose < tight <= 500 and capped == 3


def test_bad_inputs_raise_clear_errors():
    y = fft2c(complex_image((8, 8)))
    with pytest.raises(ValueError, match="does not broadcast"):
        reconstruct_slice(y, np.ones(7), 0.1)
    with pytest.raises(ValueError, match="complex"):
        reconstruct_slice(np.abs(y), np.ones(8), 0.1)
    with pytest.raises(ValueError, match="lamda"):
        reconstruct_slice(y, np.ones(8), 0.0)
    with pytest.raises(ValueError, match="regulariser"):
        reconstruct_slice(y, np.ones(8), 0.1, regulariser="l2")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reconstruct_slice(y, 2 * np.ones(8), 0.1)
    with pytest.raises(ValueError, match="max_iter"):
        reconstruct_slice(y, np.ones(8), 0.1, max_iter=0)


# ------------------------------------------------------------------------------------------
# Pipeline: a tiny prepared store and fixed masks
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    """Store of 32 x 32 phantoms (1 train, 2 val, 2 test volumes of 3 slices) and its 4x masks."""
    from oucr.data.fixed_masks import write_fixed_masks
    from oucr.data.store import PreparedVolume, write_store

    root = tmp_path_factory.mktemp("cs")
    volumes = []
    for i, split in enumerate(["train", "val", "val", "test", "test"]):
        target = np.stack([phantom(32, shift=0.03 * (3 * i + s)) * (100.0 + 50 * i) for s in range(3)])
        volumes.append(PreparedVolume(volume=f"vol{i}", subject=f"sub{i}", target=target, source=f"raw/vol{i}.nii",
                                      format="magnitude", slices=np.arange(3), split=split))
    store = root / "store"
    write_store(store, volumes)
    masks = root / "masks" / "tinyset" / "x4.h5"
    masks.parent.mkdir(parents=True)
    write_fixed_masks(store, masks, acceleration=4, center_fraction=0.08)
    return store, masks


def test_lambda_search_picks_the_best_value_of_its_grid(tiny_store, tmp_path):
    from oucr.cli import main

    store, masks = tiny_store
    out = tmp_path / "lambda.json"
    lambdas = [1e-4, 1e-2, 10.0]
    assert main(["cs-tune", "--store", str(store), "--masks", str(masks), "--out", str(out), "--slices", "3",
                 "--lambdas", *map(str, lambdas), "--max-iter", "50"]) == 0
    record = json.loads(out.read_text())
    psnrs = {g["lamda"]: g["psnr"] for g in record["grid"]}
    assert sorted(psnrs) == lambdas
    assert record["lamda"] == max(psnrs, key=psnrs.get)
    assert psnrs[10.0] < psnrs[record["lamda"]]  # an absurd weight is not chosen
    assert record["dataset"] == "tinyset" and record["acceleration"] == 4 and record["normalised"]
    assert len(record["val_slices"]) == 3 and {v for v, _ in record["val_slices"]} <= {"vol1", "vol2"}
    # deterministic: the same search gives the same record
    again = tune_lambda(store, masks, lambdas, n_slices=3, max_iter=50)
    assert [g["psnr"] for g in again["grid"]] == [g["psnr"] for g in record["grid"]]


def test_reconstruction_files_match_the_network_layout(tiny_store, tmp_path):
    from oucr.cli import main
    from oucr.data.store import PreparedStore
    from oucr.recon_io import read_reconstruction

    store, masks = tiny_store
    lam = tmp_path / "lambda.json"
    lam.write_text(json.dumps({"lamda": 0.01, "regulariser": "tv", "max_iter": 50, "acceleration": 4}))
    out = tmp_path / "recon"
    assert main(["cs-reconstruct", "--store", str(store), "--masks", str(masks), "--lambda-file", str(lam),
                 "--out", str(out)]) == 0
    prepared = PreparedStore(store)
    assert sorted(p.name for p in out.iterdir()) == ["vol3.h5", "vol4.h5"]
    for volume in ["vol3", "vol4"]:
        with h5py.File(out / f"{volume}.h5", "r") as f:
            assert sorted(f.keys()) == ["reconstruction", "reconstruction_complex"]
            assert f["reconstruction"].dtype == np.float32 and f["reconstruction_complex"].dtype == np.complex64
            # the magnitude is that of the complex image, and every slice names its source slice
            assert np.array_equal(f["reconstruction"][()], np.abs(f["reconstruction_complex"][()]))
            assert np.array_equal(f.attrs["slices"], prepared.source_slices(volume))
        recon, attrs = read_reconstruction(out / f"{volume}.h5")
        target = np.abs(prepared.load(volume)["target"])
        assert recon.shape == target.shape
        assert attrs["method"] == "CS" and attrs["dataset"] == "tinyset" and int(attrs["acceleration"]) == 4
        # original (denormalised) scale and better than zero-filled
        mask = masks_row(masks, volume)
        zero_filled = np.abs(ifft2c(prepared.load(volume)["kspace"] * mask))
        assert psnr(target, recon) > psnr(target, zero_filled) + 3


def masks_row(masks: Path, volume: str) -> np.ndarray:
    with h5py.File(masks, "r") as f:
        return f[volume][()].astype(np.float32)


def test_volumes_and_chunks_split_the_work(tiny_store, tmp_path):
    from oucr.cli import main

    store, masks = tiny_store
    lam = tmp_path / "lambda.json"
    lam.write_text(json.dumps({"lamda": 0.01, "regulariser": "tv", "max_iter": 5}))
    written = reconstruct_volumes(store, masks, lam, tmp_path / "one", volumes=["vol4"])
    assert [p.name for p in written] == ["vol4.h5"]
    # the workflow's form: chunk 1 of 2 of the sorted test volumes (vol3, vol4), explicit attributes
    common = ["cs-reconstruct", "--store", str(store), "--masks", str(masks), "--lambda-file", str(lam)]
    assert main([*common, "--dataset", "other", "--acceleration", "4", "--chunk", "1", "--chunks", "2",
                 "--out", str(tmp_path / "chunk")]) == 0
    assert [p.name for p in (tmp_path / "chunk").iterdir()] == ["vol4.h5"]
    with h5py.File(tmp_path / "chunk" / "vol4.h5", "r") as f:
        assert f.attrs["dataset"] == "other"
    assert main([*common, "--volumes", "vol3", "--chunks", "2", "--out", str(tmp_path / "both")]) == 2
    assert sorted(chunk_volumes(["a", "b", "c"], 0, 2) + chunk_volumes(["a", "b", "c"], 1, 2)) == ["a", "b", "c"]
    with pytest.raises(ConfigError):
        chunk_volumes(["a"], 2, 2)
    with pytest.raises(DataError, match="not in the test split"):
        reconstruct_volumes(store, masks, lam, tmp_path / "bad", volumes=["vol1"])


def test_pipeline_bad_inputs_give_clear_errors(tiny_store, tmp_path, capsys):
    from oucr.cli import main

    store, masks = tiny_store
    missing = tmp_path / "nope.json"
    with pytest.raises(DataError, match="nope.json.*does not exist"):
        read_lambda_file(missing)
    # through the command line: one line naming the file, exit status 2
    assert main(["cs-reconstruct", "--store", str(store), "--masks", str(masks), "--lambda-file", str(missing),
                 "--out", str(tmp_path / "r")]) == 2
    assert "nope.json" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_lambda_file(broken)
    incomplete = tmp_path / "incomplete.json"
    incomplete.write_text(json.dumps({"lamda": 0.01}))
    with pytest.raises(DataError, match="missing key"):
        read_lambda_file(incomplete)
    other_acc = tmp_path / "x8.json"
    other_acc.write_text(json.dumps({"lamda": 0.01, "regulariser": "tv", "max_iter": 5, "acceleration": 8}))
    with pytest.raises(ConfigError, match="tuned at 8x"):
        reconstruct_volumes(store, masks, other_acc, tmp_path / "r8")
    # masks drawn for another image width
    wrong = tmp_path / "masks" / "tinyset" / "x4.h5"
    wrong.parent.mkdir(parents=True)
    with h5py.File(wrong, "w") as f:
        f.attrs["acceleration"] = 4
        for v in ["vol1", "vol2", "vol3", "vol4"]:
            f.create_dataset(v, data=np.ones(30, np.uint8))
    with pytest.raises(DataError, match="30 columns but its k-space has 32"):
        tune_lambda(store, wrong, [0.01], n_slices=1, max_iter=2)
    with pytest.raises(ConfigError, match="positive"):
        tune_lambda(store, masks, [0.0, 0.01], n_slices=1)
