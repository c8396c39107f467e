"""Method names, their order in the paper's tables and their file-system names.

The one place that spells the methods: the registry, the engine, the tables, the
figures and the workflow all import these names (no torch import here, so the
Snakefile and NumPy-only steps can use it).
"""

from __future__ import annotations

from typing import Dict, List

#: the zero-filled reference (the inverse FFT of the measured k-space)
ZERO_FILLED = "Zero-filled"
#: the compressed-sensing baseline (not a network)
CS = "CS"
#: the paper's name of the full model in Table 2
OUCR_FULL = "UC-CRNN + OC-CRNN + RM (OUCR)"
#: OUCR's name in Table 1
OUCR = "OUCR"

#: Table 1 methods in the paper's row order
TABLE1_METHODS: List[str] = ["CS", "UNet", "KIKI-Net", "Kiu-net", "D5C5", "PC-RNN", "OUCR"]
#: networks of Table 1 (CS is not a network)
TABLE1_NETWORKS: List[str] = [m for m in TABLE1_METHODS if m != CS]
#: Table 2 variants in the paper's row order, the last one being OUCR itself
ABLATION_VARIANTS: List[str] = [
    "UC-CRNN",
    "UC-CRNN + RM",
    "OC-CRNN",
    "OC-CRNN + RM",
    "UC-CRNN + OC-CRNN",
    OUCR_FULL,
]
#: methods that are not trained (deterministic: one replicate)
UNTRAINED: List[str] = [ZERO_FILLED, CS]


def method_slug(name: str) -> str:
    """File-system name of a method: ``"UC-CRNN + RM"`` -> ``"uc-crnn-rm"``, ``"OUCR"`` -> ``"oucr"``.

    The full ablation model :data:`OUCR_FULL` is OUCR itself, slug ``"oucr"``.
    """
    if name == OUCR_FULL:
        return "oucr"
    slug = "".join(c if c.isalnum() else "-" for c in name.lower())
    while "--" in slug:
        slug = slug.replace("--", "-")
    return slug.strip("-")


def evaluated_as(name: str) -> str:
    """The name a method's metrics are recorded under (:data:`OUCR_FULL` is evaluated as ``OUCR``)."""
    return OUCR if name == OUCR_FULL else name


def sweep_name(iterations: int) -> str:
    """Display name of OUCR trained with ``iterations`` CRNN iterations (the J sweep)."""
    return f"OUCR J={int(iterations)}"


def sweep_iterations(name: str, default: int) -> int:
    """Inverse of :func:`sweep_name`; ``"OUCR"`` itself has the ``default`` J.

    Raises:
        ValueError: for a name that is neither OUCR nor a sweep name.
    """
    if name == OUCR:
        return int(default)
    prefix = "OUCR J="
    if name.startswith(prefix) and name[len(prefix):].isdigit():
        return int(name[len(prefix):])
    raise ValueError(f"{name!r} is not OUCR or an 'OUCR J=<n>' sweep run")


def slugs(names: List[str]) -> Dict[str, str]:
    """``{slug: name}`` of several names (for looking a run folder up)."""
    return {method_slug(n): n for n in names}
