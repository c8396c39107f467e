"""Shared small fixtures: one tiny demo build and its prepared stores, made once per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest

# Small enough to build in a few seconds; the demo defaults are in oucr.data.demo.DEFAULTS.
TINY_DEMO: Dict[str, Any] = {
    "seed": 0,
    "demo_data": {
        "seed": 0,
        "demo-brain": {"subjects": 4, "slices": 3, "size": 32},
        "demo-fastmri": {"train_subjects": 4, "test_subjects": 2, "slices": 3, "size": 32},
    },
}


def tiny_brain_section(input_dir: Path, **overrides: Any) -> Dict[str, Any]:
    """A ``datasets.<name>`` section for a folder of magnitude volumes."""
    section = {"paper_dataset": "HPKS", "format": "magnitude", "input": str(input_dir), "size": [32, 32],
               "slices_per_volume": 3, "split": {"train": 2, "val": 1, "test": 1}}
    section.update(overrides)
    return section


def tiny_fastmri_section(raw_dir: Path, **overrides: Any) -> Dict[str, Any]:
    """A ``datasets.<name>`` section for fastMRI-layout train/val folders."""
    section = {"paper_dataset": "fastMRI", "format": "fastmri", "train_input": str(raw_dir / "singlecoil_train"),
               "test_input": str(raw_dir / "singlecoil_val"), "val_subjects": 1, "tissue_slices": False}
    section.update(overrides)
    return section


@pytest.fixture(scope="session")
def demo_raw(tmp_path_factory) -> Path:
    """The tiny demo datasets: ``<root>/demo-brain/*.nii.gz`` and ``<root>/demo-fastmri/singlecoil_*``."""
    from oucr.data.demo import build_demo_data

    root = tmp_path_factory.mktemp("demo_raw")
    build_demo_data(TINY_DEMO, root)
    return root


@pytest.fixture(scope="session")
def brain_store(demo_raw, tmp_path_factory) -> Path:
    """The prepared store of the tiny demo-brain (2 train, 1 val, 1 test subjects, 3 slices, 32 x 32)."""
    from oucr.data.prepare import prepare_dataset

    out = tmp_path_factory.mktemp("stores") / "demo-brain"
    prepare_dataset(tiny_brain_section(demo_raw / "demo-brain"), out, seed=0, name="demo-brain")
    return out


@pytest.fixture(scope="session")
def fastmri_store(demo_raw, tmp_path_factory) -> Path:
    """The prepared store of the tiny demo-fastmri (3 train, 1 val, 2 test volumes, 3 slices, 32 x 32)."""
    from oucr.data.prepare import prepare_dataset

    out = tmp_path_factory.mktemp("stores") / "demo-fastmri"
    prepare_dataset(tiny_fastmri_section(demo_raw / "demo-fastmri"), out, seed=0, name="demo-fastmri")
    return out


#: a tiny training configuration (6 subjects of 2 slices at 32 x 32; 3 train, 1 val, 2 test)
TINY_TRAINING = {
    "seed": 0,
    "demo_data": {"seed": 0, "demo-brain": {"subjects": 6, "slices": 2, "size": 32}},
    "datasets": {
        "tiny": {"paper_dataset": "HPKS", "format": "magnitude", "input": None, "size": [32, 32],
                 "slices_per_volume": 2, "split": {"train": 3, "val": 1, "test": 2}},
    },
    "accelerations": {4: {"center_fraction": 0.08}},
    "mask_type": "random",
    "models": {"UNet": {"base_channels": 4, "levels": 3},
               "OUCR": {"oc_features": 4, "uc_features": 8, "rm_features": 4, "iterations": 2, "oc_depth": 1}},
    "training": {"epochs": 3, "batch_size": 2, "lr": 1e-3, "device": "cpu"},
}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A prepared tiny store and its fixed masks."""
    from oucr.config import with_overrides
    from oucr.data.demo import build_demo_data
    from oucr.data.fixed_masks import write_fixed_masks
    from oucr.data.prepare import prepare_dataset

    root = tmp_path_factory.mktemp("tiny")
    build_demo_data(TINY_TRAINING, root / "raw", kinds=("demo-brain",))
    config = with_overrides(TINY_TRAINING, [f"datasets.tiny.input={root / 'raw' / 'demo-brain'}"])
    prepare_dataset(config["datasets"]["tiny"], root / "store", seed=0, name="tiny")
    write_fixed_masks(root / "store", root / "masks.h5", 4, 0.08)
    return {"root": root, "config": config, "store": root / "store", "masks": root / "masks.h5"}
