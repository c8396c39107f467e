"""Readers of raw data: fastMRI single-coil HDF5, NIfTI and HDF5 magnitude volumes."""

from __future__ import annotations

import h5py
import nibabel as nib
import numpy as np
import pytest

from oucr.data.fastmri import parse_header, read_fastmri, scan_fastmri, select_tissue_slices
from oucr.data.volumes import choose_slices, crop_resample, load_axial_stack, read_magnitude, volume_name
from oucr.errors import DataError
from oucr.fft import center_crop, fft2c, ifft2c


def _first_train_file(demo_raw):
    return sorted((demo_raw / "demo-fastmri" / "singlecoil_train").glob("*.h5"))[0]


# fastMRI ----------------------------------------------------------------------------


def test_fastmri_reader_crops_the_complex_image_to_the_header_recon_size(demo_raw):
    path = _first_train_file(demo_raw)
    with h5py.File(path, "r") as f:
        kspace = f["kspace"][()]
        esc = f["reconstruction_esc"][()]
        header = f["ismrmrd_header"][()]
        patient = f.attrs["patient_id"]
        acquisition = f.attrs["acquisition"]
    sizes = parse_header(path, header)
    assert sizes["recon"] == (32, 32)
    assert sizes["encoded"] == kspace.shape[1:]

    vol = read_fastmri(path, tissue_slices=False)
    expected = center_crop(ifft2c(kspace), (32, 32))
    assert vol.target.dtype == np.complex64 and vol.target.shape == (3, 32, 32)
    np.testing.assert_allclose(vol.target, expected, atol=1e-6)
    # the magnitude of the target is fastMRI's reconstruction_esc
    np.testing.assert_allclose(np.abs(vol.target), esc, rtol=1e-4, atol=1e-6)
    assert vol.volume == path.stem and vol.subject == patient and vol.acquisition == acquisition
    assert vol.format == "fastmri" and list(vol.slices) == [0, 1, 2]
    assert np.abs(np.angle(vol.target[vol.target != 0])).max() > 0.1  # a real complex image, not a magnitude


def test_fastmri_reader_takes_a_configured_size(demo_raw):
    path = _first_train_file(demo_raw)
    vol = read_fastmri(path, size=(24, 20), tissue_slices=False)
    with h5py.File(path, "r") as f:
        expected = center_crop(ifft2c(f["kspace"][()]), (24, 20))
    assert vol.target.shape == (3, 24, 20)
    np.testing.assert_allclose(vol.target, expected, atol=1e-6)


def test_fastmri_reader_accepts_a_header_without_namespace(tmp_path):
    rng = np.random.default_rng(0)
    kspace = (rng.standard_normal((2, 40, 24)) + 1j * rng.standard_normal((2, 40, 24))).astype(np.complex64)
    header = ("<ismrmrdHeader><encoding><encodedSpace><matrixSize><x>40</x><y>24</y><z>1</z></matrixSize>"
              "</encodedSpace><reconSpace><matrixSize><x>20</x><y>20</y><z>1</z></matrixSize></reconSpace>"
              "</encoding></ismrmrdHeader>")
    path = tmp_path / "file1.h5"
    with h5py.File(path, "w") as f:
        f["kspace"] = kspace
        f["ismrmrd_header"] = header.encode()
    vol = read_fastmri(path, tissue_slices=False)
    assert vol.target.shape == (2, 20, 20)
    assert vol.subject == "file1" and vol.acquisition == ""  # no patient_id: the file is the subject
    assert scan_fastmri(path) == {"volume": "file1", "subject": "file1", "acquisition": ""}


def test_tissue_slices_trim_noise_only_ends_and_counts_keep_central():
    image = np.full((9, 8, 8), 0.01, np.complex64)
    image[2:7] = 1.0
    image[4] = 0.2  # a weak slice inside the tissue run stays
    assert list(select_tissue_slices(image, True)) == [2, 3, 4, 5, 6]
    assert list(select_tissue_slices(image, False)) == list(range(9))
    assert list(select_tissue_slices(image, 3)) == [3, 4, 5]
    assert list(select_tissue_slices(image, 20)) == list(range(9))


def test_fastmri_reader_drops_empty_end_slices(tmp_path):
    image = np.zeros((5, 32, 24), np.complex64)
    image[1:4, 8:24, 6:18] = np.exp(1j * 0.3)
    path = tmp_path / "file2.h5"
    with h5py.File(path, "w") as f:
        f["kspace"] = fft2c(image).astype(np.complex64)
    vol = read_fastmri(path, size=(16, 16), tissue_slices=True)
    assert list(vol.slices) == [1, 2, 3]
    np.testing.assert_allclose(vol.target, center_crop(image[1:4], (16, 16)), atol=1e-5)


# magnitude volumes ---------------------------------------------------------------------


