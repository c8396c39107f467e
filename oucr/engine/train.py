"""``oucr train``: train one method on one dataset at one acceleration.

L1 loss on the normalised two-channel images, Adam, the learning rate multiplied
by ``lr_gamma`` every ``lr_step`` epochs (the paper: 1.5e-4, 0.9, 5, 50 epochs,
batch 4). After every epoch the model is validated (per-volume PSNR/SSIM on the
fixed validation masks) and a checkpoint (model, optimiser, scheduler, random
states, epoch, best weights so far, history) is written atomically to the
checkpoint folder, which must not be a declared Snakemake output (Snakemake
deletes a failed job's outputs). A rerun resumes from the last completed epoch;
because every epoch's shuffling and training masks are derived from
``(seed, epoch)``, an interrupted and resumed run ends with the same weights as an
uninterrupted one on the same machine.

Outputs in ``--out``: ``model.pt`` (the best validation epoch's weights with the
method name and constructor arguments) and ``history.csv`` (one row per epoch:
``epoch,train_loss,val_psnr,val_ssim,val_nmse,lr,seconds,slices_per_second``).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from oucr import metrics
from oucr.config import (
    TrainingConfig,
    acceleration_settings,
    dataset_section,
    load_config,
    training_config,
    with_overrides,
)
from oucr.errors import ConfigError, DataError
from oucr.engine.inference import autocast_context, batch_to_device, predict_volumes, run_batch
from oucr.engine.runtime import (
    derive_seed,
    device_description,
    place_model,
    rng_state,
    seed_everything,
    select_device,
    set_rng_state,
    set_threads,
)
from oucr.io import atomic_path, read_torch_file
from oucr.models.base import ReconModel, count_parameters
from oucr.models.registry import ABLATIONS, build_model, method_slug, model_config_key

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
HISTORY_COLUMNS = ["epoch", "train_loss", "val_psnr", "val_ssim", "val_nmse", "lr", "seconds", "slices_per_second"]


@dataclass
class TrainJob:
    """Everything that identifies one training run."""

    method: str
    dataset: str
    acceleration: int
    store: Path
    masks: Path
    out: Path
    checkpoint_dir: Path
    run_name: str
    model_kwargs: Dict[str, Any]
    training: TrainingConfig
    seed: int
    center_fraction: float
    mask_type: str

    def data_signature(self) -> str:
        """Identity of the training data: the manifest's and masks file's bytes, every volume's size and mtime.

        Cheap even for the paper's stores (no volume is read), and it changes whenever
        ``oucr prepare`` or ``oucr masks`` rewrites anything.
        """
        h = hashlib.sha256()
        for path in (self.store / "manifest.csv", self.masks):
            h.update(path.read_bytes() if path.is_file() else b"missing")
        volumes = self.store / "volumes"
        for f in sorted(volumes.glob("*.h5")) if volumes.is_dir() else []:
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()[:16]

    def fingerprint(self) -> str:
        """Hash of what determines the result; a checkpoint resumes only with the same one."""
        payload = {
            "data": self.data_signature(),
            "method": self.method,
            "dataset": self.dataset,
            "acceleration": self.acceleration,
            "model_kwargs": self.model_kwargs,
            "training": {k: v for k, v in asdict(self.training).items() if k not in ("device", "num_workers")},
            "seed": self.seed,
            "center_fraction": self.center_fraction,
            "mask_type": self.mask_type,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def make_job(
    config: Mapping[str, Any],
    method: str,
    dataset: str,
    acceleration: int,
    store: Path,
    masks: Path,
    out: Path,
    checkpoint_dir: Path,
    run_name: Optional[str] = None,
    device: Optional[str] = None,
) -> TrainJob:
    """Validate the config for one run and resolve every setting.

    Raises:
        ConfigError: unknown method, dataset or acceleration, or invalid training values.
    """
    dataset_section(config, dataset)
    acc = acceleration_settings(config, acceleration)
    training = training_config(config, method)
    if device is not None:
        training.device = device
    key = model_config_key(method)
    model_kwargs: Dict[str, Any] = dict(((config.get("models") or {}).get(key)) or {})
    model_kwargs.update(ABLATIONS.get(method, {}))
    if training.checkpointing:
        model_kwargs["checkpointing"] = True
    build_model(method, None, **model_kwargs)  # fail early on an unknown method or bad widths
    run_name = run_name or method_slug(method)
    global_seed = int(config.get("seed", 0))
    return TrainJob(
        method=method,
        dataset=dataset,
        acceleration=int(acceleration),
        store=Path(store),
        masks=Path(masks),
        out=Path(out),
        checkpoint_dir=Path(checkpoint_dir),
        run_name=run_name,
        model_kwargs=model_kwargs,
        training=training,
        seed=derive_seed(global_seed, dataset, run_name, int(acceleration)),
        center_fraction=acc["center_fraction"],
        mask_type=acc["mask_type"],
    )


def build_datasets(job: TrainJob):
    """Training and validation SliceDatasets of the prepared store."""
    from oucr.data.dataset import SliceDataset
    from oucr.data.store import PreparedStore
    from oucr.masks import create_mask_for_mask_type

    if not (job.store / "manifest.csv").is_file():
        raise DataError(job.store, "no prepared store here (manifest.csv missing); run `oucr prepare` first")
    if not job.masks.is_file():
        raise DataError(job.masks, "fixed validation/test masks file missing; run `oucr masks` first")
    store = PreparedStore(job.store)
    mask_func = create_mask_for_mask_type(job.mask_type, [job.center_fraction], [job.acceleration])
    train = SliceDataset(store, "train", mask_func, seed=job.seed)
    val = SliceDataset(store, "val", mask_func, masks_file=job.masks)
    if len(train) == 0:
        raise DataError(job.store, "the training split is empty")
    if len(val) == 0:
        raise DataError(job.store, "the validation split is empty")
    return train, val


def validate(model: ReconModel, val_dataset, device: torch.device, job: TrainJob) -> Dict[str, float]:
    """Mean per-volume PSNR, SSIM and NMSE on the validation split."""
    model.eval()
    volumes = None
    if job.training.val_volumes is not None:
        volumes = sorted({v for v, _ in val_dataset.slice_index})[: job.training.val_volumes]
    psnrs, ssims, nmses = [], [], []
    for _, recon, target in predict_volumes(
        model, val_dataset, device, job.training.batch_size, job.training.amp, volumes
    ):
        psnrs.append(metrics.psnr(target, recon))
        ssims.append(metrics.ssim(target, recon))
        nmses.append(metrics.nmse(target, recon))
    model.train()
    return {"val_psnr": float(np.mean(psnrs)), "val_ssim": float(np.mean(ssims)), "val_nmse": float(np.mean(nmses))}


def loss_function(name: str):
    """The training loss on normalised two-channel images."""
    return torch.nn.L1Loss() if name == "l1" else torch.nn.MSELoss()


def epoch_order(job: TrainJob, epoch: int, n: int) -> List[int]:
    """The shuffled slice order of one epoch, a function of (seed, epoch) alone."""
    g = torch.Generator().manual_seed(derive_seed(job.seed, "order", epoch))
    order = torch.randperm(n, generator=g).tolist()
    if job.training.train_slices is not None:
        order = order[: job.training.train_slices]
    return order


def train(job: TrainJob, threads: Optional[int] = None, progress: Optional[bool] = None) -> pd.DataFrame:
    """Run (or resume) the training described by ``job``.

    Args:
        job: from :func:`make_job`.
        threads: CPU threads (Snakemake's ``threads``); None keeps torch's default.
        progress: show a progress bar; None means only when standard error is a terminal.

    Returns:
        the per-epoch history.
    """
    from tqdm import tqdm

    set_threads(threads)
    device = select_device(job.training.device)
    seed_everything(job.seed)
    train_ds, val_ds = build_datasets(job)
    model = place_model(build_model(job.method, None, **job.model_kwargs), device)
    optimizer = torch.optim.Adam(model.parameters(), lr=job.training.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=job.training.lr_step, gamma=job.training.lr_gamma)
    criterion = loss_function(job.training.loss)

    history: List[Dict[str, float]] = []
    best_state: Optional[Dict[str, torch.Tensor]] = None
    best_psnr = -math.inf
    best_epoch = -1
    start_epoch = 0
    ckpt_path = job.checkpoint_dir / CHECKPOINT_NAME
    fingerprint = job.fingerprint()  # after build_datasets: the store and masks exist
    if ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ckpt.get("fingerprint") != fingerprint:
            log.warning("%s was written for different settings; starting afresh", ckpt_path)
        else:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            set_rng_state(ckpt["rng"])
            history = list(ckpt["history"])
            best_state, best_psnr, best_epoch = ckpt["best_state"], ckpt["best_psnr"], ckpt["best_epoch"]
            start_epoch = int(ckpt["epoch"]) + 1
            log.info("resuming %s from %s after epoch %d", job.run_name, ckpt_path, start_epoch)

    n_params = count_parameters(model)
    log.info(
        "training %s on %s x%d: %d parameters, %d training / %d validation slices, %d epochs, device %s",
        job.method, job.dataset, job.acceleration, n_params, len(train_ds), len(val_ds),
        job.training.epochs, device_description(device),
    )
    show = sys.stderr.isatty() if progress is None else progress
    model.train()
    for epoch in range(start_epoch, job.training.epochs):
        train_ds.set_epoch(epoch)
        order = epoch_order(job, epoch, len(train_ds))
        loader = DataLoader(
            train_ds, batch_size=job.training.batch_size, sampler=order, num_workers=job.training.num_workers
        )
        t0 = time.perf_counter()
        total_loss, seen = 0.0, 0
        bar = tqdm(
            total=len(order), unit="slice", disable=not show, leave=False, dynamic_ncols=True,
            desc=f"{job.run_name} {job.dataset} x{job.acceleration} epoch {epoch + 1}/{job.training.epochs}",
        )
        for batch in loader:
            batch = batch_to_device(batch, device)
            optimizer.zero_grad(set_to_none=True)
            with autocast_context(device, job.training.amp):
                out = run_batch(model, batch)
            loss = criterion(out.float(), batch["target"])
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{job.run_name}: the training loss became {loss.item()} at epoch {epoch + 1}; "
                    "lower training.lr or enable training.grad_clip"
                )
            loss.backward()
            if job.training.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), job.training.grad_clip)
            optimizer.step()
            b = out.shape[0]
            total_loss += loss.item() * b
            seen += b
            bar.update(b)
            bar.set_postfix(loss=f"{total_loss / seen:.4f}")
        bar.close()
        train_seconds = time.perf_counter() - t0
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        val = validate(model, val_ds, device, job)
        row = {
            "epoch": epoch + 1,
            "train_loss": total_loss / max(seen, 1),
            **val,
            "lr": lr,
            "seconds": time.perf_counter() - t0,
            "slices_per_second": seen / train_seconds if train_seconds > 0 else float("nan"),
        }
        history.append(row)
        if val["val_psnr"] > best_psnr:
            best_psnr, best_epoch = val["val_psnr"], epoch + 1
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        log.info(
            "%s %s x%d epoch %d/%d: loss %.4f, val PSNR %.2f dB, SSIM %.4f, %.1f slices/s, %.0f s",
            job.run_name, job.dataset, job.acceleration, epoch + 1, job.training.epochs, row["train_loss"],
            val["val_psnr"], val["val_ssim"], row["slices_per_second"], row["seconds"],
        )
        with atomic_path(ckpt_path) as tmp:
            torch.save(
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": rng_state(),
                    "history": history,
                    "best_state": best_state,
                    "best_psnr": best_psnr,
                    "best_epoch": best_epoch,
                },
                tmp,
            )

    frame = pd.DataFrame(history, columns=HISTORY_COLUMNS)
    write_model(job, best_state if best_state is not None else model.state_dict(), best_epoch, best_psnr, n_params, device)
    with atomic_path(job.out / "history.csv") as tmp:
        frame.to_csv(tmp, index=False)
    log.info("%s: best validation PSNR %.2f dB at epoch %d; wrote %s", job.run_name, best_psnr, best_epoch, job.out)
    return frame


def write_model(
    job: TrainJob, state: Mapping[str, torch.Tensor], epoch: int, val_psnr: float, n_params: int, device: torch.device
) -> None:
    """Write ``model.pt``: weights plus what is needed to rebuild the model."""
    with atomic_path(job.out / "model.pt") as tmp:
        torch.save(
            {
                "method": job.method,
                "run_name": job.run_name,
                "model_kwargs": job.model_kwargs,
                "state_dict": {k: v.detach().cpu() for k, v in state.items()},
                "epoch": epoch,
                "val_psnr": val_psnr,
                "params": n_params,
                "dataset": job.dataset,
                "acceleration": job.acceleration,
                "seed": job.seed,
                "fingerprint": job.fingerprint(),
                "training": asdict(job.training),
                "device": device_description(device),
            },
            tmp,
        )


def load_trained_model(path: Path, device: torch.device) -> tuple:
    """Rebuild a model from ``model.pt``; returns ``(model in eval mode, metadata dict)``.

    Raises:
        DataError: if the file is missing or not a model file of this project.
    """
    blob = read_torch_file(path, "trained model file")
    if not isinstance(blob, dict) or not {"method", "model_kwargs", "state_dict"} <= set(blob):
        raise DataError(path, "not a model file written by `oucr train` (keys method, model_kwargs, state_dict)")
    kwargs = dict(blob["model_kwargs"])
    kwargs.pop("checkpointing", None)  # inference needs no activation checkpointing
    model = build_model(blob["method"], None, **kwargs)
    model.load_state_dict(blob["state_dict"])
    return place_model(model, device).eval(), blob


def default_paths(config: Mapping[str, Any], dataset: str, acceleration: int, run_name: str) -> Dict[str, Path]:
    """The pipeline's standard locations under ``results``."""
    root = Path(config.get("results", "results"))
    return {
        "store": root / "prepared" / dataset,
        "masks": root / "masks" / dataset / f"x{acceleration}.h5",
        "out": root / "models" / dataset / f"x{acceleration}" / run_name,
        "checkpoint_dir": root / "checkpoints" / dataset / f"x{acceleration}" / run_name,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr train``."""
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument("--method", required=True, help="method name as in the paper, e.g. OUCR, D5C5, 'UC-CRNN + RM'")
    parser.add_argument("--dataset", required=True, help="dataset name from the config's datasets section")
    parser.add_argument("--acceleration", type=int, required=True, help="nominal acceleration, e.g. 4")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. models.OUCR.iterations=3 or training.epochs=2 (repeatable)")
    parser.add_argument("--run-name", help="name of this run (seed and default folders); default: the method's slug")
    parser.add_argument("--store", type=Path, help="prepared store (default results/prepared/DATASET)")
    parser.add_argument("--masks", type=Path, help="fixed masks file (default results/masks/DATASET/xACC.h5)")
    parser.add_argument("--out", type=Path, help="output folder for model.pt and history.csv")
    parser.add_argument("--checkpoint-dir", type=Path, help="resumable checkpoints (not a Snakemake output)")
    parser.add_argument("--threads", type=int, help="CPU threads to use")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (overrides training.device)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar (default: only on a terminal)")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr train``."""
    config = with_overrides(load_config(args.config), args.overrides)
    run_name = args.run_name or method_slug(args.method)
    paths = default_paths(config, args.dataset, args.acceleration, run_name)
    job = make_job(
        config, args.method, args.dataset, args.acceleration,
        store=args.store or paths["store"], masks=args.masks or paths["masks"],
        out=args.out or paths["out"], checkpoint_dir=args.checkpoint_dir or paths["checkpoint_dir"],
        run_name=run_name, device=args.device,
    )
    if job.checkpoint_dir.resolve() == job.out.resolve():
        raise ConfigError("--checkpoint-dir must differ from --out (Snakemake deletes a failed job's outputs)")
    train(job, threads=args.threads, progress=args.progress)
    return 0
