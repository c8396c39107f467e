"""Activation checkpointing of one segment of a network, the one helper every model uses.

:func:`checkpointed` recomputes a segment's activations in the backward pass
instead of keeping them (memory for compute), and is safe for batch
normalisation: the recomputation does not update the running statistics a
second time. OUCR checkpoints each CRNN iteration, the baselines their natural
segments (cascades, iterations, levels).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


@contextlib.contextmanager
def frozen_batchnorm_statistics(module: nn.Module) -> Iterator[None]:
    """Within the block, batch norms of ``module`` normalise with batch statistics but keep their running ones."""
    saved = []
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats:
            saved.append((m, m.momentum, m.num_batches_tracked.clone()))
            m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged
    try:
        yield
    finally:
        for m, momentum, tracked in saved:
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)


def checkpointed(
    owner: nn.Module, fn: Callable[..., Any], *inputs: torch.Tensor, enabled: bool = True
) -> Any:
    """``fn(*inputs)``, with its activations recomputed in the backward pass when ``enabled``.

    Only applies while gradients are recorded. The recomputation runs with the
    batch norms of ``owner`` frozen, so each training step updates their running
    statistics once, as without checkpointing.

    Args:
        owner: the module whose layers ``fn`` uses (for its batch norms).
        fn: the segment; it must depend on nothing random (no dropout) so that
            the recomputation reproduces the forward pass.
        inputs: tensors passed to ``fn``.
        enabled: checkpoint, or simply call ``fn``.

    Returns:
        what ``fn`` returns (a tensor or a tuple of tensors).
    """
    if not (enabled and torch.is_grad_enabled()):
        return fn(*inputs)
    calls = 0

    def segment(*xs: torch.Tensor) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            return fn(*xs)
        with frozen_batchnorm_statistics(owner):  # the recomputation in the backward pass
            return fn(*xs)

    return checkpoint(segment, *inputs, use_reentrant=False, preserve_rng_state=False)
