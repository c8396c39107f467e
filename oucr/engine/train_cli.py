"""The ``oucr train`` command: settings, default paths, GPU claim and the multi-process launch.

With ``--nproc N`` (or ``training.nproc``) greater than one, the command claims N
GPUs (on a CUDA machine) and starts PyTorch's launcher,
``python -m torch.distributed.run --standalone --nproc-per-node N -m oucr train
...``, which runs N copies of this command; each copy sees the launcher's
environment and trains its share (:mod:`oucr.engine.train`).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

from oucr import paths
from oucr.config import load_config, with_overrides
from oucr.errors import ConfigError

log = logging.getLogger(__name__)

EXAMPLE = """examples:
  oucr train --config config/config.yaml --method OUCR --dataset demo-brain --acceleration 4
  oucr train --config config/paper.yaml --method D5C5 --dataset fastmri --acceleration 8 --nproc 4
  oucr train --config config/tiny.yaml --method UNet --dataset demo-brain --acceleration 4 --replicate 1
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr train``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXAMPLE
    parser.add_argument("--config", required=True, help="YAML config file (or inline JSON)")
    parser.add_argument("--method", required=True, help="method name as in the paper, e.g. OUCR, D5C5, 'UC-CRNN + RM'")
    parser.add_argument("--dataset", required=True, help="dataset name from the config's datasets section")
    parser.add_argument("--acceleration", type=int, required=True, help="nominal acceleration, e.g. 4")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. models.OUCR.iterations=3 or training.epochs=2 (repeatable)")
    parser.add_argument("--run-name", help="name of this run (its folders and initialisation seed); "
                                           "default: the method's slug, e.g. oucr, uc-crnn-rm")
    parser.add_argument("--replicate", type=int, default=0,
                        help="replicate index: the same run from another initialisation seed (default 0)")
    parser.add_argument("--store", type=Path,
                        help="prepared store (default: <results>/prepared/DATASET, results from the config)")
    parser.add_argument("--masks", type=Path, help="fixed masks file (default: <results>/masks/DATASET/xACC.h5)")
    parser.add_argument("--out", type=Path,
                        help="output folder for model.pt and history.csv "
                             "(default: <results>/models/DATASET/xACC/RUN/rREPLICATE)")
    parser.add_argument("--checkpoint-dir", type=Path,
                        help="resumable checkpoints, never a Snakemake output "
                             "(default: <results>/checkpoints/DATASET/xACC/RUN/rREPLICATE)")
    parser.add_argument("--threads", type=int, help="CPU threads per process (default: torch's choice)")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (overrides training.device)")
    parser.add_argument("--nproc", type=int,
                        help="processes of one DistributedDataParallel training (overrides training.nproc; "
                             "one GPU each on CUDA, Gloo on the CPU)")
    parser.add_argument("--gpus", type=int,
                        help="GPUs the scheduler granted this job (the workflow passes Snakemake's gpu resource): "
                             "that many are claimed exclusively on this machine; 0 runs on the CPU "
                             "(default: one per process when CUDA is present)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar (default: only on a terminal)")


def _launch(argv: list, nproc: int, keep_fds: tuple = ()) -> int:
    """Run this command again under torchrun with ``nproc`` processes; returns its exit status.

    ``keep_fds`` (the GPU locks) pass to the launcher, so that its processes keep the GPUs
    locked even if this parent is killed.
    """
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
               "--nproc-per-node", str(nproc), "-m", "--", "oucr", *argv]
    log.info("starting %d training processes: %s", nproc, " ".join(command))
    return subprocess.run(command, env=dict(os.environ), pass_fds=tuple(keep_fds)).returncode


def _exit_without_destructors() -> None:
    """End a finished DDP worker at once, skipping Python's teardown.

    Freeing a DDP model frees its Gloo process group, whose destructor joins Gloo's worker
    threads while the freeing thread holds the GIL; a worker thread that is itself waiting for
    the GIL (to drop a reference) never finishes, and the process hangs for ever after its
    training is done (seen on the CPU with 2 processes). Everything the run writes is written
    and renamed into place by now, so nothing is lost by not running destructors.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr train``."""
    from oucr.engine import distributed as dist
    from oucr.engine.gpu_slots import claim_gpus
    from oucr.engine.runtime import device_for_grant, gpus_wanted
    from oucr.engine.train import make_job, train

    config = with_overrides(load_config(args.config), args.overrides)
    if args.gpus is not None and args.gpus < 0:
        raise ConfigError(f"--gpus must be 0 or more, got {args.gpus}")
    results = config.get("results", "results")
    run_name = args.run_name or paths.run_name(args.method)
    job = make_job(
        config, args.method, args.dataset, args.acceleration,
        store=args.store or paths.store_dir(results, args.dataset),
        masks=args.masks or paths.masks_file(results, args.dataset, args.acceleration),
        out=args.out or paths.model_dir(results, args.dataset, args.acceleration, run_name, args.replicate),
        checkpoint_dir=args.checkpoint_dir or paths.checkpoint_dir(results, args.dataset, args.acceleration,
                                                                   run_name, args.replicate),
        run_name=run_name, device=args.device, replicate=args.replicate, nproc=args.nproc,
    )
    job.training.device = device_for_grant(job.training.device, args.gpus)
    if job.checkpoint_dir.resolve() == job.out.resolve():
        raise ConfigError("--checkpoint-dir must differ from --out (Snakemake deletes a failed job's outputs)")
    nproc = job.training.nproc
    if dist.launched_by_torchrun():
        train(job, threads=args.threads, progress=args.progress)
        _exit_without_destructors()
    # one claim for the whole training: the launcher's children inherit CUDA_VISIBLE_DEVICES
    with claim_gpus(gpus_wanted(job.training.device, nproc, args.gpus)) as claim:
        if nproc > 1:
            argv = [a for a in getattr(args, "argv", None) or sys.argv[1:]]
            return _launch(argv, nproc, claim.lock_fds)
        train(job, threads=args.threads, progress=args.progress)
    return 0
