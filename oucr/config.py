"""Reading the YAML configuration and the typed sections the engine uses.

The full schema is ``workflow/schemas/config.schema.yaml``; :mod:`oucr.config_check`
validates a whole config against it (the workflow does so before any job runs).
This module checks what the library itself reads, so that the command line gives
the same clear errors when it is used without Snakemake. No heavy imports: the
Snakefile reads it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import yaml

from oucr.errors import ConfigError

PathLike = Union[str, Path]


def load_config(path: PathLike) -> Dict[str, Any]:
    """Read a YAML config file, or an inline JSON mapping (text starting with ``{``).

    The inline form lets Snakemake rules pass exactly the config subset a job
    depends on as a parameter, so that a change to it (and only to it) reruns
    the job.

    Raises:
        ConfigError: if the file is missing, unreadable or not a mapping.
    """
    if isinstance(path, str) and path.lstrip().startswith("{"):
        try:
            data = json.loads(path)
        except json.JSONDecodeError as err:
            raise ConfigError(f"inline config is not valid JSON: {err}") from err
        if not isinstance(data, dict):
            raise ConfigError("inline config must be a JSON object")
        return resolve_results_placeholder(data)
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {p} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping at the top level")
    return resolve_results_placeholder(data)


DATASET_PATH_KEYS = ("input", "train_input", "test_input")


def resolve_results_placeholder(config: Dict[str, Any]) -> Dict[str, Any]:
    """Replace ``{results}`` in dataset paths by the ``results`` folder, in place.

    The demo's raw data live under the results folder, so its paths are written
    ``{results}/demo_data/...`` and follow ``results`` when it is overridden.
    """
    results = str(config.get("results", "results"))
    for section in (config.get("datasets") or {}).values():
        if isinstance(section, dict):
            for key in DATASET_PATH_KEYS:
                if isinstance(section.get(key), str):
                    section[key] = section[key].replace("{results}", results)
    return config


def set_by_path(config: Dict[str, Any], assignment: str) -> None:
    """Apply one ``dotted.key=value`` override in place (value parsed as YAML).

    Example: ``models.OUCR.iterations=3``.
    """
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} must look like dotted.key=value")
    key, raw = assignment.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {assignment!r} has an empty key")
    node = config
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {assignment!r}: {part!r} is not a section")
        node = child
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        # YAML 1.1 reads "1e-3" as a string; a user writing a number means a number
        try:
            value = float(value)
        except ValueError:
            pass
    node[parts[-1]] = value


def with_overrides(config: Mapping[str, Any], assignments: Sequence[str]) -> Dict[str, Any]:
    """A deep copy of ``config`` with ``dotted.key=value`` overrides applied."""
    out = copy.deepcopy(dict(config))
    for a in assignments:
        set_by_path(out, a)
    return out


#: training losses: L1 of the magnitudes (the OUCR lineage), L1 or L2 of the real/imaginary channels
LOSSES = ("l1_magnitude", "l1", "l2")

#: settings of how a training runs, not of what it computes: a checkpoint resumes across them
EXECUTION_SETTINGS = ("device", "num_workers", "nproc", "compile", "deterministic", "keep_checkpoints")


@dataclass
class TrainingConfig:
    """Training hyper-parameters; the defaults are the paper's protocol."""

    epochs: int = 50
    batch_size: int = 4  #: the global batch of one optimiser step's micro-batch (split over nproc processes)
    lr: float = 1.5e-4
    lr_step: int = 5  #: epochs between learning-rate decays
    lr_gamma: float = 0.9  #: decay factor
    loss: str = "l1_magnitude"  #: l1_magnitude (the lineage: L1 of magnitudes), l1 (real/imaginary channels), l2
    accumulate: int = 1  #: micro-batches per optimiser step (effective batch = batch_size x accumulate)
    device: str = "auto"  #: auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps
    amp: str = "none"  #: none or bf16 (autocast): training, validation and the test reconstruction alike
    checkpointing: bool = False  #: activation checkpointing (models that support it)
    deterministic: bool = True  #: deterministic kernels (bit-identical reruns) or the fastest ones
    compile: bool = False  #: torch.compile the model for training
    nproc: int = 1  #: processes of one DistributedDataParallel training (one GPU each on CUDA)
    num_workers: Optional[int] = None  #: DataLoader workers (None: 0 on the CPU, several on CUDA)
    val_volumes: Optional[int] = None  #: cap on validation volumes per epoch (None: all)
    train_slices: Optional[int] = None  #: cap on training slices per epoch (None: all)
    grad_clip: Optional[float] = None
    keep_checkpoints: bool = True  #: keep the resumable last.pt when the training has finished

    def __post_init__(self) -> None:
        def positive_int(name: str) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"training.{name} must be a positive integer, got {v!r}")

        for name in ("epochs", "batch_size", "lr_step", "accumulate", "nproc"):
            positive_int(name)
        for name in ("val_volumes", "train_slices"):
            if getattr(self, name) is not None:
                positive_int(name)
        if self.num_workers is not None and (
            isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 0
        ):
            raise ConfigError(f"training.num_workers must be a non-negative integer or null, got {self.num_workers!r}")
        if self.batch_size < self.nproc:
            raise ConfigError(
                f"training.batch_size ({self.batch_size}) is the global batch, split over training.nproc "
                f"({self.nproc}) processes: it must be at least nproc"
            )
        for name in ("lr", "lr_gamma"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ConfigError(f"training.{name} must be a positive number, got {v!r}")
        if self.grad_clip is not None and not (isinstance(self.grad_clip, (int, float)) and self.grad_clip > 0):
            raise ConfigError(f"training.grad_clip must be a positive number or null, got {self.grad_clip!r}")
        if self.loss not in LOSSES:
            raise ConfigError(f"training.loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.amp not in ("none", "bf16"):
            raise ConfigError(f"training.amp must be 'none' or 'bf16', got {self.amp!r}")
        for name in ("checkpointing", "deterministic", "compile", "keep_checkpoints"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"training.{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.device, str):
            raise ConfigError(f"training.device must be a string, got {self.device!r}")


def training_config(config: Mapping[str, Any], method: Optional[str] = None, **overrides: Any) -> TrainingConfig:
    """The ``training`` section, with per-method overrides from ``training.methods.<method>``.

    Args:
        config: the whole config.
        method: apply this method's overrides.
        **overrides: values that win over both (e.g. a ``--device`` given on the command line).

    Raises:
        ConfigError: for unknown keys or invalid values.
    """
    section = dict(config.get("training") or {})
    per_method = section.pop("methods", None) or {}
    if not isinstance(per_method, dict):
        raise ConfigError("training.methods must map method names to overrides")
    if method is not None and method in per_method:
        section.update(per_method[method] or {})
    section.update(overrides)
    known = {f.name for f in dataclasses.fields(TrainingConfig)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) in training: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return TrainingConfig(**section)


def acceleration_settings(config: Mapping[str, Any], acceleration: int) -> Dict[str, Any]:
    """Mask settings for one acceleration: ``{"center_fraction": ..., "mask_type": ...}``.

    Raises:
        ConfigError: if the acceleration is not configured.
    """
    accs = config.get("accelerations") or {}
    entry = accs.get(acceleration, accs.get(str(acceleration)))
    if entry is None:
        raise ConfigError(
            f"acceleration {acceleration} is not configured; configured: {', '.join(map(str, accs)) or 'none'}"
        )
    if "center_fraction" not in entry:
        raise ConfigError(f"accelerations.{acceleration} needs a center_fraction")
    return {
        "center_fraction": float(entry["center_fraction"]),
        "mask_type": str(entry.get("mask_type", config.get("mask_type", "random"))),
    }


def dataset_section(config: Mapping[str, Any], dataset: str) -> Dict[str, Any]:
    """The ``datasets.<dataset>`` section.

    Raises:
        ConfigError: if the dataset is not configured.
    """
    datasets = config.get("datasets") or {}
    if dataset not in datasets:
        raise ConfigError(
            f"dataset {dataset!r} is not configured; configured: {', '.join(datasets) or 'none'}"
        )
    return dict(datasets[dataset] or {})


#: defaults of the robustness section (the one place they are written)
ROBUSTNESS_DEFAULTS = {"acceleration": 4, "shifted_acceleration": 8, "noise_snr_db": 20.0}


def paper_reference(section: Mapping[str, Any], name: str) -> Optional[str]:
    """The paper column a dataset is compared with (``HPKS``/``fastMRI``), or None (module docstring).

    Raises:
        ConfigError: an HPKS comparison (private data) or a fastMRI comparison on other data
            without ``stand_in: true``.
    """
    paper = section.get("paper_dataset")
    if paper in (None, "none", ""):
        return None
    own = paper == "fastMRI" and section.get("format") == "fastmri"
    if not own and not section.get("stand_in", False):
        raise ConfigError(
            f"datasets.{name}: paper_dataset {paper!r} on {section.get('format')} data is compared with the paper "
            "only when declared `stand_in: true` (HPKS is private: any other data merely stands in for it); "
            "or set paper_dataset: none")
    return str(paper)


def paper_label(section: Mapping[str, Any], name: str) -> str:
    """Header text of a dataset's paper column: ``paper (fastMRI)`` or ``paper (stand-in for HPKS)``."""
    paper = paper_reference(section, name)
    if paper is None:
        return ""
    own = paper == "fastMRI" and section.get("format") == "fastmri" and not section.get("stand_in", False)
    return f"paper ({paper})" if own else f"paper (stand-in for {paper})"
