"""Where the pipeline keeps each artifact under the results folder.

The one map of ``results/``: the Snakemake rules, the figures and the tables
all build paths here, so that a layout change happens in one place
(docs/ARCHITECTURE.md describes the files themselves). No torch import.

A *run* is one trained configuration (a method slug such as ``oucr`` or
``uc-crnn-rm``, or a sweep point ``oucr-j3``); a *replicate* ``k`` of a run is
the same configuration trained from another initialisation seed on the same data
stream. Untrained methods (``zero-filled``, ``cs``) have the single replicate 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Union

from oucr.names import method_slug

PathLike = Union[str, Path]

ZERO_FILLED_RUN = "zero-filled"
CS_RUN = "cs"
#: evaluation conditions of the robustness table besides the nominal one
ROBUSTNESS_CONDITIONS = ("acceleration", "equispaced", "noise")


def _rep(replicate: Union[int, str]) -> str:
    # strings pass through, so that the workflow can build wildcard patterns ("{rep}") here too
    if isinstance(replicate, int) and replicate < 0:
        raise ValueError(f"a replicate index is non-negative, got {replicate}")
    return f"r{replicate}"


def _acc(acceleration: Union[int, str]) -> str:
    return f"x{acceleration}"


def store_dir(results: PathLike, dataset: str) -> Path:
    """The prepared store of a dataset."""
    return Path(results) / "prepared" / dataset


def masks_file(results: PathLike, dataset: str, acceleration: Union[int, str], variant: Optional[str] = None) -> Path:
    """Fixed validation/test masks; ``variant`` names a non-default mask type (e.g. ``equispaced``)."""
    suffix = f"-{variant}" if variant else ""
    return Path(results) / "masks" / dataset / f"{_acc(acceleration)}{suffix}.h5"


def run_name(method: str) -> str:
    """The run folder name of a method (its slug)."""
    return method_slug(method)


def model_dir(results: PathLike, dataset: str, acceleration: Union[int, str], run: str, replicate: Union[int, str] = 0) -> Path:
    """``model.pt`` and ``history.csv`` of one replicate of a trained run."""
    return Path(results) / "models" / dataset / _acc(acceleration) / run / _rep(replicate)


def checkpoint_dir(results: PathLike, dataset: str, acceleration: Union[int, str], run: str, replicate: Union[int, str] = 0) -> Path:
    """Resumable checkpoints of one training (not a Snakemake output: a failed job's outputs are deleted)."""
    return Path(results) / "checkpoints" / dataset / _acc(acceleration) / run / _rep(replicate)


def recon_root(results: PathLike, condition: Optional[str] = None) -> Path:
    """Root of the reconstructions: nominal ones, or those of one robustness condition."""
    return Path(results) / "recon" if condition is None else Path(results) / "robustness" / condition / "recon"


def recon_dir(results: PathLike, dataset: str, acceleration: Union[int, str], run: str, replicate: Union[int, str] = 0,
              condition: Optional[str] = None) -> Path:
    """Folder of one replicate's reconstructions (``<volume>.h5``); CS writes chunk folders inside it."""
    return recon_root(results, condition) / dataset / _acc(acceleration) / run / _rep(replicate)


def cs_chunk_dir(results: PathLike, dataset: str, acceleration: Union[int, str], chunk: Union[int, str],
                 condition: Optional[str] = None) -> Path:
    """One parallel chunk of the CS reconstructions."""
    return recon_dir(results, dataset, acceleration, CS_RUN, 0, condition) / f"part{chunk}"


def recon_dirs(results: PathLike, dataset: str, acceleration: Union[int, str], run: str, replicate: Union[int, str] = 0,
               cs_chunks: int = 1, condition: Optional[str] = None) -> List[Path]:
    """Every folder holding one replicate's reconstructions (CS: its chunk folders)."""
    if run == CS_RUN:
        return [cs_chunk_dir(results, dataset, acceleration, i, condition) for i in range(int(cs_chunks))]
    return [recon_dir(results, dataset, acceleration, run, replicate, condition)]


def metrics_file(results: PathLike, dataset: str, acceleration: Union[int, str], run: str, replicate: Union[int, str] = 0,
                 kind: str = "volumes", condition: Optional[str] = None) -> Path:
    """Per-volume (``kind="volumes"``) or per-slice (``"slices"``) metrics of one replicate."""
    if kind not in ("volumes", "slices"):
        raise ValueError(f"kind must be 'volumes' or 'slices', got {kind!r}")
    root = Path(results) / "metrics" if condition is None else Path(results) / "robustness" / condition / "metrics"
    return root / dataset / _acc(acceleration) / run / f"{_rep(replicate)}.{kind}.csv"


def tables_dir(results: PathLike) -> Path:
    """Tables (CSV, Markdown, LaTeX)."""
    return Path(results) / "tables"


def figures_dir(results: PathLike) -> Path:
    """Figures (PNG and PDF)."""
    return Path(results) / "figures"


def benchmark_file(results: PathLike, step: str, dataset: str, acceleration: Union[int, str], run: str,
                   replicate: Union[int, str] = 0) -> Path:
    """Snakemake ``benchmark:`` file of one job of ``step`` (``train``, ``reconstruct``)."""
    return Path(results) / "benchmarks" / step / dataset / _acc(acceleration) / run / f"{_rep(replicate)}.tsv"
