"""HaarPSI and pixel-domain VIF (oucr.perceptual) against the authors' reference programs.

``fixtures/perceptual_reference.npz`` holds, for 9 image pairs, the float32 inputs
(``<case>__gt``, ``<case>__pred``, ``data_range``) and the values that published
implementations gave on them (no third-party code is committed). They were made once,
outside this project's environment:

* ``haarpsi_medical_matlab`` / ``haarpsi_natural_matlab``: Reisenhofer's ``HaarPSI.m``
  (github rgcda/haarpsi, commit 2c27931, MIT licence) run in GNU Octave 7.3.0 on the
  images multiplied by ``255 / data_range``; "natural" is the file as published
  (C = 30, alpha = 4.2), "medical" the same file with those two constants edited to
  Karner et al.'s C = 5, alpha = 4.9.
* ``vif_matlab``: Sheikh & Bovik's ``vifp_mscale.m`` (LIVE, UT Austin) in Octave 7.3.0
  with octave-image 2.14's ``fspecial``, on the same 0..255 images.
* ``haarpsi_*_numpy`` (``haar_psi_numpy`` of rgcda's ``haarPsi.py``, constants edited
  likewise) and ``vif_sewar`` (sewar 0.4.10 ``vifp``): the Python ports; they equal the
  MATLAB values to 1e-13.
* ``haarpsi_*_karner``: Karner et al.'s own implementation (github ideal-iqa/haarpsi-pytorch,
  commit a64b753, MIT, torch 2.13 CPU, float32 inputs in [0, 1]); ``*_piq``: piq 0.8.0
  ``haarpsi`` / ``vif_p``. Both refuse images outside ``[0, data_range]``: ``nan`` there.

Cases: ``camera_noise`` / ``camera_blur`` (skimage ``camera()`` 8 x 8 block mean, 64 x 64,
Gaussian noise sigma 12 clipped to 0..255 / Gaussian blur sigma 1.5; rebuilt here from
scikit-image, so none of the photograph's pixels are stored: for ``camera_odd_noise`` the
fixture holds only the noise residual ``pred - gt``), ``phantom_blur_noise``
(Shepp-Logan 64 x 64 in [0, 1], blur 1.0 plus noise 0.03), ``phantom_half_inverted`` (its left
half replaced by ``1 - x``: anti-correlated, so VIF's negative-gain branch runs), ``camera_odd_noise`` (45 x 47, so
the subsampling's zero-padded edge matters), ``mri_slice0..3`` (a synthetic 4-slice 64 x 64
float32 volume at fastMRI's ~1e-4 scale and its 4x column-undersampled zero-filled
magnitude; range = the volume's max, which the zero-filled slice 3 exceeds by 8 %).
"""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from oucr.perceptual import (
    VIF_MIN_SIZE,
    haarpsi,
    haarpsi_per_slice,
    haarpsi_volume,
    vif_per_slice,
    vif_pixel,
    vif_volume,
)

FIXTURE = Path(__file__).parent / "fixtures" / "perceptual_reference.npz"
# ours and the MATLAB programs differ by <= 5e-14 on these cases (both float64; summation order)
MATLAB_TOL = 1e-9
# Karner et al.'s implementation computes in float32: it differs from ours by up to 1.8e-6
FLOAT32_TOL = 1e-5


def _camera_cases(z) -> dict:
    """The three camera cases, rebuilt from scikit-image's CC0 ``camera()`` (its pixels are not stored)."""
    from skimage import data

    camera = data.camera().astype(np.float64)
    gt = camera.reshape(64, 8, 64, 8).mean(axis=(1, 3))
    noisy = np.clip(gt + np.random.default_rng(12345).normal(0, 12, gt.shape), 0, 255)
    odd = camera.reshape(128, 4, 128, 4).mean(axis=(1, 3))[30:75, 40:87].astype(np.float32)
    odd_pred = odd.astype(np.float64) + z["camera_odd_noise__residual"]
    return {"camera_noise": (gt.astype(np.float32), noisy.astype(np.float32)),
            "camera_blur": (gt.astype(np.float32), gaussian_filter(gt, 1.5).astype(np.float32)),
            "camera_odd_noise": (odd, odd_pred.astype(np.float32))}


def _load():
    with np.load(FIXTURE) as z:
        names = [str(n) for n in z["names"]]
        images = _camera_cases(z)
        images.update({n: (z[f"{n}__gt"], z[f"{n}__pred"]) for n in names if n not in images})
        cases = {n: (*images[n], float(z["data_range"][i])) for i, n in enumerate(names)}
        values = {k: dict(zip(names, z[k])) for k in z.files if k.startswith(("haarpsi_", "vif_"))}
        provenance = json.loads(str(z["provenance"]))
    return cases, values, provenance


