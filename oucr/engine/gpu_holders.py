"""Who holds which GPU slot: the record in each lock file, the probe of a lock, and ``oucr gpus``.

A claimant (:func:`oucr.engine.gpu_slots.claim_gpus`) writes one JSON line into each lock
file it holds (:func:`write_holder`: slot, pid, host, start time, command); the record
stays after the holder exits, so it names the last holder of a free slot.
:func:`describe_slots` reads the records of a lock folder and probes each lock with a
shared lock taken for an instant; ``oucr gpus`` (``python -m oucr.engine.gpu_slots``)
prints one line per visible GPU and per other lock file of the folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional

try:  # POSIX only; without it no lock can be held and none is listed
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from oucr.engine.gpu_devices import LOCK_DIR_ENV, default_lock_dir, visible_gpu_ids


@dataclass
class SlotStatus:
    """One lock file of a lock folder, as :func:`describe_slots` finds it.

    ``pid``, ``host``, ``started`` and ``command`` describe the holder when ``held`` is
    true, and the last holder (who has exited) otherwise.
    """

    slot: str
    held: bool
    path: Path
    pid: Optional[int] = None
    host: Optional[str] = None
    started: Optional[str] = None
    command: Optional[str] = None


def write_holder(fd: int, gpu_id: str) -> None:
    """Record who holds the lock, for humans and :func:`describe_slots` (best effort)."""
    record = {
        "slot": gpu_id,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
        "command": " ".join(sys.argv)[:500],
    }
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)



def _read_holder(path: Path) -> Dict[str, object]:
    try:
        record = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _is_held(path: Path) -> bool:
    """Whether some process holds ``path``'s lock (probes with a shared lock, dropped at once)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def describe_slots(lock_dir: Optional[Path] = None) -> List[SlotStatus]:
    """Every lock file of a lock folder: which GPU, whether held, and by whom.

    The probe takes a shared lock for an instant; a claimant trying that GPU at the same
    instant sees it busy and tries again after its poll interval.

    Args:
        lock_dir: the folder (default :func:`default_lock_dir`).

    Returns:
        one :class:`SlotStatus` per lock file, sorted by GPU id; ``[]`` if the folder is absent.
    """
    folder = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    if fcntl is None or not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("gpu-*.lock")):
        record = _read_holder(path)
        pid = record.get("pid")
        out.append(SlotStatus(
            slot=str(record.get("slot") or path.stem[len("gpu-"):]),
            held=_is_held(path),
            path=path,
            pid=pid if isinstance(pid, int) else None,
            host=str(record["host"]) if "host" in record else None,
            started=str(record["started"]) if "started" in record else None,
            command=str(record["command"]) if "command" in record else None,
        ))
    return sorted(out, key=lambda s: (not s.slot.isdigit(), int(s.slot) if s.slot.isdigit() else 0, s.slot))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``oucr gpus`` (list the GPU slots and who holds them)."""
    parser.add_argument("--lock-dir", type=Path,
                        help=f"lock folder (default ${LOCK_DIR_ENV} or a per-user temp folder)")


def run(args: argparse.Namespace) -> int:
    """Entry of ``oucr gpus``: one line per visible GPU and per other lock file of the folder."""
    folder = args.lock_dir if args.lock_dir is not None else default_lock_dir()
    statuses = {s.slot: s for s in describe_slots(folder)}
    visible = visible_gpu_ids()
    print(f"lock folder: {folder}")
    if not visible:
        print("no GPU visible here")
    for gpu_id in visible + [s for s in statuses if s not in visible]:
        status = statuses.get(gpu_id)
        if status is not None and status.held:
            print(f"GPU {gpu_id}: held by pid {status.pid} on {status.host} since {status.started}: {status.command}")
        else:
            print(f"GPU {gpu_id}: free")
    return 0
