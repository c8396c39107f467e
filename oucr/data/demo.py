"""``oucr demo-data``: the embedded default datasets, built from real anatomy.

Nothing is downloaded: the anatomy is the MNI152 (ICBM 2009a symmetric) T1
template and its grey/white-matter probability maps that the ``nilearn`` wheel
ships as package data, read with nibabel. Each virtual subject is a distinct,
deterministic (for a seed) variation of it:

- a random affine (rotation, anisotropic scaling, shift) and a random smooth
  3-D elastic deformation (a coarse grid of displacements over the template's
  box, interpolated cubically);
- a contrast change (a gamma on the T1 intensity and tissue-specific gains on
  grey and white matter);
- a smooth multiplicative bias field;
- a smooth phase (complex data only) and complex Gaussian noise (so magnitude
  data carry Rician noise).

Two datasets are written:

``demo-brain`` (the brain magnitude path, standing in for HPKS)
    ``<out>/demo-brain/sub-XXX.nii.gz``: axial magnitude slabs of ``slices`` slices
    at twice the configured size in plane (``oucr prepare`` crops and resamples).

``demo-fastmri`` (the fastMRI single-coil path, standing in for fastMRI knee)
    ``<out>/demo-fastmri/singlecoil_train/file9XXXXXX.h5`` and ``singlecoil_val/``
    in the exact fastMRI single-coil layout: complex64 ``kspace`` with
    ``readout_oversampling``-fold (default two-fold) readout oversampling of a
    complex image with a smooth phase, and a phase-encode matrix 368/320 wider than the
    reconstruction (like fastMRI's 640 x 368 for 320 x 320), ``reconstruction_esc``,
    the attributes ``acquisition``, ``max``, ``norm``, ``patient_id`` and an ISMRMRD
    ``ismrmrd_header``. Slices are coronal, so the two datasets differ in anatomy.

Sizes come from the config's ``demo_data`` section, every key optional
(defaults in :data:`DEFAULTS`)::

    demo_data:
      seed: 0
      demo-brain: {subjects: 16, slices: 8, size: 64}
      demo-fastmri: {train_subjects: 12, test_subjects: 4, slices: 8, size: 64, readout_oversampling: 2}

Subject ``i`` of a dataset depends only on ``(seed, dataset, i)``, so the same
seed gives the same files (the NIfTI files byte for byte) and adding subjects
leaves the earlier ones unchanged.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import logging
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from oucr.config import load_config
from oucr.errors import ConfigError
from oucr.fft import center_crop, fft2c, ifft2c
from oucr.io import atomic_directory, atomic_path

log = logging.getLogger(__name__)

DEFAULTS: Dict[str, Dict[str, int]] = {
    "demo-brain": {"subjects": 16, "slices": 8, "size": 64},
    "demo-fastmri": {"train_subjects": 12, "test_subjects": 4, "slices": 8, "size": 64, "readout_oversampling": 2},
}
KINDS = tuple(DEFAULTS)
_TEMPLATE_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


@dataclass
class Anatomy:
    """The template volumes (RAS, 1 mm) and the voxel -> mm affine."""

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    affine: np.ndarray

    @property
    def inverse(self) -> np.ndarray:
        """The mm -> voxel affine."""
        return np.linalg.inv(self.affine)

    @property
    def extent(self) -> Tuple[np.ndarray, np.ndarray]:
        """Lowest and highest corner (mm) of the template's box."""
        corners = np.array([[0, 0, 0, 1], [*(np.array(self.t1.shape) - 1), 1]], dtype=float) @ self.affine.T
        return corners[:, :3].min(axis=0), corners[:, :3].max(axis=0)


