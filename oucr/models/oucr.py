"""OUCR: Over-and-Under Complete Convolutional RNN (paper Eq. 5, Fig. 2a/c).

::

    y_oc = OC-CRNN(x_zf)              J iterations, DC after each
    y_uc = UC-CRNN(y_oc)              J iterations, DC after each
    y    = DC(RM(concat(y_oc, y_uc)))

The refine module (RM, Fig. 2c) is, every convolution 3 x 3 with a bias::

    conv(c -> 64) - ReLU - conv(64 -> 64) - ReLU - conv(64 -> 64) - conv(64 -> 2)

with ``c = 4`` on the two branches' concatenation (77,378 parameters) and ``c = 2``
when a single branch feeds it (76,226). With the paper's widths (OC 64, UC 128
features, RM 64, J = 5, two residual blocks, two resampling stages) the model has
1,191,560 trainable parameters, the paper's 1.192 M; :mod:`oucr.models.crnn` lists
the layers of the two branches.

The Table 2 ablation variants are the same class with ``use_oc``, ``use_uc`` and
``use_rm`` switched: without RM the last branch's DC output is the result; with a
single branch the RM takes its 2 channels; with both, OC runs first and UC starts
from OC's output (Eq. 5). The registry (:mod:`oucr.models.registry`) names them as
the paper does. Trainable parameters at the paper's widths:

=================================  =========
variant                            params
=================================  =========
UC-CRNN                              890,243
UC-CRNN + RM                         966,469
OC-CRNN                              223,939
OC-CRNN + RM                         300,165
UC-CRNN + OC-CRNN                  1,114,182
UC-CRNN + OC-CRNN + RM (OUCR)      1,191,560
=================================  =========

Only the UC branch pools, so image sizes must be multiples of ``2 ** uc_depth``
(:attr:`OUCR.size_multiple`; :meth:`ReconModel.check_input` raises a ValueError
otherwise). At 320 x 320 the OC hidden state is 1280 x 1280 x 64; ``checkpointing``
recomputes each iteration in the backward pass (``benchmarks/oucr_memory.py``
measures what that saves), and the model runs under ``torch.autocast`` (bf16) with
the DC steps in float32.
"""

from __future__ import annotations

from typing import Dict, List

import torch
from torch import nn

from oucr.models.base import ReconModel
from oucr.models.crnn import CRNN, conv3x3
from oucr.physics import SingleCoilMRI


class RefineModule(nn.Module):
    """The refine module on the channel concatenation of the branch outputs."""

    def __init__(self, in_channels: int, features: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(in_channels, features), nn.ReLU(inplace=True),
            conv3x3(features, features), nn.ReLU(inplace=True),
            conv3x3(features, features),
            conv3x3(features, 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.body(x)


class OUCR(ReconModel):
    """OUCR and its ablation variants.

    Args:
        oc_features: features of the overcomplete branch (paper 64).
        uc_features: features of the undercomplete branch (paper 128).
        rm_features: features of the refine module (paper 64).
        iterations: CRNN iterations J, weights shared (paper 5).
        res_blocks: residual blocks in each recurrent cell (paper 2).
        oc_depth: resampling stages of the OC branch (paper 2: hidden state 4x the image per axis).
        uc_depth: resampling stages of the UC branch (paper 2: hidden state 1/4 per axis).
        use_oc, use_uc, use_rm: which components to build (Table 2).
        checkpointing: activation checkpointing per iteration (memory for compute).
        decoder_order: where the branch decoders resample: ``"paper"`` (the paper's text, the
            default), ``"mirrored"`` or ``"lineage"`` (:mod:`oucr.models.crnn`).
    """

    def __init__(
        self,
        oc_features: int = 64,
        uc_features: int = 128,
        rm_features: int = 64,
        iterations: int = 5,
        res_blocks: int = 2,
        oc_depth: int = 2,
        uc_depth: int = 2,
        use_oc: bool = True,
        use_uc: bool = True,
        use_rm: bool = True,
        checkpointing: bool = False,
        decoder_order: str = "paper",
    ) -> None:
        super().__init__()
        if not (use_oc or use_uc):
            raise ValueError("OUCR needs at least one of the OC and UC branches")
        self.oc = CRNN("oc", oc_features, iterations, res_blocks, oc_depth, checkpointing, decoder_order) if use_oc else None
        self.uc = CRNN("uc", uc_features, iterations, res_blocks, uc_depth, checkpointing, decoder_order) if use_uc else None
        branches = int(use_oc) + int(use_uc)
        self.rm = RefineModule(2 * branches, rm_features) if use_rm else None

    @property
    def size_multiple(self) -> int:  # type: ignore[override]
        """Image sizes must be divisible by this (the UC branch pools)."""
        return self.uc.size_multiple if self.uc is not None else 1

    @property
    def has_unused_parameters(self) -> bool:
        """At J = 1 the recurrent cells are never called (the first iteration has no recurrent term)."""
        return any(m.iterations == 1 and len(m.cell) > 0 for m in self.branches.values())

    @property
    def branches(self) -> Dict[str, CRNN]:
        """The CRNN modules present, by name (``oc``, ``uc``)."""
        return {name: m for name, m in (("oc", self.oc), ("uc", self.uc)) if m is not None}

    def set_checkpointing(self, enabled: bool) -> None:
        """Switch activation checkpointing of every iteration on or off."""
        for m in self.branches.values():
            m.checkpointing = enabled

    def reconstruct(self, image: torch.Tensor, physics: SingleCoilMRI) -> torch.Tensor:  # noqa: D102
        outputs: List[torch.Tensor] = []
        x = image
        for module in self.branches.values():
            x = module(x, physics)
            outputs.append(x)
        if self.rm is None:
            return x
        return physics.data_consistency(self.rm(torch.cat(outputs, dim=1)))
