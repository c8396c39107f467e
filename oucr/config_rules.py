"""The project's checks of a configuration beyond its schema: rules between keys, model arguments.

Both take the configuration and the key paths the schema walk
(:mod:`oucr.config_schema`) already reported, and skip rules about those paths, so
one mistake gives one message.

* :func:`cross_key_problems`: sections that name a dataset or an acceleration name a
  configured one, the robustness shift differs from the training acceleration, a
  centre fraction fits its acceleration, HPKS comparisons are declared stand-ins, the
  per-method training overrides give a valid :class:`oucr.config.TrainingConfig`, and
  so on (``config/README.md`` lists them).
* :func:`model_problems`: each ``models.<Method>`` key is checked against the
  signature of the class :data:`oucr.models.registry.METHODS` names, each configured
  network is built once, and each dataset size is checked against the networks'
  pooling depth. It imports torch, inside the function: importing this module stays
  torch-free (the Snakefile imports :mod:`oucr.config_check`).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from oucr.config import DATASET_PATH_KEYS, ROBUSTNESS_DEFAULTS, TrainingConfig, resolve_results_placeholder
from oucr.config_schema import closest_name, is_flagged, is_int, is_number, quote_value, unknown_key
from oucr.errors import ConfigError
from oucr.names import ABLATION_VARIANTS, OUCR, OUCR_FULL

#: the defaults the workflow uses when these keys are absent (workflow/rules/common.smk)
DEFAULT_ROBUSTNESS_ACCELERATION = ROBUSTNESS_DEFAULTS["acceleration"]
DEFAULT_SHIFTED_ACCELERATION = ROBUSTNESS_DEFAULTS["shifted_acceleration"]


# Rules between keys --------------------------------------------------------------------------


def configured_accelerations(config: Mapping[str, Any]) -> List[int]:
    """The keys of ``accelerations`` that are integers (as ints)."""
    accs = config.get("accelerations")
    out = []
    for a in accs if isinstance(accs, Mapping) else []:
        try:
            out.append(int(a))
        except (TypeError, ValueError):
            pass
    return out


def _acc_entry(config: Mapping[str, Any], acc: int) -> Optional[Mapping[str, Any]]:
    accs = config.get("accelerations") or {}
    entry = accs.get(acc, accs.get(str(acc)))
    return entry if isinstance(entry, Mapping) else None


def cross_key_problems(config: Mapping[str, Any], flagged: Set[str]) -> List[str]:
    """The rules that relate keys to each other (``config/README.md``, "Rules between keys").

    Args:
        config: the configuration.
        flagged: key paths the schema walk already reported; rules about them are skipped.
    """
    out: List[str] = []
    datasets = config.get("datasets") if isinstance(config.get("datasets"), Mapping) else {}
    accs = configured_accelerations(config)
    acc_list = ", ".join(map(str, sorted(accs))) or "none"

    def dataset_named(path: str, name: Any) -> None:
        if is_flagged(flagged, path) or "datasets" in flagged or not isinstance(name, str) or name in datasets:
            return
        match = closest_name(name, datasets)
        out.append(f"{path}: {name!r} is not a configured dataset"
                   + (f"; did you mean {match}?" if match else f" (configured: {', '.join(datasets) or 'none'})"))

    def acceleration_named(path: str, acc: Any, default: bool = False) -> None:
        if is_flagged(flagged, path) or not is_int(acc) or acc in accs:
            return
        what = f"not set, and its default {acc}" if default else str(acc)
        out.append(f"{path}: {what} is not a configured acceleration (accelerations: {acc_list})")

    # methods contains OUCR: the schema's `contains` (its message names what depends on it)

    for name, section in datasets.items():
        path = f"datasets.{name}"
        if not isinstance(section, Mapping):
            continue
        if "val_fraction" in section and "val_subjects" in section:
            out.append(f"{path}: give val_fraction or val_subjects, not both")
        if not any(is_flagged(flagged, f"{path}.{k}") for k in ("paper_dataset", "stand_in", "format")):
            from oucr.config import paper_reference  # the one statement of this rule

            try:
                paper_reference(section, str(name))
            except ConfigError as err:
                out.append(str(err))
        out += _demo_data_path_problems(config, str(name), section, flagged)

    for acc in sorted(accs):
        path = f"accelerations.{acc}.center_fraction"
        entry = _acc_entry(config, acc)
        cf = entry.get("center_fraction") if entry else None
        if is_flagged(flagged, path) or not is_number(cf):
            continue
        if cf >= 1.0 / acc:
            out.append(f"{path}: {cf} must be below 1/{acc} = {1.0 / acc:.4g} (the fully sampled centre alone would "
                       f"exceed the {acc}x sampling budget)")

    for section_name in ("ablation", "iterations_sweep"):
        section = config.get(section_name)
        if isinstance(section, Mapping):
            dataset_named(f"{section_name}.dataset", section.get("dataset"))
            acceleration_named(f"{section_name}.acceleration", section.get("acceleration"))

    robustness = config.get("robustness")
    if isinstance(robustness, Mapping):
        acc = robustness.get("acceleration", DEFAULT_ROBUSTNESS_ACCELERATION)
        acceleration_named("robustness.acceleration", acc, default="acceleration" not in robustness)
        shifted = robustness.get("shifted_acceleration", DEFAULT_SHIFTED_ACCELERATION)
        if is_int(acc) and is_int(shifted) and acc == shifted and not is_flagged(flagged, "robustness"):
            out.append(f"robustness.shifted_acceleration: {shifted} must differ from robustness.acceleration ({acc}): "
                       "the networks are evaluated off the acceleration they were trained at")
        scf = robustness.get("shifted_center_fraction")
        if is_int(shifted) and is_number(scf) and not is_flagged(flagged, "robustness.shifted_center_fraction"):
            if shifted in accs:
                out.append(f"robustness.shifted_center_fraction: the {shifted}x masks use "
                           f"accelerations.{shifted}.center_fraction; give one of the two")
            elif scf >= 1.0 / shifted:
                out.append(f"robustness.shifted_center_fraction: {scf} must be below 1/{shifted} = "
                           f"{1.0 / shifted:.4g} (the fully sampled centre alone would exceed the {shifted}x budget)")
        listed = robustness.get("datasets")
        if isinstance(listed, list):
            for i, name in enumerate(listed):
                dataset_named(f"robustness.datasets[{i}]", name)
        chosen = robustness.get("methods")
        if isinstance(chosen, list) and isinstance(config.get("methods"), list):
            for i, name in enumerate(chosen):
                if name not in config["methods"]:
                    out.append(f"robustness.methods[{i}]: {name!r} is not one of the configured methods "
                               f"({', '.join(map(str, config['methods']))})")

    figures = config.get("figures")
    if isinstance(figures, Mapping) and isinstance(figures.get("dataset_order"), list):
        for i, name in enumerate(figures["dataset_order"]):
            dataset_named(f"figures.dataset_order[{i}]", name)

    out += _training_problems(config, flagged)
    return out


def _demo_data_path_problems(config: Mapping[str, Any], name: str, section: Mapping[str, Any],
                             flagged: Set[str]) -> List[str]:
    """A dataset read from ``<results>/demo_data`` needs the ``demo_data`` section that builds it."""
    if config.get("demo_data") or not isinstance(config.get("results", "results"), str):
        return []
    resolved = resolve_results_placeholder({"results": config.get("results", "results"),
                                            "datasets": {name: dict(section)}})["datasets"][name]
    demo_root = os.path.normpath(os.path.join(str(config.get("results", "results")), "demo_data"))
    out = []
    for key in DATASET_PATH_KEYS:
        p = resolved.get(key)
        path = f"datasets.{name}.{key}"
        if isinstance(p, str) and not is_flagged(flagged, path) and os.path.normpath(p).startswith(demo_root + os.sep):
            out.append(f"{path}: lies under {demo_root}, which only the demo_data section builds; "
                       "add demo_data or point it at your data")
    return out


_TRAINING_KEY = re.compile(r"\btraining\.([a-z_]+)\b")


def _training_problems(config: Mapping[str, Any], flagged: Set[str]) -> List[str]:
    """The training section and each ``training.methods.<name>`` override make a valid TrainingConfig."""
    section = config.get("training")
    if not isinstance(section, Mapping):
        return []
    base = {k: v for k, v in section.items() if k != "methods"}
    base_flagged = any(is_flagged(flagged, f"training.{k}") for k in base)
    out: List[str] = []
    base_error = None
    if not base_flagged:
        try:
            TrainingConfig(**base)
        except (ConfigError, TypeError) as err:
            base_error = str(err)
            out.append(base_error)
    per_method = section.get("methods")
    if not isinstance(per_method, Mapping) or base_flagged:
        return out
    for method, override in per_method.items():
        path = f"training.methods.{method}"
        if is_flagged(flagged, path) or not isinstance(override, (Mapping, type(None))):
            continue
        override = dict(override or {})
        try:
            TrainingConfig(**{**base, **override})
        except (ConfigError, TypeError) as err:
            message = str(err)
            if message == base_error:
                continue
            # name the override's keys where the message is about them
            out.append(_TRAINING_KEY.sub(
                lambda m, p=path, o=override: f"{p}.{m.group(1)}" if m.group(1) in o else m.group(0), message))
    return out


# Model arguments -----------------------------------------------------------------------------


def _default_kind(default: Any) -> Optional[Tuple[str, Any]]:
    """(phrase, predicate) of the values a constructor argument with this default takes."""
    if isinstance(default, bool):
        return "true or false", lambda v: isinstance(v, bool)
    if isinstance(default, int):
        return "an integer", is_int
    if isinstance(default, float):
        return "a number", is_number
    if isinstance(default, str):
        return "text", lambda v: isinstance(v, str)
    if isinstance(default, (tuple, list)):
        return "a list", lambda v: isinstance(v, (list, tuple))
    return None


def _argument_problems(name: str, cls: type, section: Mapping[str, Any]) -> List[str]:
    """``models.<name>`` keys against the constructor's signature and its defaults' types."""
    signature = inspect.signature(cls)
    params = {n: p for n, p in signature.parameters.items()
              if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    takes_any = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    out = []
    for key, value in section.items():
        if key not in params:
            if not takes_any:
                out.append(unknown_key(f"models.{name}", key, params, what=f"argument of {cls.__name__}"))
            continue
        kind = _default_kind(params[key].default)
        if kind is not None and not kind[1](value):
            out.append(f"models.{name}.{key}: must be {kind[0]} (like the default {params[key].default!r}), "
                       f"got {quote_value(value)}")
    return out


def model_problems(config: Mapping[str, Any], flagged: Set[str]) -> List[str]:
    """Model arguments against the constructors, one build of each network, sizes against pooling depths.

    Imports torch and the model modules (inside this function only).
    """
    models = config.get("models")
    models = models if isinstance(models, Mapping) else {}
    methods = config.get("methods") if isinstance(config.get("methods"), list) else []
    ablation = config.get("ablation") if isinstance(config.get("ablation"), Mapping) else {}
    variants = [v for v in ablation.get("variants") or [] if v in ABLATION_VARIANTS and v != OUCR_FULL] \
        if isinstance(ablation.get("variants"), list) else []
    try:
        from oucr.models.registry import METHODS, build_model
    except ImportError as err:  # the workflow's head node may lack torch when jobs run in their own env
        warnings.warn(f"model arguments not checked: {err}", stacklevel=2)
        return []

    out: List[str] = []
    multiples: Dict[str, int] = {}  #: network or variant -> the factor its input sizes must be multiples of
    networks = list(dict.fromkeys([m for m in methods if m in METHODS] + [m for m in models if m in METHODS]))
    if variants and OUCR not in networks:
        networks.append(OUCR)
    ok: Set[str] = set()
    for name in networks:
        path = f"models.{name}"
        if is_flagged(flagged, path):
            continue
        module_name, attr = METHODS[name].split(":")
        cls = getattr(importlib.import_module(module_name), attr)
        problems = _argument_problems(name, cls, models.get(name) or {})
        if problems:
            out += problems
            continue
        try:
            multiples[name] = int(getattr(build_model(name, models), "size_multiple", 1))
            ok.add(name)
        except (ConfigError, ValueError, TypeError) as err:
            out.append(f"{path}: {err}")
    if OUCR in ok:
        for variant in variants:
            try:
                multiples[variant] = int(getattr(build_model(variant, models), "size_multiple", 1))
            except (ConfigError, ValueError, TypeError) as err:
                out.append(f"models.OUCR: as the ablation variant {variant!r}: {err}")
    out += _size_problems(config, methods, variants, ablation, multiples, flagged)
    return out


def _size_problems(config: Mapping[str, Any], methods: Sequence[str], variants: Sequence[str],
                   ablation: Mapping[str, Any], multiples: Mapping[str, int], flagged: Set[str]) -> List[str]:
    """Each dataset's ``size`` divisible by the pooling factor of every network trained on it."""
    datasets = config.get("datasets") if isinstance(config.get("datasets"), Mapping) else {}
    out = []
    for dataset, section in datasets.items():
        size = section.get("size") if isinstance(section, Mapping) else None
        path = f"datasets.{dataset}.size"
        if size is None or is_flagged(flagged, path):
            continue
        trained = [m for m in methods if m in multiples]
        if dataset == ablation.get("dataset"):
            trained += [v for v in variants if v in multiples]
        reported: Set[Tuple[str, int]] = set()
        for name in trained:
            m = multiples[name]
            key = OUCR if name in variants else name
            if (size[0] % m or size[1] % m) and (key, m) not in reported:
                reported.add((key, m))
                out.append(f"{path}: {size[0]} x {size[1]} is not divisible by {m}, which {name} needs "
                           f"(its pooling depth, set by models.{key})")
    return out
