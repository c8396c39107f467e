"""Slice counts of a configured dataset without preparing it: what ``oucr plan`` costs.

Three sources, in this order of preference (:func:`dataset_counts`):

- ``given``: counts from the command line (``oucr plan --slices NAME=TRAIN:VAL[:TEST]``).
- ``store``: the prepared store's ``manifest.csv`` (``oucr.paths.store_dir``) when it exists.
- ``estimate``: the raw folders of the dataset section, reading headers only.
  Magnitude volumes give ``min(slices_per_volume, slices in the file)`` each (an upper
  bound: ``oucr prepare`` keeps only slices with tissue), with the subject split that
  ``oucr prepare`` would draw; fastMRI files give the ``kspace`` slice count of each
  file (no k-space read), cut to ``tissue_slices`` when it is a count (true: every
  slice is counted, an upper bound, as the tissue trim drops a few end slices).

An estimate reads the section with :mod:`oucr.data.prepare`'s own helpers (folders,
size, slice settings, the subject split and the fastMRI validation share), so it counts
the volumes that ``oucr prepare`` would keep in each split. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from oucr.data.prepare import (
    configured_size,
    configured_slices_per_volume,
    configured_tissue_slices,
    draw_split,
    fastmri_split_shares,
    input_files,
    input_folder,
    split_shares,
)
from oucr.data.volumes import HDF5_SUFFIXES, is_magnitude_file, volume_name
from oucr.errors import ConfigError, DataError
from oucr.io import open_hdf5
from oucr.paths import store_dir


@dataclass
class SliceCounts:
    """Slices of one dataset, from its store, its raw folders or the command line."""

    train: int  #: training slices (one epoch without a ``train_slices`` cap)
    val: List[int]  #: slices of each validation volume, in the sorted volume order validation uses
    test: int  #: test slices (reconstructed by every method)
    size: Tuple[int, int]  #: image size ``(H, W)``
    source: str  #: ``store``, ``estimate`` or ``given``
    note: str  #: where the counts come from, in words

    def val_slices(self, val_volumes: Optional[int]) -> int:
        """Slices validated per epoch (the first ``val_volumes`` volumes when capped)."""
        return int(sum(self.val if val_volumes is None else self.val[:val_volumes]))


def counts_from_store(store: Path, dataset: str) -> SliceCounts:
    """Slice counts of a prepared store (its manifest).

    Raises:
        DataError: if the manifest is unreadable or malformed.
    """
    from oucr.data.store import read_manifest

    m = read_manifest(store, required=("volume", "split", "n_slices", "height", "width"))
    by_split = {s: m[m["split"] == s] for s in ("train", "val", "test")}
    sizes = sorted(set(zip(m["height"], m["width"], strict=True)))
    totals = {s: int(part["n_slices"].sum()) for s, part in by_split.items()}
    note = (f"slice counts of '{dataset}' from the prepared store {store}: "
            + ", ".join(f"{len(part)} {s} volumes / {totals[s]} slices" for s, part in by_split.items()))
    if len(sizes) > 1:
        note += f"; sizes {sizes}, the largest is costed"
    return SliceCounts(train=totals["train"], val=[int(n) for n in by_split["val"]["n_slices"]], test=totals["test"],
                       size=max(sizes), source="store", note=note)


def _axial_slices(path: Path, h5_key: str) -> int:
    """Axial slices of a magnitude volume from its header (what ``oucr prepare`` slices along)."""
    if path.name.endswith(HDF5_SUFFIXES):
        with open_hdf5(path) as f:
            if h5_key not in f or len(f[h5_key].shape) != 3:
                raise DataError(path, f"missing (slices, H, W) dataset {h5_key!r}")
            return int(f[h5_key].shape[0])
    import nibabel as nib

    try:
        img = nib.load(str(path))  # reads the header only
        codes = nib.aff2axcodes(img.affine)
    except Exception as err:  # nibabel raises many types for broken files
        raise DataError(path, f"unreadable NIfTI header ({type(err).__name__}: {err})") from err
    axial = [i for i, c in enumerate(codes) if c in ("S", "I")]
    if len(img.shape) not in (3, 4) or not axial:
        raise DataError(path, f"expected a 3-D volume with an axial axis, got shape {img.shape}, axes {codes}")
    return int(img.shape[axial[0]])


def estimate_magnitude(section: Mapping[str, Any], name: str, seed: int) -> SliceCounts:
    """Slice counts of a magnitude dataset from its raw folder (headers only).

    Raises:
        DataError: the folder is missing, empty or holds an unreadable file.
        ConfigError: for an invalid size, slice count or split.
    """
    size = configured_size(section, name, required=True)
    count = configured_slices_per_volume(section, name)
    shares = split_shares(section, name)
    folder = input_folder(section, "input", name)
    files = input_files(folder, is_magnitude_file, ".nii, .nii.gz or .h5 volumes")
    h5_key = str(section.get("h5_key", "image"))
    assignment = draw_split([volume_name(p) for p in files], shares, seed, name)
    per_split: Dict[str, List[Tuple[str, int]]] = {"train": [], "val": [], "test": []}
    for p in files:
        split = assignment.get(volume_name(p))
        if split:
            n = _axial_slices(p, h5_key)
            per_split[split].append((volume_name(p), n if count is None else min(count, n)))
    n_train = sum(n for _, n in per_split["train"])
    each = "all slices with tissue" if count is None else f"at most {count} slices each"
    note = (f"slice counts of '{name}' estimated from {len(files)} magnitude files in {folder}: {each} "
            f"(file headers), {len(per_split['train'])} training / {len(per_split['val'])} validation / "
            f"{len(per_split['test'])} test subjects; an upper bound (prepare keeps only slices with tissue)")
    return SliceCounts(train=n_train, val=[n for _, n in sorted(per_split["val"])],
                       test=sum(n for _, n in per_split["test"]), size=size, source="estimate", note=note)


def _fastmri_slices(path: Path) -> int:
    with open_hdf5(path) as f:
        if "kspace" not in f or len(f["kspace"].shape) != 3:
            raise DataError(path, "missing single-coil 'kspace' (slices, H, W)")
        return int(f["kspace"].shape[0])


def estimate_fastmri(section: Mapping[str, Any], name: str, seed: int) -> SliceCounts:
    """Slice counts of a fastMRI dataset from its raw folders (attributes and ``kspace`` shapes only).

    Raises:
        DataError: a folder is missing or empty, or a file is unreadable.
        ConfigError: for invalid split or slice settings.
    """
    from oucr.data.fastmri import recon_size, scan_fastmri

    tissue = configured_tissue_slices(section, name)
    acquisitions = section.get("acquisitions")
    folders = {key: input_folder(section, key, name) for key in ("train_input", "test_input")}

    def scan(folder: Path) -> List[Dict[str, Any]]:
        metas = []
        for p in input_files(folder, lambda p: p.suffix in (".h5", ".hdf5"), "fastMRI .h5 files"):
            meta = scan_fastmri(p)
            if acquisitions and meta["acquisition"] not in acquisitions:
                continue
            n = _fastmri_slices(p)
            kept = n if isinstance(tissue, bool) else min(int(tissue), n)
            metas.append({**meta, "path": p, "slices": kept})
        if not metas:
            raise DataError(folder, f"no file with an acquisition in {list(acquisitions or [])}")
        return metas

    train_meta, test_meta = scan(folders["train_input"]), scan(folders["test_input"])
    # the held-out validation subjects exactly as `oucr prepare` draws them
    subjects = [m["subject"] for m in train_meta]
    shares, key = fastmri_split_shares(section, len(set(subjects)), name, folders["train_input"])
    held_out = draw_split(subjects, shares, seed, name, key)
    train = [m for m in train_meta if held_out.get(m["subject"]) == "train"]
    val = sorted((m["volume"], m["slices"]) for m in train_meta if held_out.get(m["subject"]) == "val")
    size = configured_size(section, name, required=False) or recon_size(train_meta[0]["path"])
    if tissue is True:
        how = "every slice counted, an upper bound (tissue_slices: true trims the noise-only end slices)"
    elif tissue is False:
        how = "every slice (tissue_slices: false)"
    else:
        how = f"at most {int(tissue)} central slices each (tissue_slices: {int(tissue)})"
    note = (f"slice counts of '{name}' estimated from {len(train_meta)} training and {len(test_meta)} test fastMRI "
            f"files in {folders['train_input']} and {folders['test_input']} (kspace shapes): {how}; "
            f"{len(train)} training / {len(val)} validation volumes"
            + ("" if section.get("size") else
               f"; size {size[0]} x {size[1]} from the header of {train_meta[0]['path']}"))
    return SliceCounts(train=sum(m["slices"] for m in train), val=[n for _, n in val],
                       test=sum(m["slices"] for m in test_meta), size=size, source="estimate", note=note)


def dataset_counts(config: Mapping[str, Any], dataset: str,
                   given: Optional[Tuple[int, int, int]] = None) -> SliceCounts:
    """Slice counts of one dataset: given, from its prepared store, else estimated from its raw folders.

    Raises:
        DataError: a raw folder is missing (with how to plan without it) or a file is unreadable.
        ConfigError: for an invalid dataset section.
    """
    section = dict((config.get("datasets") or {}).get(dataset) or {})
    seed = int(config.get("seed", 0))
    if given is not None:
        size = configured_size(section, dataset, required=False) or (320, 320)
        note = (f"slice counts of '{dataset}' given on the command line: {given[0]} training, {given[1]} "
                f"validation (per epoch), {given[2]} test"
                + ("" if section.get("size") else "; size 320 x 320 assumed"))
        return SliceCounts(given[0], [given[1]], given[2], size, "given", note)
    store = store_dir(config.get("results", "results"), dataset)
    if (store / "manifest.csv").is_file():
        return counts_from_store(store, dataset)
    estimators = {"magnitude": estimate_magnitude, "fastmri": estimate_fastmri}
    fmt = section.get("format")
    if fmt not in estimators:
        raise ConfigError(f"datasets.{dataset}.format must be 'magnitude' or 'fastmri', got {fmt!r}")
    try:
        return estimators[fmt](section, dataset, seed)
    except DataError as err:
        raise DataError(err.path, f"{err.problem} (no prepared store at {store} either); fill in the path, or plan "
                                  f"without the data: --slices {dataset}=TRAIN:VAL[:TEST]") from err
