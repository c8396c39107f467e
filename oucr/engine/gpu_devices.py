"""Which GPUs a job on this machine may claim, and where their lock files are; nothing here touches CUDA.

* The GPUs a job may claim (:func:`visible_gpu_ids`) are the entries of an existing
  ``CUDA_VISIBLE_DEVICES`` (indices or ``GPU-``/``MIG-`` UUIDs, e.g. set by SLURM or by
  hand), else every GPU that ``nvidia-smi -L`` lists (its indices, which are PCI bus
  order; the claim then also sets ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so that CUDA numbers
  them the same way). Nothing here initialises CUDA: counting devices through CUDA would
  freeze ``CUDA_VISIBLE_DEVICES`` (:mod:`oucr.engine.gpu_slots` says why).
* Locks (:mod:`oucr.engine.gpu_slots`) are files in a local folder: they coordinate the
  processes of ONE machine. The folder (:func:`default_lock_dir`) is ``$OUCR_GPU_LOCK_DIR``,
  else ``<tmp>/oucr-gpu-locks-<uid>`` (per user: two users sharing a workstation must
  point ``OUCR_GPU_LOCK_DIR`` at one folder both can write). Inside a SLURM job that was
  given GPUs, the subfolder ``slurm-<job id>`` is used, because there the indices count
  the job's own GPUs (two jobs on one node both see a "GPU 0", which are different GPUs).
* ``OUCR_GPU_SLOTS=N`` (or ``total=N``) replaces the device count of the machine: it
  simulates ``N`` GPUs (tests, dry runs) or hides them all (``0``).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

from oucr.errors import ConfigError

SLOTS_ENV = "OUCR_GPU_SLOTS"
LOCK_DIR_ENV = "OUCR_GPU_LOCK_DIR"
VISIBLE_ENV = "CUDA_VISIBLE_DEVICES"
ORDER_ENV = "CUDA_DEVICE_ORDER"
_GPU_LINE = re.compile(r"^GPU\s+(\d+):\s*(.*?)\s*\(UUID:\s*(GPU-[^)\s]+)\)")
_MIG_LINE = re.compile(r"^\s+MIG\b.*\(UUID:\s*(MIG-[^)\s]+)\)")
_UUID_ENTRY = re.compile(r"^(GPU|MIG)-[A-Za-z0-9/_-]+$")


def parse_visible_devices(value: str) -> List[str]:
    """The entries of a ``CUDA_VISIBLE_DEVICES`` value, read the way CUDA reads them.

    Entries are device indices or ``GPU-``/``MIG-`` UUIDs; as in CUDA, the list ends at the
    first entry that is neither (``-1``, an empty entry, SLURM's ``NoDevFiles``), so
    ``""`` and ``"-1"`` mean no GPU.

    Args:
        value: the variable's value, e.g. ``"0,1"`` or ``"GPU-8e7a...,GPU-11c4..."``.

    Returns:
        the entries, stripped, duplicates dropped.
    """
    entries: List[str] = []
    for raw in value.split(","):
        entry = raw.strip()
        if not (entry.isdigit() or _UUID_ENTRY.match(entry)):
            break
        if entry not in entries:
            entries.append(entry)
    return entries


def parse_nvidia_smi_list(text: str) -> List[str]:
    """The GPU ids in the output of ``nvidia-smi -L``.

    Without MIG these are the indices (``"0"``, ``"1"``, ...). When some GPU is split into
    MIG instances, CUDA can only address devices by UUID, so the ids are the MIG UUIDs of
    the split GPUs and the GPU UUIDs of the others.
    """
    gpus: List[Tuple[str, str, List[str]]] = []  # (index, uuid, MIG uuids)
    for line in text.splitlines():
        gpu = _GPU_LINE.match(line)
        if gpu:
            gpus.append((gpu.group(1), gpu.group(3), []))
            continue
        mig = _MIG_LINE.match(line)
        if mig and gpus:
            gpus[-1][2].append(mig.group(1))
    if any(migs for _, _, migs in gpus):
        return [uuid for _, gpu_uuid, migs in gpus for uuid in (migs or [gpu_uuid])]
    return [index for index, _, _ in gpus]


def machine_gpu_ids(total: Optional[int] = None) -> List[str]:
    """Every GPU of this machine, without initialising CUDA.

    Args:
        total: number of GPUs to assume (overrides ``$OUCR_GPU_SLOTS`` and detection).

    Returns:
        ``["0", ..., str(total - 1)]`` for a given or simulated count, else the ids from
        ``nvidia-smi -L`` (see :func:`parse_nvidia_smi_list`), else one index per
        ``/dev/nvidiaN`` device node (``"0"`` up), else ``[]``.

    Raises:
        ConfigError: if ``total`` or ``$OUCR_GPU_SLOTS`` is not a count.
    """
    if total is None and os.environ.get(SLOTS_ENV, "").strip():
        raw = os.environ[SLOTS_ENV].strip()
        if not raw.isdigit():
            raise ConfigError(f"{SLOTS_ENV} must be a GPU count (0, 1, 2, ...), got {raw!r}")
        total = int(raw)
    if total is not None:
        if total < 0:
            raise ConfigError(f"total must be a GPU count (0 or more), got {total}")
        return [str(i) for i in range(total)]
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True)
        ids = parse_nvidia_smi_list(listed.stdout)
        if ids:
            return ids
    except (OSError, subprocess.SubprocessError):
        pass
    # CUDA numbers the devices it can open 0..k-1, whatever their node numbers (a container
    # given only /dev/nvidia2 has a GPU 0), so the fallback counts the nodes
    nodes = [p for p in Path("/dev").glob("nvidia[0-9]*") if p.name[len("nvidia"):].isdigit()]
    return [str(i) for i in range(len(nodes))]


def under_slurm() -> bool:
    """Whether this process runs inside a SLURM job."""
    return bool(os.environ.get("SLURM_JOB_ID"))


def visible_gpu_ids(total: Optional[int] = None) -> List[str]:
    """The GPUs this process may claim: the ``CUDA_VISIBLE_DEVICES`` entries, else the machine's.

    A ``CUDA_VISIBLE_DEVICES`` on a machine without GPUs claims nothing (a variable left in a
    shell must not make CPU jobs wait for phantom GPUs). Inside a SLURM job without
    ``CUDA_VISIBLE_DEVICES``, SLURM gave the job no GPU, so there is none to claim.

    Args:
        total: number of GPUs of the machine (see :func:`machine_gpu_ids`).
    """
    machine = machine_gpu_ids(total)
    if not machine:
        return []
    value = os.environ.get(VISIBLE_ENV)
    if value is not None:
        return parse_visible_devices(value)
    if under_slurm():
        return []
    return machine


def user_lock_dir() -> Path:
    """This user's lock folder in the shared temp folder (the default without ``$OUCR_GPU_LOCK_DIR``)."""
    return Path(tempfile.gettempdir()) / f"oucr-gpu-locks-{os.getuid()}"


def default_lock_dir() -> Path:
    """The lock folder of this process (see the module docstring)."""
    env = os.environ.get(LOCK_DIR_ENV, "").strip()
    base = Path(env) if env else user_lock_dir()
    if under_slurm() and os.environ.get(VISIBLE_ENV) is not None:
        return base / f"slurm-{os.environ['SLURM_JOB_ID']}"
    return base


def lock_path(lock_dir: Path, gpu_id: str) -> Path:
    """The lock file of one GPU id (UUID characters other than ``[A-Za-z0-9._-]`` become ``_``)."""
    return Path(lock_dir) / f"gpu-{re.sub(r'[^A-Za-z0-9._-]', '_', gpu_id)}.lock"