def _phantom(shape=(40, 48, 10), blank_ends=2):
    """An ellipsoid-ish blob (x, y, z) with empty slices at both z ends and a marker at anterior y."""
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    blob = ((x / 0.6) ** 2 + (y / 0.7) ** 2 < 1).astype(np.float32)
    data = np.zeros(shape, np.float32)
    for z in range(blank_ends, shape[2] - blank_ends):
        data[:, :, z] = blob * (1 + z)
    data[shape[0] // 2, int(shape[1] * 0.8), blank_ends:shape[2] - blank_ends] = 50.0  # anterior marker
    return data


def test_nifti_reader_orients_axial_slices_with_anterior_up(tmp_path):
    data = _phantom()
    path = tmp_path / "sub-01.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    stack = load_axial_stack(path)
    assert stack.shape == (10, 48, 40)  # (z, y, x)
    row = np.unravel_index(np.argmax(stack[5]), stack[5].shape)[0]
    assert row < 48 // 2  # anterior (large y) is in the top half


def test_nifti_reader_reorients_to_canonical(tmp_path):
    data = _phantom()
    flipped_affine = np.diag([-1.0, 1.0, 1.0, 1.0])  # stored left-to-right reversed
    a, b = tmp_path / "a.nii", tmp_path / "b.nii"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(a))
    nib.save(nib.Nifti1Image(data[::-1].copy(), flipped_affine), str(b))
    np.testing.assert_array_equal(load_axial_stack(a), load_axial_stack(b))


def test_magnitude_reader_picks_central_tissue_slices_and_zero_phase(tmp_path):
    data = _phantom()
    path = tmp_path / "sub-02.nii"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    vol = read_magnitude(path, size=(32, 32), slices_per_volume=4)
    assert list(vol.slices) == [3, 4, 5, 6]  # tissue in 2..7, the 4 central ones
    assert vol.target.shape == (4, 32, 32) and vol.target.dtype == np.complex64
    assert np.all(vol.target.imag == 0) and np.all(vol.target.real >= 0)
    assert vol.volume == vol.subject == "sub-02" and vol.format == "magnitude"
    assert volume_name(tmp_path / "x.nii.gz") == "x"
    # all tissue slices when no count is given
    assert list(read_magnitude(path, (32, 32), None).slices) == [2, 3, 4, 5, 6, 7]


def test_choose_slices_keeps_the_central_ones():
    stack = np.zeros((20, 8, 8), np.float32)
    stack[4:16] = 1.0
    assert list(choose_slices(stack, 4)) == [8, 9, 10, 11]
    assert list(choose_slices(stack, None)) == list(range(4, 16))
    assert list(choose_slices(stack, 50)) == list(range(4, 16))


def test_crop_is_exact_when_the_tissue_fits_and_downsamples_otherwise():
    stack = np.zeros((2, 64, 64), np.float32)
    stack[:, 28:36, 30:38] = np.arange(64, dtype=np.float32).reshape(8, 8) + 1
    small = crop_resample(stack, (20, 20))
    assert small.shape == (2, 20, 20)
    # a plain crop: every tissue value survives unchanged, none is interpolated
    assert sorted(small[0][small[0] > 0].tolist()) == sorted(stack[0][stack[0] > 0].tolist())

    big = np.zeros((1, 100, 100), np.float32)
    big[0, 10:90, 20:80] = 1.0  # 80 x 60 of tissue into 40 x 40: downsampled, aspect kept
    out = crop_resample(big, (40, 40))
    assert out.shape == (1, 40, 40)
    rows = np.flatnonzero((out[0] > 0.5).any(axis=1))
    cols = np.flatnonzero((out[0] > 0.5).any(axis=0))
    assert 34 <= len(rows) <= 38 and 24 <= len(cols) <= 29


def test_hdf5_magnitude_reader_with_a_configured_key(tmp_path):
    stack = np.transpose(_phantom(), (2, 1, 0))[:, ::-1]  # the (z, y, x) stack the NIfTI path gives
    path = tmp_path / "sub-03.h5"
    with h5py.File(path, "w") as f:
        f["brain"] = stack
    nii = tmp_path / "sub-03.nii"
    nib.save(nib.Nifti1Image(_phantom(), np.eye(4)), str(nii))
    from_h5 = read_magnitude(path, (32, 32), 4, h5_key="brain")
    from_nii = read_magnitude(nii, (32, 32), 4)
    np.testing.assert_array_equal(from_h5.target, from_nii.target)
    with pytest.raises(DataError, match="missing dataset 'image'"):
        read_magnitude(path, (32, 32), 4)


def test_demo_brain_nifti_is_read(demo_raw):
    path = sorted((demo_raw / "demo-brain").glob("*.nii.gz"))[0]
    raw = nib.load(str(path))
    assert raw.shape == (64, 64, 3)  # twice the size in plane, for prepare to crop and resample
    vol = read_magnitude(path, (32, 32), 3)
    assert vol.target.shape == (3, 32, 32)
    mag = np.abs(vol.target)
    # brain in the middle, dark background at the border
    assert mag[:, 12:20, 12:20].mean() > 5 * mag[:, :2, :].mean()


def test_nifti_with_rectangular_pixels_is_resampled_to_square(tmp_path):
    data = _phantom(shape=(20, 48, 10))  # x sampled at 2 mm, y at 1 mm
    path = tmp_path / "sub-04.nii"
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 1.0, 3.0, 1.0])), str(path))
    stack = load_axial_stack(path)
    assert stack.shape == (10, 48, 40)
    iso = tmp_path / "sub-05.nii"
    nib.save(nib.Nifti1Image(_phantom(shape=(40, 48, 10)), np.diag([1.0, 1.0, 3.0, 1.0])), str(iso))
    # the same ellipse: the tissue masks agree but at the edges
    assert np.mean((stack[5] > 1) != (load_axial_stack(iso)[5] > 1)) < 0.05
