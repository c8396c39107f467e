"""``oucr inspect``: feature maps and receptive fields of a (trained) OUCR's two branches.

The analysis itself is model-side (:mod:`oucr.models.inspect`); this module reads
the inputs it needs (a trained model file, a slice of a prepared store with its
fixed mask, or a synthetic phantom) and writes the files the Fig. 1 drawing reads.
The file formats are described in :mod:`oucr.models.inspect`.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from oucr.errors import ConfigError, DataError
from oucr.io import read_torch_file
from oucr.inspect_files import write_features, write_receptive_fields
from oucr.models.inspect import ERF_FRACTION, branches_of, inspect_model
from oucr.physics import SingleCoilMRI, normalised_measurement

log = logging.getLogger(__name__)


def _parse_model_args(items: Sequence[str]) -> Dict[str, Any]:
    import yaml

    out: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--model-arg expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def load_inspectable(
    checkpoint: Optional[Path],
    config: Optional[Mapping[str, Any]] = None,
    method: Optional[str] = None,
    overrides: Optional[Mapping[str, Any]] = None,
) -> Tuple[nn.Module, Dict[str, Any]]:
    """Build an OUCR model (any Table 2 variant), with trained weights if ``checkpoint`` is given.

    The checkpoint is a torch file holding either a bare state dict or a dict with
    the weights under ``state_dict`` (``oucr train``'s ``model.pt``) or ``model``,
    and optionally ``model_kwargs`` (or ``kwargs``), ``method``, ``acceleration``.
    Constructor arguments: the config's ``models.OUCR`` section, then the
    checkpoint's, then ``overrides``.

    Returns:
        ``(model in eval mode, metadata)``; metadata holds ``method``,
        ``model_kwargs`` and whatever else the checkpoint held besides weights.

    Raises:
        DataError: unreadable checkpoint or weights that do not fit the model.
        ConfigError: a method that is not OUCR or one of its variants.
    """
    from oucr.models.oucr import OUCR
    from oucr.models.registry import ABLATIONS, build_model, model_config_key

    meta: Dict[str, Any] = {}
    state: Optional[Mapping[str, torch.Tensor]] = None
    kwargs: Dict[str, Any] = {}
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        blob = read_torch_file(checkpoint, "checkpoint file")
        if isinstance(blob, Mapping) and blob and all(isinstance(v, torch.Tensor) for v in blob.values()):
            state = blob
        elif isinstance(blob, Mapping) and isinstance(blob.get("state_dict", blob.get("model")), Mapping):
            state = blob.get("state_dict", blob.get("model"))
            kwargs = dict(blob.get("model_kwargs") or blob.get("kwargs") or {})
            meta = {k: v for k, v in blob.items() if k not in ("state_dict", "model", "optimizer", "scheduler")}
        else:
            raise DataError(checkpoint, "expected a state dict, or a dict with 'state_dict' or 'model' weights")
    method = method or meta.get("method") or "OUCR"
    kwargs.update(overrides or {})
    kwargs.pop("checkpointing", None)  # inspection never trains
    model = build_model(method, (config or {}).get("models"), **kwargs)
    if not isinstance(model, OUCR):
        raise ConfigError(f"oucr inspect needs OUCR or one of its ablation variants, got {method!r}")
    if state is not None:
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise DataError(
                checkpoint,  # type: ignore[arg-type]
                f"weights do not fit {method} with arguments {kwargs} (give them with --config/--model-arg): "
                f"{str(err)[:400]}",
            ) from err
    meta["method"] = method
    section = dict(((config or {}).get("models") or {}).get(model_config_key(method)) or {})
    section.pop("checkpointing", None)
    meta["model_kwargs"] = {**section, **ABLATIONS.get(method, {}), **kwargs}
    return model.eval(), meta


def default_center_fraction(config: Mapping[str, Any], acceleration: int) -> float:
    """The configured centre fraction, else fastMRI's (0.08 at 4x, 0.04 at 8x: 0.32 / acceleration)."""
    accs = config.get("accelerations") or {}
    entry = accs.get(acceleration, accs.get(str(acceleration)))
    if entry and "center_fraction" in entry:
        return float(entry["center_fraction"])
    return 0.32 / acceleration


def synthetic_slice(size: int) -> np.ndarray:
    """A ``size`` x ``size`` complex64 Shepp-Logan phantom with a smooth phase."""
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    magnitude = resize(shepp_logan_phantom(), (size, size), anti_aliasing=True)
    yy, xx = np.mgrid[:size, :size] / size
    phase = 0.5 * np.pi * (yy - 0.5) * (xx - 0.3)
    return (magnitude * np.exp(1j * phase)).astype(np.complex64)


def load_example(
    store: Optional[Path],
    split: str,
    volume: Optional[str],
    index: Optional[int],
    size: int,
    mask_func,
    masks_file: Optional[Path] = None,
) -> Dict[str, Any]:
    """One undersampled slice: from the store (as the dataset serves it) or synthetic.

    Without ``volume`` the first volume of ``split`` is used; without ``index`` its
    slice of the largest energy.

    Returns:
        ``{"image" (1, 2, H, W), "physics", "target" (H, W) complex or None, "volume", "slice"}``.
    """
    from oucr.fft import fft2c
    from oucr.masks import column_mask, volume_seed

    if store is None:
        target = synthetic_slice(size)
        mask, _ = column_mask(mask_func, size, seed=volume_seed("synthetic"))
        mask_t = torch.from_numpy(mask.astype(np.float32)).reshape(1, -1)
        measured, norm = normalised_measurement(torch.from_numpy(fft2c(target)), mask_t)
        physics = SingleCoilMRI(measured[None], mask_t[None])
        return {"image": physics.zero_filled(), "physics": physics, "target": target / norm,
                "volume": "synthetic", "slice": 0}

    from oucr.data.dataset import SliceDataset
    from oucr.data.store import PreparedStore

    prepared = PreparedStore(store)
    volumes = prepared.volumes(split)
    if not volumes:
        raise DataError(store, f"the store has no {split!r} volumes")
    volume = volume or volumes[0]
    if volume not in volumes:
        raise DataError(store, f"volume {volume!r} is not in the {split!r} split")
    if index is None:
        energy = (np.abs(prepared.load(volume)["target"]) ** 2).sum(axis=(1, 2))
        index = int(np.argmax(energy))
    dataset = SliceDataset(prepared, split, mask_func, masks_file=masks_file, fixed=True)
    try:
        position = dataset.slice_index.index((volume, index))
    except ValueError:
        raise DataError(prepared.path(volume), f"slice {index} does not exist") from None
    try:
        item = dataset[position]
    finally:
        dataset.close()
    physics = SingleCoilMRI(item["masked_kspace"][None], item["mask"][None])
    target = item["target"][0] + 1j * item["target"][1]
    return {"image": item["image"][None], "physics": physics, "target": target.numpy(),
            "volume": volume, "slice": index}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr inspect``."""
    parser.add_argument("--checkpoint", type=Path,
                        help="torch file: oucr train's model.pt, a dict with 'model' weights (+ 'model_kwargs'), "
                             "or a bare state dict (default: random initialisation)")
    parser.add_argument("--config", help="YAML config (models.OUCR widths, accelerations); optional")
    parser.add_argument("--method", help="OUCR or a Table 2 variant (default: the checkpoint's, else OUCR)")
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="constructor argument overriding config and checkpoint (repeatable)")
    parser.add_argument("--store", type=Path, help="prepared store to take a slice from (default: a phantom)")
    parser.add_argument("--split", default="test", help="split to take the slice from (default test)")
    parser.add_argument("--volume", help="volume of the store (default: the split's first)")
    parser.add_argument("--slice", type=int, help="slice of that volume (default: the most energetic)")
    parser.add_argument("--masks", type=Path, help="fixed masks file of `oucr masks` (default: fastMRI seed per volume)")
    parser.add_argument("--size", type=int, default=64, help="phantom size without --store (default 64)")
    parser.add_argument("--acceleration", type=int, help="default: the checkpoint's, else 4")
    parser.add_argument("--center-fraction", type=float, help="default: the config's, else 0.32 / acceleration")
    parser.add_argument("--mask-type", help="random or equispaced_fraction (default: the config's, else random)")
    parser.add_argument("--channels", type=int, default=4, help="feature channels kept per branch (default 4)")
    parser.add_argument("--rf-size", type=int, help="receptive-field window (default: up to 64)")
    parser.add_argument("--rf-seeds", type=int, default=3, help="fresh initialisations averaged (default 3)")
    parser.add_argument("--rf-fraction", type=float, default=ERF_FRACTION,
                        help=f"share of the gradient mass the receptive-field radius holds (default {ERF_FRACTION})")
    parser.add_argument("--rf-iterations", type=int, nargs="+", default=[1, 2],
                        help="iterations unrolled without DC, one row each (default 1 2)")
    parser.add_argument("--threads", type=int, help="CPU threads")
    parser.add_argument("--out-features", type=Path, required=True, help="HDF5 feature maps")
    parser.add_argument("--out-receptive-field", type=Path, required=True, help="CSV (or .json) receptive fields")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr inspect``."""
    from oucr.config import load_config
    from oucr.engine.runtime import set_threads
    from oucr.masks import create_mask_for_mask_type

    set_threads(args.threads)
    config = load_config(args.config) if args.config else {}
    if args.channels < 1 or args.rf_seeds < 1:
        raise ConfigError("--channels and --rf-seeds must be at least 1")
    model, meta = load_inspectable(args.checkpoint, config, args.method, _parse_model_args(args.model_arg))
    acceleration = int(args.acceleration or meta.get("acceleration") or 4)
    center_fraction = args.center_fraction or default_center_fraction(config, acceleration)
    mask_type = args.mask_type or str(config.get("mask_type", "random"))
    mask_func = create_mask_for_mask_type(mask_type, [center_fraction], [acceleration])
    example = load_example(args.store, args.split, args.volume, args.slice, args.size, mask_func, args.masks)
    arrays, found = inspect_model(
        model, example, channels=args.channels, rf_size=args.rf_size, rf_seeds=range(args.rf_seeds),
        rf_fraction=args.rf_fraction, rf_iterations=args.rf_iterations, trained=args.checkpoint is not None,
    )
    attrs = {
        "source": "synthetic" if args.store is None else "store",
        "store": str(args.store or ""),
        "volume": example["volume"],
        "slice": int(example["slice"]),
        "method": meta["method"],
        "checkpoint": str(args.checkpoint or ""),
        "model_kwargs": json.dumps(meta.get("model_kwargs", {}), sort_keys=True, default=str),
        "iterations": int(next(iter(branches_of(model).values())).iterations),
        "acceleration": acceleration,
        "center_fraction": float(center_fraction),
        "mask_type": mask_type,
    }
    write_features(args.out_features, arrays, attrs)
    write_receptive_fields(args.out_receptive_field, found)
    for rf in found:
        log.info("%s (%s weights, %d iteration(s), %d px window): %.0f%% of the gradient within %.1f px, "
                 "support half-width %d px%s", rf.branch.upper(), rf.init, rf.iterations, rf.size,
                 100 * rf.fraction, rf.radius, rf.extent, " (clipped by the window)" if rf.clipped else "")
    log.info("wrote %s and %s", args.out_features, args.out_receptive_field)
    return 0
