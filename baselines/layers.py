"""Small building blocks shared by the baselines.

* :func:`conv_stack`: the plain CNN of D5C5, KIKI-Net and PC-RNN's final module;
* :func:`activation_layer`: an activation by name;
* :func:`checkpointed`: optional activation checkpointing of one segment of a
  network, safe for batch normalisation (the recomputation in the backward pass
  does not update the running statistics a second time).

Every baseline takes ``checkpointing=False`` in its constructor because the
trainer passes the config's ``training.checkpointing`` to whichever model it
builds; each applies it to its natural segments (cascades, iterations, levels).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, List

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def conv_stack(channels: List[int], activation: str = "relu", kernel_size: int = 3) -> nn.Sequential:
    """Plain CNN ``channels[0] -> ... -> channels[-1]``: convs with bias, activation between.

    Args:
        channels: channel counts, e.g. ``[2, 128, 128, 128, 128, 2]`` for five convolutions.
        activation: ``relu``, ``leaky_relu`` (slope 0.01) or ``prelu`` (one slope per channel).
        kernel_size: odd kernel size (padding keeps the image size).

    Returns:
        the network; no activation after the last convolution.
    """
    if len(channels) < 2:
        raise ValueError("conv_stack needs at least an input and an output channel count")
    if kernel_size % 2 != 1:
        raise ValueError(f"conv_stack needs an odd kernel size, got {kernel_size}")
    layers: List[nn.Module] = []
    for i, (cin, cout) in enumerate(zip(channels[:-1], channels[1:])):
        layers.append(nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=True))
        if i < len(channels) - 2:
            layers.append(activation_layer(activation, cout))
    return nn.Sequential(*layers)


def activation_layer(name: str, channels: int = 1) -> nn.Module:
    """An activation by name: ``relu``, ``leaky_relu`` (slope 0.01) or ``prelu`` (``channels`` slopes)."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01, inplace=True)
    if name == "prelu":
        return nn.PReLU(channels)
    raise ValueError(f"unknown activation {name!r}; use relu, leaky_relu or prelu")


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
