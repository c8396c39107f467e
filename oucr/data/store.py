"""The prepared store: one HDF5 file per volume plus a manifest with the splits.

Layout (docs/ARCHITECTURE.md)::

    <store>/manifest.csv
    <store>/volumes/<volume>.h5     kspace, target (complex64, (S, H, W)) + attributes

Every reader (fastMRI single-coil, magnitude volumes) produces :class:`PreparedVolume`
objects; :func:`write_store` writes them atomically and the manifest last, so a
store with a manifest is complete. :class:`PreparedStore` reads it back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import h5py
import numpy as np
import pandas as pd

from oucr.errors import ConfigError, DataError
from oucr.fft import fft2c
from oucr.io import atomic_path, decoded_attrs, open_hdf5, read_csv_file

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ["volume", "file", "subject", "split", "n_slices", "height", "width", "source", "format"]
SPLITS = ("train", "val", "test")
Share = Union[int, float]


@dataclass
class PreparedVolume:
    """One volume ready for the store.

    Args:
        volume: identifier (the raw file's stem).
        subject: subject identifier (splits are disjoint in subjects).
        target: complex reference images ``(S, H, W)``.
        source: path of the raw file.
        format: ``fastmri`` or ``magnitude``.
        slices: index of each kept slice in the source volume.
        acquisition: fastMRI acquisition (``""`` if none).
        split: ``train``, ``val`` or ``test`` (may be assigned later).
    """

    volume: str
    subject: str
    target: np.ndarray
    source: str
    format: str
    slices: np.ndarray
    acquisition: str = ""
    split: str = ""
    extra_attrs: Dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.target.ndim != 3 or self.target.shape[0] == 0:
            raise DataError(self.source, f"expected a non-empty (slices, H, W) volume, got shape {self.target.shape}")
        if not np.isfinite(self.target).all():
            raise DataError(self.source, "the image contains NaN or Inf values")
        self.target = self.target.astype(np.complex64)
        self.slices = np.asarray(self.slices, dtype=np.int64)


def write_volume(path: Path, vol: PreparedVolume) -> None:
    """Write one prepared volume atomically (k-space derived from the target)."""
    kspace = fft2c(vol.target).astype(np.complex64)
    magnitude = np.abs(vol.target)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("kspace", data=kspace)
            f.create_dataset("target", data=vol.target)
            f.attrs["volume"] = vol.volume
            f.attrs["subject"] = vol.subject
            f.attrs["source"] = vol.source
            f.attrs["format"] = vol.format
            f.attrs["acquisition"] = vol.acquisition
            f.attrs["max"] = float(magnitude.max())
            f.attrs["norm"] = float(np.linalg.norm(magnitude))
            f.attrs["slices"] = vol.slices
            for k, v in vol.extra_attrs.items():
                f.attrs[k] = v


def write_store(out_dir: Union[str, Path], volumes: Iterable[PreparedVolume]) -> pd.DataFrame:
    """Write volumes and then the manifest into ``out_dir``.

    Volumes whose ``split`` is empty are rejected: assign splits first
    (:func:`assign_splits`). Identifiers must be unique.

    Returns:
        the manifest.
    """
    out = Path(out_dir)
    (out / "volumes").mkdir(parents=True, exist_ok=True)
    rows = []
    seen = set()
    for vol in volumes:
        if vol.split not in SPLITS:
            raise ValueError(f"volume {vol.volume} has no split assigned")
        if vol.volume in seen:
            raise DataError(vol.source, f"duplicate volume identifier {vol.volume!r}")
        seen.add(vol.volume)
        rel = f"volumes/{vol.volume}.h5"
        write_volume(out / rel, vol)
        s, h, w = vol.target.shape
        rows.append({"volume": vol.volume, "file": rel, "subject": vol.subject, "split": vol.split,
                     "n_slices": s, "height": h, "width": w, "source": vol.source, "format": vol.format})
        log.info("wrote %s (%s, subject %s, %d slices of %d x %d) from %s", rel, vol.split, vol.subject, s, h, w,
                 vol.source)
    if not rows:
        raise DataError(out, "no volume to write (every input was skipped)")
    # the rows are built in MANIFEST_COLUMNS order, so leaving out `columns` is an equivalent mutant
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS).sort_values("volume").reset_index(drop=True)  # pragma: no mutate
    with atomic_path(out / "manifest.csv") as tmp:
        manifest.to_csv(tmp, index=False)  # pragma: no mutate (index=None is as falsy)
    return manifest


def split_subjects(
    subjects: Sequence[str],
    train: Share = 0,
    val: Share = 0,
    test: Share = 0,
    seed: int = 0,
) -> Dict[str, str]:
    """Deterministic, subject-disjoint assignment to train/val/test.

    The shares are either all integers (subject counts; subjects beyond their sum
    are left out) or fractions (any float among them; they must sum to at most 1,
    ``round(sum * n)`` subjects are shared out by largest remainder, and a positive
    fraction gets at least one subject while another split has two). The
    assignment depends only on the set of subjects and ``seed``, not on their order.

    Args:
        subjects: subject identifiers (duplicates ignored).
        train, val, test: share of each split (count or fraction).
        seed: shuffling seed.

    Returns:
        ``{subject: split}`` for every assigned subject.

    Raises:
        ConfigError: for negative or non-numeric shares, fractions summing above 1,
            counts above the number of subjects, or a positive share that would get
            no subject.
    """
    unique = sorted(set(subjects))
    n = len(unique)
    shares = {"train": train, "val": val, "test": test}
    for k, v in shares.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not v >= 0:
            raise ConfigError(f"split.{k} must be a non-negative count or fraction, got {v!r}")
    if all(isinstance(v, (int, np.integer)) for v in shares.values()):
        counts = {k: int(v) for k, v in shares.items()}
        if sum(counts.values()) > n:
            raise ConfigError(f"split asks for {sum(counts.values())} subjects ({counts}) but only {n} are available")
    else:
        total = float(sum(shares.values()))
        if total > 1 + 1e-9:
            raise ConfigError(f"split fractions sum to {total:g} > 1 ({shares}); give fractions or integer counts")
        wanted = min(int(np.floor(total * n + 0.5)), n)
        exact = {k: float(v) * n for k, v in shares.items()}
        counts = {k: int(np.floor(x)) for k, x in exact.items()}
        # the rounding remainder goes to the largest fractional parts (ties: train, val, test)
        for k in sorted(SPLITS, key=lambda k: counts[k] - exact[k])[: max(wanted - sum(counts.values()), 0)]:
            counts[k] += 1
        # a positive fraction gets at least one subject, taken from the largest split
        for k in SPLITS:
            if shares[k] > 0 and counts[k] == 0:
                largest = max(SPLITS, key=lambda j: counts[j])
                if counts[largest] > 1:
                    counts[largest] -= 1
                    counts[k] = 1
    for k in SPLITS:
        if shares[k] > 0 and counts[k] == 0:
            raise ConfigError(f"too few subjects ({n}) to give the {k} split (share {shares[k]!r}) at least one")
    order = np.random.default_rng(seed).permutation(n)
    assignment: Dict[str, str] = {}
    start = 0
    for k in SPLITS:
        for i in order[start : start + counts[k]]:
            assignment[unique[i]] = k
        start += counts[k]
    return assignment


def assign_splits(volumes: List[PreparedVolume], assignment: Mapping[str, str]) -> List[PreparedVolume]:
    """Set each volume's split from its subject; volumes of unassigned subjects are dropped."""
    kept = []
    for v in volumes:
        split = assignment.get(v.subject)
        if split:
            v.split = split
            kept.append(v)
    return kept


def read_manifest(store_dir: Union[str, Path], required: Sequence[str] = tuple(MANIFEST_COLUMNS)) -> pd.DataFrame:
    """Read and check ``<store>/manifest.csv``, the one reader of the manifest.

    Args:
        store_dir: the store folder.
        required: the columns the caller needs (all of :data:`MANIFEST_COLUMNS` by default;
            the masks step needs only ``volume``, ``split`` and ``width``).

    Returns:
        the manifest sorted by volume; ``width`` and ``height`` (when present) as integers.

    Raises:
        DataError: naming the manifest if it is missing, unreadable, lacks a required column,
            names an unknown split, repeats a volume or has a size that is not a positive integer.
    """
    path = Path(store_dir) / "manifest.csv"
    if not path.is_file():
        raise DataError(path, "not a prepared store (manifest.csv missing); run `oucr prepare` first")
    manifest = read_csv_file(path, "manifest", required, dtype={"volume": str, "subject": str})
    if "split" in manifest.columns:
        bad = sorted(set(manifest["split"].astype(str)) - set(SPLITS))
        if bad:
            raise DataError(path, f"unknown split name(s) {bad}")
    duplicated = sorted(set(manifest.loc[manifest["volume"].duplicated(), "volume"]))
    if duplicated:
        raise DataError(path, f"manifest lists volume(s) more than once: {', '.join(duplicated[:5])}")
    for column in ("width", "height", "n_slices"):
        if column not in manifest.columns:
            continue
        values = pd.to_numeric(manifest[column], errors="coerce")
        bad = manifest.loc[~((values > 0) & (values == values.round())), "volume"].tolist()
        if bad:
            raise DataError(path, f"{column} is not a positive integer for volume(s) {', '.join(map(str, bad[:5]))}")
        manifest[column] = values.astype(int)
    return manifest.sort_values("volume").reset_index(drop=True)


class PreparedStore:
    """Read access to a prepared store.

    Args:
        root: the store folder (holding ``manifest.csv``).

    Raises:
        DataError: if the manifest is missing or malformed.
    """

    def __init__(self, root: Union[str, Path]) -> None:
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        # plain dicts (not itertuples' namedtuples), so that the store pickles into DataLoader workers
        # pandas reads the orient case-insensitively ("RECORDS" is an equivalent mutant)
        self._by_volume = {r["volume"]: r for r in self.manifest.to_dict("records")}  # pragma: no mutate

    def volumes(self, split: Optional[str] = None) -> List[str]:
        """Volume identifiers (sorted), optionally of one split."""
        m = self.manifest if split is None else self.manifest[self.manifest["split"] == split]
        return list(m["volume"])

    def slices(self, split: Optional[str] = None) -> List[Tuple[str, int]]:
        """Every ``(volume, slice)`` pair, sorted by volume then slice."""
        m = self.manifest if split is None else self.manifest[self.manifest["split"] == split]
        return [(v, s) for v, n in zip(m["volume"], m["n_slices"]) for s in range(int(n))]

    def path(self, volume: str) -> Path:
        """Path of a volume's HDF5 file."""
        if volume not in self._by_volume:
            raise DataError(self.root, f"volume {volume!r} is not in the store")
        return self.root / str(self._by_volume[volume]["file"])

    def width(self, volume: str) -> int:
        """Number of k-space columns of a volume."""
        return int(self._by_volume[volume]["width"])

    def source_slices(self, volume: str) -> np.ndarray:
        """Index of each prepared slice in the source volume (attribute ``slices``), int64 ``(S,)``.

        Raises:
            DataError: naming the file if it is unreadable or the attribute disagrees with the manifest.
        """
        path = self.path(volume)
        with open_hdf5(path, "prepared volume") as f:
            slices = np.asarray(f.attrs.get("slices", np.arange(f["target"].shape[0])), dtype=np.int64)
        expected = int(self._by_volume[volume]["n_slices"])
        if slices.shape != (expected,):
            raise DataError(path, f"attribute 'slices' has {slices.size} entries, the manifest says {expected} slices")
        return slices

    def load(self, volume: str) -> Dict[str, object]:
        """Read a whole volume: ``{"kspace", "target", "attrs"}``."""
        path = self.path(volume)
        with open_hdf5(path, "prepared volume") as f:
            missing = [k for k in ("kspace", "target") if k not in f]
            if missing:
                raise DataError(path, f"prepared volume lacks {', '.join(missing)}; run `oucr prepare` again")
            return {"kspace": f["kspace"][()], "target": f["target"][()], "attrs": decoded_attrs(f)}

    def load_slice(self, volume: str, index: int) -> Dict[str, object]:
        """Read one slice: ``{"kspace" (H, W), "target" (H, W), "max"}``."""
        path = self.path(volume)
        with open_hdf5(path, "prepared volume") as f:
            missing = [k for k in ("kspace", "target") if k not in f] + ([] if "max" in f.attrs else ["attribute max"])
            if missing:
                raise DataError(path, f"prepared volume lacks {', '.join(missing)}; run `oucr prepare` again")
            return {"kspace": f["kspace"][index], "target": f["target"][index], "max": float(f.attrs["max"])}


