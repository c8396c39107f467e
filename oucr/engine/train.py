"""``oucr train``: train one replicate of one method on one dataset at one acceleration.

The paper's protocol: Adam, the learning rate multiplied by ``lr_gamma`` every
``lr_step`` epochs (1.5e-4, 0.9, 5), 50 epochs, batch 4, L1 loss of the
magnitudes (:mod:`oucr.engine.losses`). After every epoch the model is validated
(per-volume PSNR/SSIM on the fixed validation masks, in the precision it trains in)
and a checkpoint (model, optimiser, scheduler, random states, epoch, best weights
so far, history) is written atomically to the checkpoint folder, which must not
be a declared Snakemake output (Snakemake deletes a failed job's outputs). A rerun
resumes from the last completed epoch.

Seeds. The *data stream* (every epoch's slice order and training masks) depends
only on (global seed, dataset, acceleration): every method, ablation variant, J
value and replicate trained on one dataset at one acceleration sees the same
batches with the same masks, so that Table 2 and the J sweep compare
architectures, not draws. The *initialisation* depends on (global seed, dataset,
run, acceleration, replicate). An interrupted and resumed run ends with the same
weights as an uninterrupted one.

Several processes (``--nproc N``, DistributedDataParallel, started through
torchrun) compute the same steps as one process: :mod:`oucr.engine.distributed`.
Rank 0 alone writes checkpoints, outputs and logs.

Outputs in ``--out``: ``model.pt`` (the best validation epoch's weights,
:mod:`oucr.engine.checkpoint`), ``history.csv``, one row per epoch with the
columns :data:`HISTORY_COLUMNS`, and ``info.json`` (run identity, device,
processes, epochs, best epoch, parameters, precision, the summed epoch seconds).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from oucr import metrics
from oucr.config import (
    EXECUTION_SETTINGS,
    TrainingConfig,
    acceleration_settings,
    dataset_section,
    training_config,
)
from oucr.engine import distributed as dist
from oucr.engine.checkpoint import CHECKPOINT_NAME, read_checkpoint, restore_checkpoint, save_checkpoint, write_model_file
from oucr.engine.inference import autocast_context, batch_to_device, predict_volumes, run_batch
from oucr.engine.losses import per_sample_loss
from oucr.engine.runtime import (
    configure_determinism,
    derive_seed,
    device_description,
    loader_settings,
    place_model,
    rng_state,
    seed_everything,
    select_device,
    set_threads,
)
from oucr.errors import DataError
from oucr.io import atomic_path, atomic_write_text
from oucr.models.base import ReconModel, count_parameters
from oucr.models.registry import ABLATIONS, build_model, model_config_key
from oucr.names import OUCR, method_slug, sweep_name

log = logging.getLogger(__name__)

#: what the run was, where and how long it trained: read by the tables (no torch needed there)
INFO_NAME = "info.json"
IDENTITY_COLUMNS = ["run", "method", "dataset", "acceleration", "replicate"]
HISTORY_COLUMNS = IDENTITY_COLUMNS + [
    "epoch", "train_loss", "val_psnr", "val_ssim", "val_nmse", "lr", "seconds", "slices_per_second",
]


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
    global_seed: int
    center_fraction: float
    mask_type: str
    replicate: int = 0

    @property
    def display_name(self) -> str:
        """The run's name in tables and figures (``OUCR J=3`` for a sweep point)."""
        if self.run_name == method_slug(self.method):
            return self.method
        if self.method == OUCR and "iterations" in self.model_kwargs:
            return sweep_name(self.model_kwargs["iterations"])
        return self.run_name

    @property
    def data_seed(self) -> int:
        """Seed of the epoch orders and training masks: shared by every run of a dataset x acceleration."""
        return derive_seed(self.global_seed, self.dataset, self.acceleration, "data")

    @property
    def init_seed(self) -> int:
        """Seed of the weight initialisation: one per run and replicate."""
        return derive_seed(self.global_seed, self.dataset, self.run_name, self.acceleration, "init", self.replicate)

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
            "training": {k: v for k, v in asdict(self.training).items() if k not in EXECUTION_SETTINGS},
            "seeds": [self.data_seed, self.init_seed],
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
    replicate: int = 0,
    nproc: Optional[int] = None,
) -> TrainJob:
    """Validate the config for one run and resolve every setting.

    Raises:
        ConfigError: unknown method, dataset or acceleration, or invalid training values.
    """
    from oucr.errors import ConfigError

    dataset_section(config, dataset)
    acc = acceleration_settings(config, acceleration)
    overrides = {k: v for k, v in (("device", device), ("nproc", nproc)) if v is not None}
    training = training_config(config, method, **overrides)
    if int(replicate) < 0:
        raise ConfigError(f"the replicate index must be non-negative, got {replicate}")
    model_kwargs: Dict[str, Any] = dict(((config.get("models") or {}).get(model_config_key(method))) or {})
    model_kwargs.update(ABLATIONS.get(method, {}))
    if training.checkpointing:
        model_kwargs["checkpointing"] = True
    build_model(method, None, **model_kwargs)  # fail early on an unknown method or bad widths
    return TrainJob(
        method=method, dataset=dataset, acceleration=int(acceleration), store=Path(store), masks=Path(masks),
        out=Path(out), checkpoint_dir=Path(checkpoint_dir), run_name=run_name or method_slug(method),
        model_kwargs=model_kwargs, training=training, global_seed=int(config.get("seed", 0)),
        center_fraction=acc["center_fraction"], mask_type=acc["mask_type"], replicate=int(replicate),
    )


