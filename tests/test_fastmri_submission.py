"""With every slice kept, a reconstruction folder is a fastMRI submission that fastMRI's evaluation scores as we do.

fastMRI's ``evaluate.py`` reads, per file of the target folder, the target's ``reconstruction_esc``
and the prediction's ``reconstruction``, centre-crops both to the target's last dimension, and
computes NMSE and PSNR over the volume and SSIM as the mean of per-slice 2-D SSIMs, each with the
target volume's maximum as data range. :func:`fastmri_evaluate` below does exactly that with
scikit-image, independently of :mod:`oucr.metrics`.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from conftest import tiny_fastmri_section


def _crop(x: np.ndarray, shape) -> np.ndarray:
    h, w = shape
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top:top + h, left:left + w]


def fastmri_evaluate(target_dir: Path, predictions_dir: Path) -> dict:
    """``{file stem: (nmse, psnr, ssim)}`` computed the way fastMRI's evaluate.py does (single coil)."""
    out = {}
    for tgt_file in sorted(target_dir.glob("*.h5")):
        with h5py.File(tgt_file, "r") as target, h5py.File(predictions_dir / tgt_file.name, "r") as recons:
            gt = target["reconstruction_esc"][()]
            pred = recons["reconstruction"][()]
        gt = _crop(gt, (gt.shape[-1], gt.shape[-1]))
        pred = _crop(pred, (gt.shape[-1], gt.shape[-1]))
        nmse = np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2
        psnr = peak_signal_noise_ratio(gt, pred, data_range=gt.max())
        ssim = np.mean([structural_similarity(g, p, data_range=gt.max()) for g, p in zip(gt, pred)])
        out[tgt_file.stem] = (nmse, psnr, ssim)
    return out


@pytest.fixture(scope="module")
def all_slices(demo_raw, tmp_path_factory):
    """The demo fastMRI layout prepared with every slice kept, its masks and zero-filled reconstructions."""
    from oucr.data.fixed_masks import write_fixed_masks
    from oucr.data.prepare import prepare_dataset
    from oucr.engine.reconstruct import reconstruct_store

    root = tmp_path_factory.mktemp("submission")
    prepare_dataset(tiny_fastmri_section(demo_raw / "demo-fastmri", tissue_slices=False), root / "store",
                    seed=0, name="demo-fastmri")
    write_fixed_masks(root / "store", root / "masks.h5", 4, 0.08)
    reconstruct_store(root / "store", root / "masks.h5", root / "recon", "demo-fastmri", 4, device="cpu")
    return root


def test_our_metrics_are_fastmris_on_a_submission_folder(all_slices, demo_raw):
    from oucr.engine.evaluate import evaluate_folder

    raw_test = demo_raw / "demo-fastmri" / "singlecoil_val"
    ours, _ = evaluate_folder([all_slices / "recon"], all_slices / "store", "Zero-filled", "demo-fastmri", 4,
                              all_slices / "masks.h5")
    theirs = fastmri_evaluate(raw_test, all_slices / "recon")
    assert sorted(theirs) == sorted(ours["volume"])  # one file per raw file, same names: a valid submission
    for row in ours.itertuples():
        nmse, psnr, ssim = theirs[row.volume]
        assert row.psnr == pytest.approx(psnr, abs=1e-6)
        assert row.ssim == pytest.approx(ssim, abs=1e-9)
        assert row.nmse == pytest.approx(nmse, rel=1e-6)


def test_every_file_maps_its_slices_back_to_the_raw_volume(demo_raw, tmp_path):
    """With the end slices trimmed, the ``slices`` attribute names each kept slice's raw index."""
    from oucr.data.fixed_masks import write_fixed_masks
    from oucr.data.prepare import prepare_dataset
    from oucr.data.store import PreparedStore
    from oucr.engine.reconstruct import reconstruct_store

    prepare_dataset(tiny_fastmri_section(demo_raw / "demo-fastmri", tissue_slices=1), tmp_path / "store",
                    seed=0, name="demo-fastmri")
    write_fixed_masks(tmp_path / "store", tmp_path / "masks.h5", 4, 0.08)
    written = reconstruct_store(tmp_path / "store", tmp_path / "masks.h5", tmp_path / "recon", "demo-fastmri", 4,
                                device="cpu")
    store = PreparedStore(tmp_path / "store")
    for path in written:
        with h5py.File(path, "r") as f:
            slices = f.attrs["slices"]
        with h5py.File(demo_raw / "demo-fastmri" / "singlecoil_val" / path.name, "r") as raw:
            esc = raw["reconstruction_esc"][()]
        assert len(slices) == 1 and 0 < slices[0] < esc.shape[0] - 1  # the central slice, not the first
        target = np.abs(store.load(path.stem)["target"])
        assert np.allclose(target, esc[slices], rtol=1e-5, atol=1e-6 * esc.max())
