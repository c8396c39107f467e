"""Small building blocks shared by the baselines.

* :func:`conv_stack`: the plain CNN of D5C5, KIKI-Net and PC-RNN's final module;
* :func:`activation_layer`: an activation by name;
* :func:`checkpointed`: the project's activation checkpointing
  (:mod:`oucr.models.checkpointing`), re-exported for the baselines.

Every baseline takes ``checkpointing=False`` in its constructor because the
trainer passes the config's ``training.checkpointing`` to whichever model it
builds; each applies it to its natural segments (cascades, iterations, levels).
"""

from __future__ import annotations

from typing import List

from torch import nn

from oucr.models.checkpointing import checkpointed  # noqa: F401  (the baselines' import path)


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
