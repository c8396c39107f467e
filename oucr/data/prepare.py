"""``oucr prepare``: raw volumes -> the prepared store of one dataset.

The config's ``datasets.<name>`` section says what to read. Keys:

``format: magnitude`` (brain volumes, the paper's HPKS protocol; :mod:`oucr.data.volumes`)
    ``input`` (required): folder of ``.nii`` / ``.nii.gz`` / ``.h5`` volumes, one
    subject each (the volume name, the file name without suffix, is the subject);
    ``size`` (required): ``[H, W]`` after cropping/resampling;
    ``slices_per_volume`` (default 15, the paper's): central axial slices with tissue;
    ``h5_key`` (default ``image``): the dataset of HDF5 inputs, ``(slices, H, W)``;
    ``split`` (default ``{train: 0.7, val: 0.1, test: 0.2}``): subject counts when
    all three are integers (the paper's HPKS split was 102 / 14 / 28; subjects
    beyond the sum are left out), fractions otherwise (summing to at most 1).

``format: fastmri`` (single-coil knee; :mod:`oucr.data.fastmri`)
    ``train_input`` (required): folder of the fastMRI training files; they give
    the training split and a held-out validation split of whole subjects;
    ``val_fraction`` (default 0.1) or ``val_subjects`` (an integer count) sizes
    the held-out part (give at most one);
    ``test_input`` (required): folder of the fastMRI validation files, the test
    split (as in the paper);
    ``size``: ``[H, W]`` of the centre crop (default: each file's header
    reconstruction size, 320 x 320 for knee);
    ``acquisitions``: keep only these (e.g. ``[CORPD_FBK, CORPDFS_FBK]``; default all);
    ``tissue_slices`` (default true): true trims noise-only end slices, an integer
    keeps that many central slices, false keeps all.

``paper_dataset`` (``HPKS``, ``fastMRI`` or ``none``) and ``stand_in`` only decide which paper
column a table compares with (:mod:`oucr.tables`). Relative paths
are taken from the current working directory. Splits are subject-disjoint and
depend only on the subjects, the seed and the dataset name.

The store is built in a temporary folder beside the destination and renamed
into place when complete: an error (a :class:`~oucr.errors.DataError` naming the
file and the problem, or a :class:`~oucr.errors.ConfigError` naming the key)
leaves nothing new behind, and an existing store at the destination untouched.
Progress is logged at INFO, one line per volume, then a summary.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from oucr.config import dataset_section, load_config
from oucr.data.fastmri import read_fastmri, scan_fastmri
from oucr.data.store import assign_splits, split_subjects, write_store
from oucr.data.volumes import is_magnitude_file, read_magnitude, volume_name
from oucr.seeding import derive_seed
from oucr.errors import ConfigError, DataError
from oucr.io import atomic_directory

log = logging.getLogger(__name__)

DEFAULT_SPLIT = {"train": 0.7, "val": 0.1, "test": 0.2}
DEFAULT_VAL_FRACTION = 0.1
#: central slices with tissue kept per magnitude volume (the paper's 15)
DEFAULT_SLICES_PER_VOLUME = 15
COMMON_KEYS = {"paper_dataset", "stand_in", "format"}
MAGNITUDE_KEYS = COMMON_KEYS | {"input", "size", "slices_per_volume", "h5_key", "split"}
FASTMRI_KEYS = COMMON_KEYS | {"train_input", "test_input", "size", "val_fraction", "val_subjects", "acquisitions",
                              "tissue_slices"}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_keys(section: Mapping[str, Any], allowed: set, name: str) -> None:
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown key(s) in datasets.{name}: {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def input_folder(section: Mapping[str, Any], key: str, name: str) -> Path:
    """The existing folder that ``datasets.<name>.<key>`` names.

    Raises:
        ConfigError: if the key is missing or empty.
        DataError: if the folder does not exist.
    """
    if section.get(key) in (None, ""):
        raise ConfigError(f"datasets.{name}.{key} is required (a folder)")
    folder = Path(str(section[key]))
    if not folder.is_dir():
        raise DataError(folder, f"input folder (datasets.{name}.{key}) does not exist")
    return folder


def configured_size(section: Mapping[str, Any], name: str, required: bool) -> Optional[Tuple[int, int]]:
    """``datasets.<name>.size`` as ``(H, W)``, or None when absent and not ``required``.

    Raises:
        ConfigError: if it is required and missing, or not two integers >= 8.
    """
    size = section.get("size")
    if size is None:
        if required:
            raise ConfigError(f"datasets.{name}.size is required, e.g. [64, 64]")
        return None
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(_is_int(v) and v >= 8 for v in size)):
        raise ConfigError(f"datasets.{name}.size must be two integers >= 8, e.g. [64, 64], got {size!r}")
    return int(size[0]), int(size[1])


def configured_slices_per_volume(section: Mapping[str, Any], name: str) -> Optional[int]:
    """``datasets.<name>.slices_per_volume`` (default :data:`DEFAULT_SLICES_PER_VOLUME`; None: all with tissue).

    Raises:
        ConfigError: if it is not a positive integer (or null).
    """
    count = section.get("slices_per_volume", DEFAULT_SLICES_PER_VOLUME)
    if count is not None and (not _is_int(count) or count < 1):
        raise ConfigError(f"datasets.{name}.slices_per_volume must be a positive integer, got {count!r}")
    return count


def configured_tissue_slices(section: Mapping[str, Any], name: str) -> Union[bool, int]:
    """``datasets.<name>.tissue_slices`` of a fastMRI section (default true).

    Raises:
        ConfigError: if it is neither true, false nor a positive count.
    """
    tissue = section.get("tissue_slices", True)
    if not (isinstance(tissue, bool) or (_is_int(tissue) and tissue >= 1)):
        raise ConfigError(f"datasets.{name}.tissue_slices must be true, false or a positive count, got {tissue!r}")
    return tissue


def input_files(folder: Path, predicate: Callable[[Path], bool], what: str) -> List[Path]:
    """The visible files of ``folder`` that ``predicate`` accepts, sorted by name.

    Raises:
        DataError: naming the folder when there is none (``what`` says what was expected).
    """
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and predicate(p))
    if not files:
        raise DataError(folder, f"no input files found in the folder (expected {what})")
    return files


def split_shares(section: Mapping[str, Any], name: str) -> Dict[str, Union[int, float]]:
    """The subject shares of a magnitude section's ``split`` (counts or fractions; default :data:`DEFAULT_SPLIT`).

    Raises:
        ConfigError: for a malformed split.
    """
    split = section.get("split")
    if split is None:
        return dict(DEFAULT_SPLIT)
    if not isinstance(split, Mapping):
        raise ConfigError(f"datasets.{name}.split must map train/val/test to counts or fractions, got {split!r}")
    unknown = sorted(set(split) - {"train", "val", "test"})
    if unknown:
        raise ConfigError(f"datasets.{name}.split: unknown key(s) {', '.join(unknown)}; use train, val, test")
    for k, v in split.items():
        if not _is_number(v) or v < 0:
            raise ConfigError(f"datasets.{name}.split.{k} must be a non-negative count or fraction, got {v!r}")
    return {k: split.get(k, 0) for k in ("train", "val", "test")}


def fastmri_val_share(section: Mapping[str, Any], name: str) -> Tuple[Union[int, float], str]:
    """The held-out validation share of a fastMRI section and the key that gave it.

    Returns:
        ``(count, "val_subjects")`` or ``(fraction, "val_fraction")`` (default
        :data:`DEFAULT_VAL_FRACTION`).

    Raises:
        ConfigError: both keys given, a count that is not a positive integer, or a
            fraction outside (0, 1).
    """
    if "val_fraction" in section and "val_subjects" in section:
        raise ConfigError(f"datasets.{name}: give val_fraction or val_subjects, not both")
    if "val_subjects" in section:
        count = section["val_subjects"]
        if not _is_int(count) or count < 1:
            raise ConfigError(f"datasets.{name}.val_subjects must be a positive integer, got {count!r}")
        return count, "val_subjects"
    fraction = section.get("val_fraction", DEFAULT_VAL_FRACTION)
    if not _is_number(fraction) or not 0 < fraction < 1:
        raise ConfigError(f"datasets.{name}.val_fraction must lie strictly between 0 and 1, got {fraction!r}")
    return float(fraction), "val_fraction"


def fastmri_split_shares(section: Mapping[str, Any], n_subjects: int, name: str,
                         folder: Path) -> Tuple[Dict[str, Union[int, float]], str]:
    """How the ``n_subjects`` subjects of a fastMRI training folder split into training and validation.

    Args:
        section: the ``datasets.<name>`` section (its ``val_subjects`` or ``val_fraction``).
        n_subjects: distinct subjects in the training folder.
        name: the dataset name, for messages.
        folder: the training folder, for messages.

    Returns:
        ``(shares, key)``: the ``train``/``val`` shares for :func:`draw_split` and the key
        they come from (messages about the split name it).

    Raises:
        ConfigError: see :func:`fastmri_val_share`; also a count that leaves no training subject.
    """
    share, key = fastmri_val_share(section, name)
    if key == "val_fraction":
        return {"train": 1.0 - share, "val": share}, key
    if share >= n_subjects:
        raise ConfigError(f"datasets.{name}.val_subjects={share} leaves no training subject "
                          f"({n_subjects} in {folder})")
    return {"train": n_subjects - share, "val": share}, key


def draw_split(subjects: List[str], shares: Mapping[str, Union[int, float]], seed: int, name: str,
               key: str = "split") -> Dict[str, str]:
    """``{subject: split}`` as ``oucr prepare`` draws it (seed derived from ``seed`` and ``name``).

    Raises:
        ConfigError: naming ``datasets.<name>.<key>`` when the shares cannot be met.
    """
    try:
        return split_subjects(subjects, **shares, seed=derive_seed(seed, name, "split"))
    except ConfigError as err:
        raise ConfigError(f"datasets.{name}.{key}: {err}") from err


def prepare_magnitude(section: Mapping[str, Any], out_dir: Path, seed: int, name: str) -> List[Dict[str, Any]]:
    """Prepare a folder of magnitude volumes into ``out_dir``; returns the manifest rows."""
    _check_keys(section, MAGNITUDE_KEYS, name)
    size = configured_size(section, name, required=True)
    count = configured_slices_per_volume(section, name)
    h5_key = section.get("h5_key", "image")
    if not isinstance(h5_key, str) or not h5_key:
        raise ConfigError(f"datasets.{name}.h5_key must be a dataset name, got {h5_key!r}")
    shares = split_shares(section, name)
    folder = input_folder(section, "input", name)
    files = input_files(folder, is_magnitude_file, ".nii, .nii.gz or .h5 volumes")
    names = [volume_name(p) for p in files]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataError(folder, f"several files share the volume name(s) {', '.join(dup)} (e.g. x.nii and x.nii.gz)")
    assignment = draw_split(names, shares, seed, name)
    left_out = len(names) - len(assignment)
    if left_out:
        log.info("%d of %d subjects are in no split (the split counts sum to less)", left_out, len(names))

    def volumes():
        for path in files:
            if volume_name(path) in assignment:
                yield from assign_splits([read_magnitude(path, size, count, h5_key)], assignment)

    return write_store(out_dir, volumes()).to_dict("records")


def prepare_fastmri(section: Mapping[str, Any], out_dir: Path, seed: int, name: str) -> List[Dict[str, Any]]:
    """Prepare fastMRI single-coil train/val folders into ``out_dir``; returns the manifest rows."""
    _check_keys(section, FASTMRI_KEYS, name)
    size = configured_size(section, name, required=False)
    fastmri_val_share(section, name)  # refuse a bad share before any file is read
    acquisitions = section.get("acquisitions")
    if acquisitions is not None and not (
        isinstance(acquisitions, (list, tuple)) and acquisitions and all(isinstance(a, str) for a in acquisitions)
    ):
        raise ConfigError(
            f"datasets.{name}.acquisitions must be a list of names, e.g. [CORPD_FBK], got {acquisitions!r}"
        )
    tissue = configured_tissue_slices(section, name)
    train_dir = input_folder(section, "train_input", name)
    test_dir = input_folder(section, "test_input", name)

    def scan(folder: Path) -> List[Dict[str, str]]:
        metas = []
        for p in input_files(folder, lambda p: p.suffix in (".h5", ".hdf5"), "fastMRI .h5 files"):
            meta = scan_fastmri(p)
            if acquisitions and meta["acquisition"] not in acquisitions:
                log.info("skipping %s: acquisition %s not selected", p, meta["acquisition"] or "(none)")
                continue
            metas.append({**meta, "path": str(p)})
        if not metas:
            raise DataError(folder, f"no file with an acquisition in {list(acquisitions or [])}")
        return metas

    train_meta, test_meta = scan(train_dir), scan(test_dir)
    overlap = {m["subject"] for m in train_meta} & {m["subject"] for m in test_meta}
    if overlap:
        log.warning("%d subject(s) occur in both %s and %s; kept as given", len(overlap), train_dir, test_dir)
    train_subjects = [m["subject"] for m in train_meta]
    shares, key = fastmri_split_shares(section, len(set(train_subjects)), name, train_dir)
    held_out = draw_split(train_subjects, shares, seed, name, key)

    def volumes():
        for m in train_meta:
            vol = read_fastmri(m["path"], size, tissue)
            vol.split = held_out[m["subject"]]
            yield vol
        for m in test_meta:
            vol = read_fastmri(m["path"], size, tissue)
            vol.split = "test"
            yield vol

    return write_store(out_dir, volumes()).to_dict("records")


BUILDERS = {"magnitude": prepare_magnitude, "fastmri": prepare_fastmri}


def prepare_dataset(
    section: Mapping[str, Any], out_dir: Union[str, Path], seed: int = 0, name: str = "dataset"
) -> List[Dict[str, Any]]:
    """Build the prepared store of one dataset at ``out_dir`` (replacing an old one).

    Args:
        section: the ``datasets.<name>`` config section (module docstring).
        out_dir: the store folder to write.
        seed: the global seed (the split seed is derived from it and ``name``).
        name: the dataset name, used in messages and in the split seed.

    Returns:
        the manifest rows written.

    Raises:
        ConfigError, DataError: with nothing new left beside or at ``out_dir``
        (an existing store there stays untouched).
    """
    if not isinstance(section, Mapping):
        raise ConfigError(f"datasets.{name} must be a mapping, got {section!r}")
    fmt = section.get("format")
    if fmt not in BUILDERS:
        raise ConfigError(f"datasets.{name}.format must be 'magnitude' or 'fastmri', got {fmt!r}")
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    with atomic_directory(out_dir) as tmp:
        rows = BUILDERS[fmt](section, tmp, int(seed), name)
    summary = []
    for split in ("train", "val", "test"):
        part = [r for r in rows if r["split"] == split]
        summary.append(f"{split} {len(part)} volumes / {sum(int(r['n_slices']) for r in part)} slices")
    log.info("prepared %s (%s) in %.1f s -> %s: %s", name, fmt, time.perf_counter() - t0, out_dir, ", ".join(summary))
    return rows


def prepare_from_config(config: Mapping[str, Any], dataset: str, out_dir: Union[str, Path]) -> List[Dict[str, Any]]:
    """:func:`prepare_dataset` for ``datasets.<dataset>`` of a whole config (its ``seed``, default 0)."""
    seed = config.get("seed", 0)
    if not _is_int(seed):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    return prepare_dataset(dataset_section(config, dataset), out_dir, seed, dataset)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr prepare``."""
    parser.add_argument("--config", required=True, help="YAML config file (or inline JSON)")
    parser.add_argument("--dataset", required=True, help="name of a section under `datasets`")
    parser.add_argument("--out", type=Path, required=True, help="the prepared store folder to write")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr prepare``."""
    prepare_from_config(load_config(args.config), args.dataset, args.out)
    return 0