def build_datasets(job: TrainJob):
    """Training and validation SliceDatasets of the prepared store."""
    from oucr.data.dataset import SliceDataset
    from oucr.data.store import PreparedStore
    from oucr.masks import create_mask_for_mask_type

    if not job.masks.is_file():
        raise DataError(job.masks, "fixed validation/test masks file missing; run `oucr masks` first")
    store = PreparedStore(job.store)
    mask_func = create_mask_for_mask_type(job.mask_type, [job.center_fraction], [job.acceleration])
    train = SliceDataset(store, "train", mask_func, seed=job.data_seed)
    val = SliceDataset(store, "val", mask_func, masks_file=job.masks)
    if len(train) == 0:
        raise DataError(job.store, "the training split is empty")
    if len(val) == 0:
        raise DataError(job.store, "the validation split is empty")
    return train, val


def epoch_order(job: TrainJob, epoch: int, n: int) -> List[int]:
    """The shuffled slice order of one epoch, a function of the data seed and the epoch alone."""
    g = torch.Generator().manual_seed(derive_seed(job.data_seed, "order", epoch))
    order = torch.randperm(n, generator=g).tolist()
    if job.training.train_slices is not None:
        order = order[: job.training.train_slices]
    return order


class EpochBatches:
    """This rank's micro-batches of one epoch, as ``(index, epoch)`` pairs, for a DataLoader ``batch_sampler``.

    Carrying the epoch in each item lets persistent DataLoader workers draw that
    epoch's masks. :attr:`weights` holds each micro-batch's sample weights and
    :attr:`ends_step` whether an optimiser step follows it.
    """

    def __init__(self, job: TrainJob, n: int, ctx: dist.DistributedContext) -> None:
        self.job, self.n, self.ctx = job, n, ctx
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Lay out the micro-batches of ``epoch``."""
        t = self.job.training
        self.epoch = epoch
        self.batches: List[List[tuple]] = []
        self.weights: List[List[float]] = []
        self.ends_step: List[bool] = []
        self.group_sizes: List[int] = []
        for group in dist.step_groups(epoch_order(self.job, epoch, self.n), t.batch_size, t.accumulate):
            n_group = sum(len(b) for b in group)
            for k, batch in enumerate(group):
                indices, weights = dist.shard(batch, self.ctx.rank, self.ctx.world_size)
                self.batches.append([(i, epoch) for i in indices])
                self.weights.append([w / n_group for w in weights])
                self.ends_step.append(k == len(group) - 1)
                self.group_sizes.append(len(batch))

    def __iter__(self) -> Iterator[List[tuple]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def validate(model: ReconModel, val_dataset, device: torch.device, job: TrainJob,
             ctx: dist.DistributedContext = dist.DistributedContext()) -> Dict[str, float]:
    """Mean per-volume PSNR, SSIM and NMSE on the validation split (shared over the ranks)."""
    model.eval()
    volumes = sorted({v for v, _ in val_dataset.slice_index})
    if job.training.val_volumes is not None:
        volumes = volumes[: job.training.val_volumes]
    mine = dist.shard_volumes(volumes, ctx.rank, ctx.world_size)
    scores = {}
    if mine:
        for volume, recon, target in predict_volumes(model, val_dataset, device, job.training.batch_size,
                                                     job.training.amp, mine):
            t, r = np.abs(target), np.abs(recon)
            scores[volume] = (metrics.psnr(t, r), metrics.ssim(t, r), metrics.nmse(t, r))
    merged = {k: v for part in dist.gather_objects(scores, ctx) for k, v in part.items()}
    model.train()
    values = np.array([merged[v] for v in volumes])
    return {"val_psnr": float(values[:, 0].mean()), "val_ssim": float(values[:, 1].mean()),
            "val_nmse": float(values[:, 2].mean())}


def _wrap(model: torch.nn.Module, job: TrainJob, device: torch.device, ctx: dist.DistributedContext):
    """The module the training steps call: DistributedDataParallel and/or torch.compile as configured."""
    step_model = model
    if ctx.is_distributed:
        if device.type == "cuda":
            step_model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(step_model)
        # OUCR at J = 1 never calls its recurrent cell
        unused = getattr(model, "has_unused_parameters", False)
        step_model = torch.nn.parallel.DistributedDataParallel(
            step_model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=unused)
    if job.training.compile:
        step_model = torch.compile(step_model)
    return step_model


def train(job: TrainJob, threads: Optional[int] = None, progress: Optional[bool] = None) -> pd.DataFrame:
    """Run (or resume) the training described by ``job``; returns the per-epoch history.

    Args:
        job: from :func:`make_job`.
        threads: CPU threads (Snakemake's ``threads``); None keeps torch's default.
        progress: show a progress bar; None means only when standard error is a terminal.
    """
    from tqdm import tqdm

    ctx = dist.DistributedContext.from_environment()
    set_threads(threads)
    configure_determinism(job.training.deterministic)
    device = select_device(job.training.device, ctx.local_rank)
    dist.init_process_group(ctx, device)
    if not ctx.is_main:
        logging.getLogger("oucr").setLevel(logging.WARNING)
    train_ds, val_ds = build_datasets(job)
    seed_everything(job.init_seed)
    model = place_model(build_model(job.method, None, **job.model_kwargs), device)
    optimizer = torch.optim.Adam(model.parameters(), lr=job.training.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=job.training.lr_step, gamma=job.training.lr_gamma)

    state = {"history": [], "best_state": None, "best_psnr": -math.inf, "best_epoch": -1, "start_epoch": 0}
    ckpt_path = job.checkpoint_dir / CHECKPOINT_NAME
    fingerprint = job.fingerprint()
    if ckpt_path.is_file():
        blob = read_checkpoint(ckpt_path)
        if blob["fingerprint"] != fingerprint:
            log.warning("%s was written for different settings; starting afresh", ckpt_path)
        else:
            state = restore_checkpoint(blob, model, optimizer, scheduler)
            log.info("resuming %s from %s after epoch %d", job.run_name, ckpt_path, state["start_epoch"])
    step_model = _wrap(model, job, device, ctx)

    n_params = count_parameters(model)
    log.info("training %s (replicate %d) on %s x%d: %d parameters, %d training / %d validation slices, "
             "%d epochs, %d process(es) on %s", job.display_name, job.replicate, job.dataset, job.acceleration,
             n_params, len(train_ds), len(val_ds), job.training.epochs, ctx.world_size, device_description(device))
    show = ctx.is_main and (sys.stderr.isatty() if progress is None else progress)
    batches = EpochBatches(job, len(train_ds), ctx)
    loader = DataLoader(train_ds, batch_sampler=batches,
                        **loader_settings(device, job.training.num_workers, ctx.world_size))
    identity = {"run": job.run_name, "method": job.display_name, "dataset": job.dataset,
                "acceleration": job.acceleration, "replicate": job.replicate}
    model.train()
    for epoch in range(state["start_epoch"], job.training.epochs):
        train_ds.set_epoch(epoch)
        batches.set_epoch(epoch)
        t0 = time.perf_counter()
        total_loss, seen = 0.0, 0
        bar = tqdm(total=len(epoch_order(job, epoch, len(train_ds))), unit="slice", disable=not show, leave=False,
                   dynamic_ncols=True,
                   desc=f"{job.run_name} {job.dataset} x{job.acceleration} epoch {epoch + 1}/{job.training.epochs}")
        optimizer.zero_grad(set_to_none=True)
        for k, batch in enumerate(loader):
            batch = batch_to_device(batch, device)
            weights = torch.tensor(batches.weights[k], device=device)
            sync = batches.ends_step[k] or not ctx.is_distributed
            with step_model.no_sync() if not sync else contextlib.nullcontext():
                with autocast_context(device, job.training.amp):
                    out = run_batch(step_model, batch)
                losses = per_sample_loss(job.training.loss, out.float(), batch["target"])
                loss = (losses * weights).sum() * ctx.world_size
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"{job.run_name}: the training loss became {loss.item()} at epoch {epoch + 1}; "
                        "lower training.lr or enable training.grad_clip")
                loss.backward()
            if batches.ends_step[k]:
                if job.training.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), job.training.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            real = weights > 0
            total_loss += float(losses.detach()[real].sum())
            seen += int(real.sum())
            bar.update(batches.group_sizes[k])
            bar.set_postfix(loss=f"{total_loss / max(seen, 1):.4f}")
        bar.close()
        train_seconds = time.perf_counter() - t0
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        val = validate(model, val_ds, device, job, ctx)
        epoch_loss = sum(dist.gather_objects(total_loss, ctx)) / max(sum(dist.gather_objects(seen, ctx)), 1)
        n_slices = len(epoch_order(job, epoch, len(train_ds)))
        row = {**identity, "epoch": epoch + 1, "train_loss": epoch_loss, **val, "lr": lr,
               "seconds": time.perf_counter() - t0,
               "slices_per_second": n_slices / train_seconds if train_seconds > 0 else float("nan")}
        state["history"].append(row)
        if val["val_psnr"] > state["best_psnr"]:
            state["best_psnr"], state["best_epoch"] = val["val_psnr"], epoch + 1
            state["best_state"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        log.info("%s %s x%d epoch %d/%d: loss %.4f, val PSNR %.2f dB, SSIM %.4f, %.1f slices/s, %.0f s",
                 job.run_name, job.dataset, job.acceleration, epoch + 1, job.training.epochs, row["train_loss"],
                 val["val_psnr"], val["val_ssim"], row["slices_per_second"], row["seconds"])
        if ctx.is_main:
            save_checkpoint(ckpt_path, {
                "fingerprint": fingerprint, "epoch": epoch, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state(),
                "history": state["history"], "best_state": state["best_state"], "best_psnr": state["best_psnr"],
                "best_epoch": state["best_epoch"],
            })

    frame = pd.DataFrame(state["history"], columns=HISTORY_COLUMNS)
    if ctx.is_main:
        best = state["best_state"] if state["best_state"] is not None else model.state_dict()
        write_model_file(job.out / "model.pt", {
            "method": job.method, "run_name": job.run_name, "display_name": job.display_name,
            "model_kwargs": job.model_kwargs, "state_dict": best, "epoch": state["best_epoch"],
            "val_psnr": state["best_psnr"], "params": n_params, "dataset": job.dataset,
            "acceleration": job.acceleration, "replicate": job.replicate, "seed": job.init_seed,
            "data_seed": job.data_seed, "fingerprint": fingerprint, "training": asdict(job.training),
            "device": device_description(device), "nproc": ctx.world_size,
        })
        with atomic_path(job.out / "history.csv") as tmp:
            frame.to_csv(tmp, index=False)
        info = {**identity, "device": device_description(device), "nproc": ctx.world_size,
                "epochs": job.training.epochs, "best_epoch": state["best_epoch"], "params": n_params,
                "amp": job.training.amp, "train_seconds": float(frame["seconds"].sum())}
        atomic_write_text(job.out / INFO_NAME, json.dumps(info, indent=1) + "\n")
        log.info("%s: best validation PSNR %.2f dB at epoch %d; wrote %s", job.run_name, state["best_psnr"],
                 state["best_epoch"], job.out)
        if not job.training.keep_checkpoints:  # model.pt holds the best weights; last.pt only served resuming
            ckpt_path.unlink(missing_ok=True)
            log.info("removed %s (training.keep_checkpoints: false)", ckpt_path)
    dist.destroy_process_group()
    return frame