def load_anatomy() -> Anatomy:
    """Read the MNI152 template files bundled in the nilearn package (no network)."""
    import nibabel as nib

    data_dir = resources.files("nilearn.datasets") / "data"
    vols = {}
    affine = None
    for key, name in _TEMPLATE_FILES.items():
        with resources.as_file(data_dir / name) as path:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: the MNI152 template is not bundled in this nilearn installation")
            img = nib.as_closest_canonical(nib.load(str(path)))
            vols[key] = np.asarray(img.dataobj, dtype=np.float32)
            affine = img.affine if affine is None else affine
    t1 = vols["t1"] / vols["t1"].max()
    return Anatomy(t1=t1, gm=np.clip(vols["gm"], 0, 1), wm=np.clip(vols["wm"], 0, 1), affine=affine)


def _coarse_field(rng: np.random.Generator, points_mm: np.ndarray, grid: int, amplitude: float,
                  extent: Tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """A smooth random scalar field: random values on a coarse grid, cubic interpolation."""
    lo, hi = extent
    coarse = rng.uniform(-amplitude, amplitude, size=(grid, grid, grid))
    idx = (points_mm - lo) / (hi - lo) * (grid - 1)
    return ndimage.map_coordinates(coarse, idx.T, order=3, mode="nearest")


def _rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    ax, ay, az = np.deg2rad(rng.uniform(-max_deg, max_deg, 3))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rx @ ry @ rz


class VirtualSubject:
    """A random, smooth variation of the template, sampled at any points (mm).

    Args:
        anatomy: the template.
        rng: the subject's random generator (all its randomness comes from it).
    """

    def __init__(self, anatomy: Anatomy, rng: np.random.Generator) -> None:
        self.anatomy = anatomy
        self.rng = rng
        self.linear = _rotation(rng, 6.0) @ np.diag(rng.uniform(0.92, 1.08, 3))
        self.shift = rng.uniform(-4.0, 4.0, 3)
        self.gamma = rng.uniform(0.8, 1.25)
        self.gm_gain = rng.uniform(-0.15, 0.15)
        self.wm_gain = rng.uniform(-0.15, 0.15)
        self.noise_level = rng.uniform(0.01, 0.03)
        self._field_seeds = rng.integers(0, 2**31, size=5)
        self.phase_coeffs = rng.uniform(-1.0, 1.0, 6) * np.array([np.pi, 1.5, 1.5, 0.8, 0.8, 0.8])
        # one stream for all noise draws, so that successive slices get independent noise
        self._noise_rng = np.random.default_rng(self._field_seeds[4])

    def sample(self, points_mm: np.ndarray) -> np.ndarray:
        """Magnitude image values at ``points_mm`` (``(N, 3)``, subject space, mm)."""
        # the random fields span the template's box, so they are one smooth 3-D field
        # whatever the sampled plane (slices of one subject deform coherently)
        extent = self.anatomy.extent
        disp = np.stack([
            _coarse_field(np.random.default_rng(self._field_seeds[i]), points_mm, 5, 3.0, extent) for i in range(3)
        ], axis=1)
        template_mm = (points_mm + disp - self.shift) @ np.linalg.inv(self.linear).T
        vox = np.c_[template_mm, np.ones(len(template_mm))] @ self.anatomy.inverse.T
        coords = vox[:, :3].T
        t1 = ndimage.map_coordinates(self.anatomy.t1, coords, order=1, mode="constant")
        gm = ndimage.map_coordinates(self.anatomy.gm, coords, order=1, mode="constant")
        wm = ndimage.map_coordinates(self.anatomy.wm, coords, order=1, mode="constant")
        image = np.clip(t1, 0, None) ** self.gamma * (1 + self.gm_gain * gm + self.wm_gain * wm)
        bias = np.exp(_coarse_field(np.random.default_rng(self._field_seeds[3]), points_mm, 3, 0.2, extent))
        return (image * bias).astype(np.float32)

    def phase(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Smooth phase (radians) over in-plane coordinates ``u, v`` in [-1, 1]."""
        c = self.phase_coeffs
        return c[0] + c[1] * u + c[2] * v + c[3] * u * v + c[4] * u**2 + c[5] * v**2

    def noise(self, shape: Tuple[int, ...], reference: float) -> np.ndarray:
        """Complex Gaussian noise with standard deviation ``noise_level * reference``."""
        g = self._noise_rng
        sigma = self.noise_level * reference / np.sqrt(2)
        return (g.standard_normal(shape) + 1j * g.standard_normal(shape)) * sigma


def brain_subject(anatomy: Anatomy, rng: np.random.Generator, slices: int, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Axial magnitude slab ``(X, Y, Z)`` (RAS) of one virtual subject and its NIfTI affine."""
    subject = VirtualSubject(anatomy, rng)
    n = 2 * size  # the prepare step crops to the tissue and resamples to `size`
    xs = np.linspace(-110, 110, n)  # square pixels: the same 220 mm field of view as ys
    ys = np.linspace(-125, 95, n)
    spacing_z = 5.0
    z0 = 12.0 + rng.uniform(-5, 5) - spacing_z * (slices - 1) / 2
    zs = z0 + spacing_z * np.arange(slices)
    gx, gy, gz = np.meshgrid(xs, ys, zs, indexing="ij")
    points = np.stack([gx, gy, gz], axis=-1).reshape(-1, 3)
    image = subject.sample(points).reshape(n, n, slices)
    noisy = np.abs(image + subject.noise(image.shape, float(image.max())))
    affine = np.diag([xs[1] - xs[0], ys[1] - ys[0], spacing_z, 1.0])
    affine[:3, 3] = [xs[0], ys[0], zs[0]]
    return noisy.astype(np.float32), affine


def fastmri_subject(
    anatomy: Anatomy, rng: np.random.Generator, slices: int, size: int, oversampling: int
) -> Tuple[np.ndarray, str]:
    """Coronal complex k-space ``(slices, oversampling * size, W)`` of one subject, and its acquisition."""
    subject = VirtualSubject(anatomy, rng)
    fov = 200.0
    width = int(2 * round(size * 368 / 320 / 2))
    height = oversampling * size
    step = fov / size
    superres = 2  # sample finer, then average, against aliasing of fine anatomy
    rows = (np.arange(height * superres) - (height * superres - 1) / 2) * step / superres
    cols = (np.arange(width * superres) - (width * superres - 1) / 2) * step / superres
    y0 = -18.0 + rng.uniform(-4, 4)
    ys = y0 + 6.0 * (np.arange(slices) - (slices - 1) / 2)
    acquisition = "CORPD_FBK" if rng.uniform() < 0.5 else "CORPDFS_FBK"
    kspace = np.zeros((slices, height, width), np.complex64)
    u, v = np.meshgrid(np.linspace(-1, 1, width), np.linspace(-1, 1, height))
    for i, y in enumerate(ys):
        rr, cc = np.meshgrid(-rows + 15.0, cols, indexing="ij")  # superior at the top, centred on the brain
        pts = np.stack([cc, np.full_like(rr, y), rr], axis=-1).reshape(-1, 3)
        mag = subject.sample(pts).reshape(height * superres, width * superres)
        mag = mag.reshape(height, superres, width, superres).mean(axis=(1, 3))
        if acquisition == "CORPDFS_FBK":
            mag = mag**1.3  # a different, darker contrast for the fat-suppressed acquisition
        image = mag * np.exp(1j * subject.phase(u, v))
        image = image + subject.noise(image.shape, float(mag.max()))
        kspace[i] = fft2c(image).astype(np.complex64)
    return kspace, acquisition


def ismrmrd_header(encoded: Tuple[int, int], recon: Tuple[int, int], fov: float = 200.0) -> str:
    """A minimal ISMRMRD XML header with the fields fastMRI readers use.

    Args:
        encoded: encoded matrix ``(x, y)``: readout (oversampled) and phase encoding.
        recon: reconstruction matrix ``(x, y)``.
        fov: reconstruction field of view in mm (square pixels).
    """
    ex, ey = encoded
    rx, ry = recon
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">\n'
        "  <encoding>\n"
        f"    <encodedSpace><matrixSize><x>{ex}</x><y>{ey}</y><z>1</z></matrixSize>"
        f"<fieldOfView_mm><x>{fov * ex / rx:g}</x><y>{fov * ey / ry:g}</y><z>4.5</z></fieldOfView_mm></encodedSpace>\n"
        f"    <reconSpace><matrixSize><x>{rx}</x><y>{ry}</y><z>1</z></matrixSize>"
        f"<fieldOfView_mm><x>{fov}</x><y>{fov}</y><z>4.5</z></fieldOfView_mm></reconSpace>\n"
        "    <encodingLimits>\n"
        "      <kspace_encoding_step_1>"
        f"<minimum>0</minimum><maximum>{ey - 1}</maximum><center>{ey // 2}</center></kspace_encoding_step_1>\n"
        "    </encodingLimits>\n"
        "  </encoding>\n"
        "</ismrmrdHeader>\n"
    )


def write_fastmri_file(path: Path, kspace: np.ndarray, acquisition: str, patient_id: str, size: int) -> None:
    """Write one file in the fastMRI single-coil layout, atomically."""
    import h5py

    esc = np.abs(center_crop(ifft2c(kspace), (size, size))).astype(np.float32)
    header = ismrmrd_header((kspace.shape[-2], kspace.shape[-1]), (size, size))
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("kspace", data=kspace.astype(np.complex64))
            f.create_dataset("reconstruction_esc", data=esc)
            f.create_dataset("ismrmrd_header", data=header.encode())
            f.attrs["acquisition"] = acquisition
            f.attrs["max"] = float(esc.max())
            f.attrs["norm"] = float(np.linalg.norm(esc))
            f.attrs["patient_id"] = patient_id
            f.attrs["demo"] = "virtual subject derived from the MNI152 template (nilearn); not patient data"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _settings(config: Mapping[str, Any], kind: str) -> Dict[str, int]:
    """The sizes of one demo dataset: :data:`DEFAULTS` updated by ``demo_data.<kind>``."""
    section = dict(DEFAULTS[kind])
    given = (config.get("demo_data") or {}).get(kind) or {}
    if not isinstance(given, Mapping):
        raise ConfigError(f"demo_data.{kind} must be a mapping, got {given!r}")
    unknown = set(given) - set(section)
    if unknown:
        raise ConfigError(
            f"unknown key(s) in demo_data.{kind}: {', '.join(sorted(unknown))}; known: {', '.join(section)}"
        )
    section.update(given)
    for k, v in section.items():
        if not _is_int(v) or v < 1:
            raise ConfigError(f"demo_data.{kind}.{k} must be a positive integer, got {v!r}")
    if section["size"] < 16:
        raise ConfigError(f"demo_data.{kind}.size must be at least 16, got {section['size']}")
    return section


def demo_seed(config: Mapping[str, Any]) -> int:
    """``demo_data.seed`` (else the global ``seed``, else 0), after checking the section's keys."""
    section = config.get("demo_data") or {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"demo_data must be a mapping, got {section!r}")
    unknown = set(section) - {"seed", *KINDS}
    if unknown:
        raise ConfigError(f"unknown key(s) in demo_data: {', '.join(sorted(unknown))}; known: seed, {', '.join(KINDS)}")
    seed = section.get("seed", config.get("seed", 0))
    if not _is_int(seed):
        raise ConfigError(f"demo_data.seed must be an integer, got {seed!r}")
    return seed


def _rng(seed: int, kind: str, index: int) -> np.random.Generator:
    tag = int.from_bytes(hashlib.sha256(kind.encode()).digest()[:4], "little")
    return np.random.default_rng([seed, tag, index])


def build_demo_brain(config: Mapping[str, Any], folder: Path, anatomy: Anatomy, seed: int) -> int:
    """Write the ``demo-brain`` NIfTI files into ``folder``; returns the number of subjects."""
    import nibabel as nib

    s = _settings(config, "demo-brain")
    for i in range(s["subjects"]):
        data, affine = brain_subject(anatomy, _rng(seed, "demo-brain", i), s["slices"], s["size"])
        path = folder / f"sub-{i + 1:03d}.nii.gz"
        image = nib.Nifti1Image(data, affine)
        image.header.set_xyzt_units("mm")
        # gzip without a timestamp: the same seed gives byte-identical files
        payload = gzip.compress(image.to_bytes(), compresslevel=6, mtime=0)
        with atomic_path(path) as tmp:
            tmp.write_bytes(payload)
        log.info("wrote %s (%d x %d x %d)", path, *data.shape)
    return s["subjects"]


def build_demo_fastmri(config: Mapping[str, Any], folder: Path, anatomy: Anatomy, seed: int) -> int:
    """Write the ``demo-fastmri`` files into ``folder``/singlecoil_{train,val}; returns the number of subjects."""
    s = _settings(config, "demo-fastmri")
    total = 0
    for split, folder_name, count, base in (
        ("train", "singlecoil_train", s["train_subjects"], 9000000),
        ("val", "singlecoil_val", s["test_subjects"], 9100000),
    ):
        (folder / folder_name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            rng = _rng(seed, f"demo-fastmri-{split}", i)
            kspace, acquisition = fastmri_subject(anatomy, rng, s["slices"], s["size"], s["readout_oversampling"])
            path = folder / folder_name / f"file{base + i + 1}.h5"
            write_fastmri_file(path, kspace, acquisition, f"demo-{split}-{i + 1:03d}", s["size"])
            log.info("wrote %s (%s, k-space %s)", path, acquisition, " x ".join(map(str, kspace.shape)))
            total += 1
    return total


BUILDERS = {"demo-brain": build_demo_brain, "demo-fastmri": build_demo_fastmri}


def build_demo_data(
    config: Mapping[str, Any], out: Path, kinds: Sequence[str] = KINDS, seed: Optional[int] = None
) -> Dict[str, int]:
    """Build the requested demo datasets as ``out/<kind>/`` (each replaced whole).

    Each dataset is written into a temporary folder beside its destination and
    renamed into place when complete, so a rerun with other sizes leaves no stale
    file and an interrupted run leaves the previous dataset (or nothing).

    Args:
        config: a config with an optional ``demo_data`` section.
        out: the parent folder.
        kinds: which datasets (``demo-brain``, ``demo-fastmri``).
        seed: overrides ``demo_data.seed``.

    Returns:
        the number of subjects written per kind.
    """
    seed = demo_seed(config) if seed is None else int(seed)
    for kind in kinds:
        if kind not in BUILDERS:
            raise ConfigError(f"unknown demo dataset {kind!r}; known: {', '.join(KINDS)}")
        _settings(config, kind)  # fail on a bad section before any work
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    anatomy = load_anatomy()
    counts = {}
    for kind in kinds:
        with atomic_directory(out / kind) as tmp:
            counts[kind] = BUILDERS[kind](config, tmp, anatomy, seed)
    log.info("demo data (seed %d) %s in %.1f s -> %s", seed, counts, time.perf_counter() - t0, out)
    return counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr demo-data``."""
    parser.add_argument("--config", help="config with a demo_data section (default: built-in sizes)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (demo-brain/, demo-fastmri/)")
    parser.add_argument("--kind", choices=KINDS, action="append", help="build only this dataset (repeatable)")
    parser.add_argument("--seed", type=int, help="override demo_data.seed")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr demo-data``."""
    config = load_config(args.config) if args.config else {}
    build_demo_data(config, args.out, tuple(args.kind) if args.kind else KINDS, seed=args.seed)
    return 0
