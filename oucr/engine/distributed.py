"""One training over several processes (DistributedDataParallel), and how its work is shared.

``oucr train --nproc N`` starts N processes with PyTorch's own launcher
(``python -m torch.distributed.run``, i.e. torchrun, standalone on this machine);
each finds its rank in the environment the launcher sets. NCCL is the backend on
CUDA (one GPU per process), Gloo on the CPU.

How the work is split so that N processes compute what one process would:

* one optimiser step consumes a *step group*: ``accumulate`` consecutive
  micro-batches of the configured ``batch_size`` (the global batch) taken from the
  epoch's order, which is the same for every process count;
* each micro-batch is cut into N contiguous pieces, one per rank (sizes differ by
  at most one); a rank whose piece is empty (a last, short batch) processes one
  sample with weight 0, so that every rank takes part in every gradient
  reduction and none waits forever;
* each sample's loss is weighted ``1 / (samples in the step group)`` and multiplied
  by N, because DistributedDataParallel averages the ranks' gradients: the
  result is the gradient of the mean loss over the step group, as in one process.

Validation shards whole volumes over the ranks (round robin), each rank scores its
volumes with the plain module (no collective call inside, so unequal shards cannot
hang, the cause of fastMRI's multi-GPU validation hangs), and the per-volume
results are gathered on every rank: validation is complete and the same on all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List, Sequence, Tuple

import torch


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a (possibly single-process) training."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """The process that writes checkpoints, outputs and logs."""
        return self.rank == 0

    @classmethod
    def from_environment(cls) -> "DistributedContext":
        """The context set by torchrun (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``); one process otherwise."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(world, int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", os.environ["RANK"])))


def launched_by_torchrun() -> bool:
    """Whether this process was started by PyTorch's launcher."""
    return "TORCHELASTIC_RUN_ID" in os.environ or ("LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ)


def init_process_group(ctx: DistributedContext, device: torch.device) -> None:
    """Join the process group: NCCL on CUDA, Gloo otherwise (no-op for one process)."""
    if not ctx.is_distributed or torch.distributed.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend=backend)


def destroy_process_group() -> None:
    """Leave the process group, after every rank has arrived."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def step_groups(order: Sequence[int], batch_size: int, accumulate: int) -> List[List[List[int]]]:
    """The epoch's order cut into step groups of ``accumulate`` micro-batches of ``batch_size``.

    The last micro-batch and the last group may be short; every index appears once.
    """
    if batch_size < 1 or accumulate < 1:
        raise ValueError(f"batch_size and accumulate must be positive, got {batch_size} and {accumulate}")
    batches = [list(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]
    return [batches[i : i + accumulate] for i in range(0, len(batches), accumulate)]


def shard(batch: Sequence[int], rank: int, world_size: int) -> Tuple[List[int], List[float]]:
    """This rank's contiguous piece of a global micro-batch, with a weight per sample.

    Returns:
        ``(indices, weights)``: the real samples have weight 1; a rank whose piece is
        empty gets the batch's first sample with weight 0 (it computes, contributes nothing).
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} out of range for {world_size} processes")
    n = len(batch)
    if n == 0:
        raise ValueError("cannot shard an empty batch")
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    size = base + (1 if rank < extra else 0)
    piece = list(batch[start : start + size])
    if not piece:
        return [batch[0]], [0.0]
    return piece, [1.0] * len(piece)


def shard_volumes(volumes: Sequence[str], rank: int, world_size: int) -> List[str]:
    """Whole volumes for one rank (round robin over the sorted list)."""
    return list(sorted(volumes)[rank::world_size])


def gather_objects(obj: Any, ctx: DistributedContext) -> List[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` for one process)."""
    if not ctx.is_distributed:
        return [obj]
    out: List[Any] = [None] * ctx.world_size
    torch.distributed.all_gather_object(out, obj)
    return out
