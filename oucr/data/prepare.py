"""``oucr prepare``: raw volumes -> the prepared store of one dataset.

The config's ``datasets.<name>`` section says what to read:

``format: magnitude`` (brain volumes, the paper's HPKS protocol)
    ``input``: folder of ``.nii`` / ``.nii.gz`` / ``.h5`` volumes (one subject each);
    ``size``: ``[H, W]`` after cropping/resampling; ``slices_per_volume`` (default 15);
    ``h5_key`` (default ``image``) for HDF5 inputs;
    ``split``: ``{train, val, test}`` as subject counts (integers) or fractions
    (default 0.7 / 0.1 / 0.2; the paper's HPKS split was 102 / 14 / 28).

``format: fastmri`` (single-coil knee)
    ``train_input``: folder of the fastMRI training files (training and validation
    subjects, ``val_fraction`` of the subjects held out, default 0.1);
    ``test_input``: folder of the fastMRI validation files (the test split, as in
    the paper); ``size`` (default: the header's reconstruction size);
    ``acquisitions`` (keep only these, e.g. ``[CORPD_FBK]``; default all);
    ``tissue_slices`` (true, false or a count; see :mod:`oucr.data.fastmri`).

``paper_dataset`` (HPKS or fastMRI) only labels tables. Relative paths are taken
from the current working directory. Splits are subject-disjoint and depend
only on the subjects and the global ``seed``.

The store is built in a temporary folder beside the destination and renamed
into place when complete: an error leaves no partial store behind.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping

from oucr.config import dataset_section, load_config
from oucr.data.fastmri import read_fastmri, scan_fastmri
from oucr.data.store import assign_splits, split_subjects, write_store
from oucr.data.volumes import is_magnitude_file, read_magnitude, volume_name
from oucr.engine.runtime import derive_seed
from oucr.errors import ConfigError, DataError
from oucr.io import apply_default_permissions

log = logging.getLogger(__name__)

DEFAULT_SPLIT = {"train": 0.7, "val": 0.1, "test": 0.2}
MAGNITUDE_KEYS = {"paper_dataset", "format", "input", "size", "slices_per_volume", "h5_key", "split"}
FASTMRI_KEYS = {"paper_dataset", "format", "train_input", "test_input", "size", "val_fraction", "acquisitions",
                "tissue_slices"}


def _folder(section: Mapping[str, Any], key: str, dataset: str) -> Path:
    if key not in section:
        raise ConfigError(f"datasets.{dataset}.{key} is required")
    folder = Path(str(section[key]))
    if not folder.is_dir():
        raise DataError(folder, f"input folder (datasets.{dataset}.{key}) does not exist")
    return folder


def _size(section: Mapping[str, Any], dataset: str, required: bool):
    size = section.get("size")
    if size is None:
        if required:
            raise ConfigError(f"datasets.{dataset}.size is required, e.g. [320, 320]")
        return None
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) and v >= 8 for v in size)):
        raise ConfigError(f"datasets.{dataset}.size must be two integers >= 8, got {size!r}")
    return tuple(size)


def _check_keys(section: Mapping[str, Any], allowed: set, dataset: str) -> None:
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(f"unknown key(s) in datasets.{dataset}: {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _files(folder: Path, predicate) -> List[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and predicate(p))
    if not files:
        raise DataError(folder, "no input files found in the folder")
    return files


def prepare_magnitude(section: Mapping[str, Any], dataset: str, out_dir: Path, seed: int) -> int:
    """Prepare a folder of magnitude volumes; returns the number of volumes."""
    _check_keys(section, MAGNITUDE_KEYS, dataset)
    folder = _folder(section, "input", dataset)
    size = _size(section, dataset, required=True)
    count = section.get("slices_per_volume", 15)
    if count is not None and (not isinstance(count, int) or count < 1):
        raise ConfigError(f"datasets.{dataset}.slices_per_volume must be a positive integer, got {count!r}")
    files = _files(folder, is_magnitude_file)
    names = [volume_name(p) for p in files]
    if len(set(names)) != len(names):
        raise DataError(folder, "two files share a volume name (e.g. x.nii and x.nii.gz)")
    assignment = split_subjects(names, section.get("split") or DEFAULT_SPLIT, derive_seed(seed, dataset, "split"))

    def volumes():
        for path in files:
            vol = read_magnitude(path, size, count, section.get("h5_key", "image"))
            yield from assign_splits([vol], assignment)

    return len(write_store(out_dir, volumes()))


def prepare_fastmri(section: Mapping[str, Any], dataset: str, out_dir: Path, seed: int) -> int:
    """Prepare fastMRI single-coil train/val folders; returns the number of volumes."""
    _check_keys(section, FASTMRI_KEYS, dataset)
    train_dir = _folder(section, "train_input", dataset)
    test_dir = _folder(section, "test_input", dataset)
    size = _size(section, dataset, required=False)
    val_fraction = section.get("val_fraction", 0.1)
    if not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise ConfigError(f"datasets.{dataset}.val_fraction must lie in (0, 1), got {val_fraction!r}")
    acquisitions = section.get("acquisitions")
    tissue = section.get("tissue_slices", True)
    is_h5 = lambda p: p.suffix in (".h5", ".hdf5")  # noqa: E731

    def scan(folder: Path) -> List[Dict[str, str]]:
        metas = []
        for p in _files(folder, is_h5):
            meta = scan_fastmri(p)
            if acquisitions and meta["acquisition"] not in acquisitions:
                log.info("skipping %s: acquisition %s not selected", p, meta["acquisition"])
                continue
            metas.append({**meta, "path": str(p)})
        if not metas:
            raise DataError(folder, f"no file with acquisition in {acquisitions}")
        return metas

    train_meta, test_meta = scan(train_dir), scan(test_dir)
    overlap = {m["subject"] for m in train_meta} & {m["subject"] for m in test_meta}
    if overlap:
        log.warning("%d subject(s) occur in both the train and test folders; kept as given", len(overlap))
    held_out = split_subjects([m["subject"] for m in train_meta],
                              {"train": 1 - float(val_fraction), "val": float(val_fraction)},
                              derive_seed(seed, dataset, "split"))

    def volumes():
        for metas, split_of in ((train_meta, lambda m: held_out[m["subject"]]), (test_meta, lambda m: "test")):
            for m in metas:
                vol = read_fastmri(m["path"], size, tissue)
                vol.split = split_of(m)
                yield vol

    return len(write_store(out_dir, volumes()))


def prepare_dataset(config: Mapping[str, Any], dataset: str, out_dir: Path) -> int:
    """Build the prepared store of ``dataset`` at ``out_dir`` (replacing an old one).

    Returns:
        the number of volumes written.

    Raises:
        ConfigError, DataError: with nothing left at ``out_dir`` (an existing store
        there stays untouched).
    """
    section = dataset_section(config, dataset)
    seed = int(config.get("seed", 0))
    fmt = section.get("format")
    builders = {"magnitude": prepare_magnitude, "fastmri": prepare_fastmri}
    if fmt not in builders:
        raise ConfigError(f"datasets.{dataset}.format must be 'magnitude' or 'fastmri', got {fmt!r}")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    t0 = time.perf_counter()
    try:
        n = builders[fmt](section, dataset, tmp, seed)
        apply_default_permissions(tmp, directory=True)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("prepared %s: %d volumes in %.1f s -> %s", dataset, n, time.perf_counter() - t0, out_dir)
    return n


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr prepare``."""
    parser.add_argument("--config", required=True, help="YAML config file (or inline JSON)")
    parser.add_argument("--dataset", required=True, help="name of a section under `datasets`")
    parser.add_argument("--out", type=Path, required=True, help="the prepared store folder to write")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr prepare``."""
    prepare_dataset(load_config(args.config), args.dataset, args.out)
    return 0