CASES, REFERENCE, PROVENANCE = _load()  # PROVENANCE: which program and version made each value
MRI = [f"mri_slice{s}" for s in range(4)]


def _mri_volume():
    gt = np.stack([CASES[n][0] for n in MRI])
    pred = np.stack([CASES[n][1] for n in MRI])
    return gt, pred


@pytest.mark.parametrize("name", sorted(CASES))
def test_haarpsi_matches_reisenhofer_reference(name):
    gt, pred, data_range = CASES[name]
    assert haarpsi(gt, pred, data_range) == pytest.approx(REFERENCE["haarpsi_medical_matlab"][name], abs=MATLAB_TOL)
    assert haarpsi(gt, pred, data_range, C=30.0, alpha=4.2) == pytest.approx(
        REFERENCE["haarpsi_natural_matlab"][name], abs=MATLAB_TOL)


@pytest.mark.parametrize("name", sorted(n for n in CASES if np.isfinite(REFERENCE["haarpsi_medical_karner"][n])))
def test_haarpsi_matches_karner_implementation(name):
    gt, pred, data_range = CASES[name]
    assert haarpsi(gt, pred, data_range) == pytest.approx(REFERENCE["haarpsi_medical_karner"][name], abs=FLOAT32_TOL)


@pytest.mark.parametrize("name", sorted(CASES))
def test_vif_matches_sheikh_bovik_reference(name):
    gt, pred, data_range = CASES[name]
    assert vif_pixel(gt, pred, data_range) == pytest.approx(REFERENCE["vif_matlab"][name], abs=MATLAB_TOL)


def test_volume_metrics_use_the_volume_max_as_range():
    gt, pred = _mri_volume()
    np.testing.assert_allclose(haarpsi_per_slice(gt, pred), [REFERENCE["haarpsi_medical_matlab"][n] for n in MRI],
                               rtol=0, atol=MATLAB_TOL)
    np.testing.assert_allclose(vif_per_slice(gt, pred), [REFERENCE["vif_matlab"][n] for n in MRI],
                               rtol=0, atol=MATLAB_TOL)
    # not each slice's own max: slice 0 is the dimmest, its own range changes both metrics
    assert abs(haarpsi(gt[0], pred[0], gt[0].max()) - haarpsi_per_slice(gt, pred)[0]) > 1e-3
    assert abs(vif_pixel(gt[0], pred[0], gt[0].max()) - vif_per_slice(gt, pred)[0]) > 1e-3
    # an explicit maxval replaces the volume max
    big = 2.0 * float(gt.max())
    assert haarpsi_per_slice(gt, pred, maxval=big)[1] == pytest.approx(haarpsi(gt[1], pred[1], big), abs=1e-12)
    assert vif_per_slice(gt, pred, maxval=big)[1] == pytest.approx(vif_pixel(gt[1], pred[1], big), abs=1e-12)


def test_volume_helpers_are_means_of_slices():
    gt, pred = _mri_volume()
    h = haarpsi_per_slice(gt, pred)
    v = vif_per_slice(gt, pred)
    assert h.shape == v.shape == (4,) and h.dtype == v.dtype == np.float64
    assert haarpsi_volume(gt, pred) == pytest.approx(h.mean(), abs=1e-12)
    assert vif_volume(gt, pred) == pytest.approx(v.mean(), abs=1e-12)
    assert haarpsi_volume(gt, pred, C=30.0, alpha=4.2) == pytest.approx(
        np.mean([REFERENCE["haarpsi_natural_matlab"][n] for n in MRI]), abs=MATLAB_TOL)


def test_predictions_above_the_range_are_not_clipped():
    gt, pred, data_range = CASES["mri_slice3"]
    assert pred.max() > 1.05 * data_range
    clipped = np.minimum(pred, data_range)
    # the reference programs, given the unclipped values, agree with us (checked above); clipping would differ
    assert abs(haarpsi(gt, pred, data_range) - haarpsi(gt, clipped, data_range)) > 1e-4
    assert abs(vif_pixel(gt, pred, data_range) - vif_pixel(gt, clipped, data_range)) > 1e-4


def test_scaling_both_images_and_the_range_changes_nothing():
    gt, pred = (a.astype(np.float64) for a in _mri_volume())  # float64, so that k * x is exact to 1e-16
    h, v = haarpsi_per_slice(gt, pred), vif_per_slice(gt, pred)
    for k in (1e4, 3e-3):
        np.testing.assert_allclose(haarpsi_per_slice(gt * k, pred * k), h, rtol=1e-9, atol=0)
        np.testing.assert_allclose(vif_per_slice(gt * k, pred * k), v, rtol=1e-9, atol=0)
    g, p, r = CASES["phantom_blur_noise"]
    g, p = g.astype(np.float64), p.astype(np.float64)
    assert haarpsi(g * 7.0, p * 7.0, r * 7.0) == pytest.approx(haarpsi(g, p, r), rel=1e-9)
    assert vif_pixel(g * 7.0, p * 7.0, r * 7.0) == pytest.approx(vif_pixel(g, p, r), rel=1e-9)
    # the range matters: the constants live on the 0..255 scale it defines
    assert abs(haarpsi(g, p, 4.0 * r) - haarpsi(g, p, r)) > 1e-2
    assert abs(vif_pixel(g, p, 4.0 * r) - vif_pixel(g, p, r)) > 1e-2


@pytest.mark.parametrize("name", ["camera_noise", "phantom_blur_noise", "camera_odd_noise", "mri_slice2"])
def test_identical_images_score_one(name):
    gt, _, data_range = CASES[name]
    assert haarpsi(gt, gt, data_range) == pytest.approx(1.0, abs=1e-12)
    assert haarpsi(gt, gt, data_range, C=30.0, alpha=4.2) == pytest.approx(1.0, abs=1e-12)
    # VIFp's 1e-10 regularisers leave ~1e-11 below 1
    assert vif_pixel(gt, gt, data_range) == pytest.approx(1.0, abs=1e-9)


def test_scores_fall_as_noise_and_blur_grow():
    gt = CASES["camera_noise"][0].astype(np.float64)
    noise = np.random.default_rng(7).standard_normal(gt.shape)
    noisy = [np.clip(gt + s * noise, 0, 255) for s in (2, 5, 10, 20, 40)]
    blurred = [gaussian_filter(gt, s) for s in (0.5, 1.0, 2.0, 4.0)]
    for series in (noisy, blurred):
        h = [haarpsi(gt, p, 255.0) for p in series]
        v = [vif_pixel(gt, p, 255.0) for p in series]
        assert all(a > b + 0.01 for a, b in zip(h, h[1:])), h
        assert all(a > b + 0.01 for a, b in zip(v, v[1:])), v
        assert 0 < h[-1] < h[0] < 1 and 0 < v[-1] < v[0] < 1


def test_haarpsi_is_symmetric_and_vif_is_not():
    for name in ("camera_blur", "camera_odd_noise", "mri_slice3"):
        gt, pred, data_range = CASES[name]
        assert haarpsi(gt, pred, data_range) == pytest.approx(haarpsi(pred, gt, data_range), abs=1e-12)
    gt, pred, data_range = CASES["camera_blur"]
    # the blurred image as reference: its information is mostly preserved in the sharp one
    assert vif_pixel(pred, gt, data_range) > vif_pixel(gt, pred, data_range) + 0.02
    # VIF rewards contrast enhancement (above 1), HaarPSI does not
    g = gt.astype(np.float64)
    stretched = g.mean() + 1.3 * (g - g.mean())
    assert vif_pixel(g, stretched, 255.0) > 1.05
    assert haarpsi(g, stretched, 255.0) < 0.99


def test_undefined_cases_are_nan():
    zeros = np.zeros((48, 48))
    assert np.isnan(haarpsi(zeros, zeros, 1.0))
    assert haarpsi(zeros, np.eye(48), 1.0) < 0.5  # one image blank: defined, and low
    flat = np.full((48, 48), 0.5)
    assert np.isnan(vif_pixel(flat, np.eye(48), 1.0))


def test_bad_shapes_and_ranges_raise_value_error():
    g = np.zeros((48, 48))
    vol = np.zeros((2, 48, 48))
    for metric in (haarpsi, vif_pixel):
        with pytest.raises(ValueError, match="2-D"):
            metric(vol, vol, 1.0)
        with pytest.raises(ValueError, match="shape mismatch"):
            metric(g, np.zeros((48, 50)), 1.0)
        with pytest.raises(ValueError, match="magnitude"):
            metric(g.astype(complex), g, 1.0)
        for bad_range in (0.0, -1.0, np.inf):
            with pytest.raises(ValueError, match="data_range"):
                metric(g, g, bad_range)
    small = np.zeros((VIF_MIN_SIZE - 1, 64))
    with pytest.raises(ValueError, match="at least 41"):
        vif_pixel(small, small, 1.0)
    vif_pixel(np.eye(VIF_MIN_SIZE), np.eye(VIF_MIN_SIZE), 1.0)  # the smallest accepted size works
    with pytest.raises(ValueError, match="positive"):
        haarpsi(g, g, 1.0, C=0.0)
    for per_slice in (haarpsi_per_slice, vif_per_slice, haarpsi_volume, vif_volume):
        with pytest.raises(ValueError, match="slices, H, W"):
            per_slice(g, g)
        with pytest.raises(ValueError, match="shape mismatch"):
            per_slice(vol, np.zeros((3, 48, 48)))
        with pytest.raises(ValueError, match="data_range"):
            per_slice(vol, vol)  # an all-zero reference volume has no range

