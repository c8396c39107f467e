"""Exclusive GPU slots on one machine: each job claims its own GPU(s) through lock files.

Snakemake counts a ``gpu`` resource (``--resources gpu=4``) but assigns no device to a
job, so every job that picks ``cuda`` lands on GPU 0. :func:`claim_gpus` closes that gap:
a job takes an exclusive ``flock`` on one lock file per GPU and then narrows
``CUDA_VISIBLE_DEVICES`` to the GPUs it holds, so ``cuda`` (``cuda:0``) is its own GPU.

* The kernel drops a ``flock`` when the holder's last descriptor of the file closes, i.e.
  when it exits, crashes or is killed (SIGKILL included): no stale lock is left behind.
  Lock files are never deleted (deleting one while another process waits on it would let
  two processes hold "the same" lock on two different files).
* A claim of several GPUs (one DDP training) is all-or-nothing: the GPUs are tried in a
  fixed order without waiting, and if fewer than ``count`` are free, every lock taken is
  dropped before the next try. A waiting claimant never holds a GPU idle and two claimants
  can never each hold part of what the other needs.
* The GPUs a job may claim and the lock folder are :mod:`oucr.engine.gpu_devices`'s
  (``CUDA_VISIBLE_DEVICES``, ``nvidia-smi -L``, ``$OUCR_GPU_LOCK_DIR``, SLURM,
  ``OUCR_GPU_SLOTS``); who holds which lock, and ``oucr gpus`` (also
  ``python -m oucr.engine.gpu_slots``), are :mod:`oucr.engine.gpu_holders`'s.

The caller must claim before anything touches CUDA in its process: CUDA reads
``CUDA_VISIBLE_DEVICES`` once, when its driver initialises, and ``torch.cuda.is_available()``
or ``torch.cuda.device_count()`` already initialise it (as do ``select_device`` and moving a
tensor to ``cuda``). The claim refuses, with a clear error, when it finds CUDA initialised.
Forked children (DataLoader workers) share the lock descriptors, so after a crash the GPU is
free once they have exited too; :meth:`GpuClaim.release` unlocks for them as well. A child
started with ``subprocess`` does not hold the locks unless given ``pass_fds=claim.lock_fds``
(then the GPUs stay claimed while it runs, even if the claimant is killed).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

try:  # POSIX only; the claim raises a clear error where it is missing
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from oucr.engine.gpu_devices import (
    LOCK_DIR_ENV,
    ORDER_ENV,
    VISIBLE_ENV,
    default_lock_dir,
    lock_path,
    user_lock_dir,
    visible_gpu_ids,
)
from oucr.engine.gpu_holders import describe_slots, write_holder
from oucr.engine.gpu_holders import add_arguments, run  # `python -m oucr.engine.gpu_slots` lists the slots
from oucr.errors import ConfigError, OUCRError

log = logging.getLogger(__name__)

DEFAULT_POLL_S = 2.0
_STILL_WAITING_EVERY_S = 600.0
# Claims of this process that set os.environ; a second one would wait on the first forever.
_ENVIRONMENT_CLAIMS: List["GpuClaim"] = []


class GpuSlotError(OUCRError):
    """GPU slots cannot be claimed (CUDA already initialised, unusable lock folder)."""


class GpuSlotTimeout(GpuSlotError):
    """No ``count`` GPUs became free within the timeout."""


@dataclass(eq=False)  # identity: two claims of the same GPUs are different claims
class GpuClaim:
    """GPUs held by this process; :meth:`release` (or leaving the ``with``) frees them.

    An inactive claim (``count == 0``, or no GPU here) holds nothing and changed nothing.
    Without a release the GPUs stay held until the process exits.

    Attributes:
        ids: the claimed ``CUDA_VISIBLE_DEVICES`` entries, in order (empty if inactive).
        lock_dir: the lock folder (``None`` if inactive).
        environment: the variables the claim sets for a process that uses these GPUs.
    """

    ids: Tuple[str, ...] = ()
    lock_dir: Optional[Path] = None
    environment: Dict[str, str] = field(default_factory=dict)
    _fds: List[int] = field(default_factory=list, repr=False)
    _saved_env: Dict[str, Optional[str]] = field(default_factory=dict, repr=False)

    @property
    def active(self) -> bool:
        """Whether this claim holds GPUs."""
        return bool(self.ids)

    @property
    def lock_fds(self) -> Tuple[int, ...]:
        """The lock descriptors, for ``subprocess.run(..., pass_fds=claim.lock_fds)``.

        A child given them keeps the GPUs claimed while it lives, even if this process is
        killed; :meth:`release` unlocks them for the child too.
        """
        return tuple(self._fds)

    @property
    def visible_devices(self) -> Optional[str]:
        """The ``CUDA_VISIBLE_DEVICES`` value of the claimed GPUs (``None`` if inactive)."""
        return ",".join(self.ids) if self.ids else None

    def release(self) -> None:
        """Unlock the GPUs and restore the environment variables the claim changed (idempotent)."""
        for fd in self._fds:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)  # also for forked children that share fd
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        if self in _ENVIRONMENT_CLAIMS:
            _ENVIRONMENT_CLAIMS.remove(self)
        if self.ids:
            log.info("released GPU(s) %s", ",".join(self.ids))
        self.ids = ()
        self.environment = {}

    def __enter__(self) -> "GpuClaim":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _prepare_lock_dir(lock_dir: Path) -> None:
    """Create the lock folder; the shared temp folder's per-user folder must be this user's own."""
    user_dir = user_lock_dir()
    try:
        if lock_dir == user_dir or user_dir in lock_dir.parents:
            user_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            st = os.lstat(user_dir)
            if user_dir.is_symlink() or st.st_uid != os.getuid():
                raise GpuSlotError(
                    f"GPU lock folder {user_dir} does not belong to this user; set {LOCK_DIR_ENV} to a folder that does"
                )
        lock_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GpuSlotError(f"cannot create the GPU lock folder {lock_dir}: {err}") from err


def _open_lock(path: Path) -> Tuple[int, bool]:
    """Open (creating) a lock file; returns ``(fd, writable)``. Read-only suffices to lock."""
    flags = os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o666), True
    except PermissionError:
        try:
            return os.open(path, os.O_RDONLY | flags), False
        except OSError as err:
            raise GpuSlotError(f"cannot open the GPU lock file {path}: {err}") from err
    except OSError as err:
        raise GpuSlotError(f"cannot open the GPU lock file {path}: {err}") from err


def _try_claim(lock_dir: Path, ids: Sequence[str], count: int) -> Optional[List[Tuple[str, int, bool]]]:
    """One all-or-nothing pass over ``ids`` in order: ``count`` held locks, or ``None`` and none held."""
    held: List[Tuple[str, int, bool]] = []
    try:
        for gpu_id in ids:
            fd, writable = _open_lock(lock_path(lock_dir, gpu_id))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            except OSError as err:
                os.close(fd)
                raise GpuSlotError(f"cannot lock {lock_path(lock_dir, gpu_id)}: {err}") from err
            held.append((gpu_id, fd, writable))
            if len(held) == count:
                return held
    except BaseException:
        for _, fd, _ in held:
            os.close(fd)
        raise
    for _, fd, _ in held:
        os.close(fd)  # closing the only descriptor drops its lock
    return None



def _torch_cuda_initialised() -> bool:
    torch = sys.modules.get("torch")  # not imported: torch cannot have initialised CUDA
    if torch is None:
        return False
    try:
        return bool(torch.cuda.is_initialized())
    except Exception:  # a half-imported or stub torch
        return False


def _cuda_driver_initialised() -> bool:
    """Whether this process has initialised the CUDA driver (``cuInit``), by any library.

    ``torch.cuda.is_available()`` and ``device_count()`` do so without initialising torch's
    CUDA state, and from then on CUDA ignores ``CUDA_VISIBLE_DEVICES``. Before ``cuInit``
    every driver call but a few answers ``CUDA_ERROR_NOT_INITIALIZED`` (3), which is what
    the probe asks; it only looks if ``libcuda`` is already loaded (else nothing can have
    initialised it, and loading it here would cost time).
    """
    try:
        with open("/proc/self/maps") as maps:
            if not any("libcuda.so" in line for line in maps):
                return False
    except OSError:  # not Linux: no probe
        return False
    try:
        import ctypes

        driver = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_int(0)
        return int(driver.cuDeviceGetCount(ctypes.byref(count))) != 3
    except (OSError, AttributeError):
        return False


def _busy_summary(lock_dir: Path, ids: Sequence[str]) -> str:
    by_slot = {s.slot: s for s in describe_slots(lock_dir)}
    parts = []
    for gpu_id in ids:
        status = by_slot.get(gpu_id)
        if status is not None and status.held:
            parts.append(f"{gpu_id} (pid {status.pid} on {status.host} since {status.started})")
    return ", ".join(parts) or "none (they were busy a moment ago)"


def claim_gpus(
    count: int = 1,
    *,
    lock_dir: Optional[Path] = None,
    total: Optional[int] = None,
    timeout: Optional[float] = None,
    poll: float = DEFAULT_POLL_S,
    set_environment: bool = True,
) -> GpuClaim:
    """Claim ``count`` GPUs of this machine for this process, waiting until they are free.

    Call it before anything initialises CUDA in this process. With ``set_environment`` the
    claim sets ``CUDA_VISIBLE_DEVICES`` to the claimed GPUs (and ``CUDA_DEVICE_ORDER`` to
    ``PCI_BUS_ID`` if it chose among the machine's indices and the order was unset), so the
    job's ``cuda`` is its own GPU; :meth:`GpuClaim.release` restores both.

    Args:
        count: GPUs to hold at once (several for one DDP training); 0 claims nothing.
        lock_dir: lock folder (default :func:`default_lock_dir`); claimants that must not
            share a GPU must use the same folder.
        total: number of GPUs of the machine, overriding ``$OUCR_GPU_SLOTS`` and ``nvidia-smi``.
        timeout: seconds to wait for free GPUs; ``None`` waits as long as it takes, 0 tries once.
        poll: seconds between tries while waiting (jittered by +-25 %).
        set_environment: set the variables in ``os.environ``; without it only
            ``GpuClaim.environment`` carries them (for a launcher that starts the job).

    Returns:
        the claim; inactive (holding nothing) if ``count`` is 0 or there is no GPU.

    Raises:
        ConfigError: ``count`` is negative or more than the visible GPUs.
        GpuSlotError: CUDA is already initialised in this process, or the locks are unusable.
        GpuSlotTimeout: ``timeout`` passed before ``count`` GPUs were free.
    """
    if count < 0:
        raise ConfigError(f"GPU count must be 0 or more, got {count}")
    if poll <= 0:
        raise ConfigError(f"poll must be positive, got {poll}")
    if count == 0:
        return GpuClaim()
    ids = visible_gpu_ids(total)
    if not ids:
        log.info("no GPU to claim here; running without a GPU slot")
        return GpuClaim()
    if count > len(ids):
        raise ConfigError(f"{count} GPUs were asked for, but only {len(ids)} are visible here ({','.join(ids)})")
    if fcntl is None:  # pragma: no cover - Windows
        raise GpuSlotError("GPU slots need POSIX file locks (fcntl), which this platform lacks")
    if set_environment and (_torch_cuda_initialised() or _cuda_driver_initialised()):
        raise GpuSlotError(
            "CUDA is already initialised in this process, so CUDA_VISIBLE_DEVICES can no longer "
            "select a GPU: claim GPUs before any CUDA call (torch.cuda.is_available(), "
            "torch.cuda.device_count(), select_device, .to('cuda'))"
        )
    if set_environment and _ENVIRONMENT_CLAIMS:
        raise GpuSlotError(
            f"this process already holds GPU(s) {_ENVIRONMENT_CLAIMS[0].visible_devices}; "
            "release that claim before claiming again"
        )
    folder = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    _prepare_lock_dir(folder)

    start = time.monotonic()
    next_notice = 0.0
    while True:
        held = _try_claim(folder, ids, count)
        if held is not None:
            break
        waited = time.monotonic() - start
        if timeout is not None and waited >= timeout:
            raise GpuSlotTimeout(
                f"no {count} free GPU(s) among {','.join(ids)} after {waited:.1f} s "
                f"(busy: {_busy_summary(folder, ids)}; lock folder {folder})"
            )
        if waited >= next_notice:
            log.info("waiting for %d free GPU(s) among %s; busy: %s (lock folder %s)",
                     count, ",".join(ids), _busy_summary(folder, ids), folder)
            next_notice = waited + _STILL_WAITING_EVERY_S
        pause = poll * random.uniform(0.75, 1.25)  # jitter: multi-GPU claimants do not retry in lockstep
        if timeout is not None:
            pause = min(pause, max(timeout - waited, 0.0))
        time.sleep(pause)

    for gpu_id, fd, writable in held:
        if writable:
            write_holder(fd, gpu_id)
    claimed = tuple(gpu_id for gpu_id, _, _ in held)
    environment = {VISIBLE_ENV: ",".join(claimed)}
    if os.environ.get(VISIBLE_ENV) is None and os.environ.get(ORDER_ENV) is None and all(i.isdigit() for i in claimed):
        environment[ORDER_ENV] = "PCI_BUS_ID"  # the indices are nvidia-smi's, which are PCI bus order
    claim = GpuClaim(ids=claimed, lock_dir=folder, environment=environment, _fds=[fd for _, fd, _ in held])
    if set_environment:
        claim._saved_env = {name: os.environ.get(name) for name in environment}
        os.environ.update(environment)
        _ENVIRONMENT_CLAIMS.append(claim)
    log.info("claimed GPU(s) %s (lock folder %s)", ",".join(claimed), folder)
    return claim


def gpu_environment(claim: GpuClaim, base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The environment for a child process that should use the claimed GPUs.

    Args:
        claim: a claim (an inactive one leaves ``base`` as it is).
        base: the environment to start from (default ``os.environ``).

    Returns:
        a copy of ``base`` with the claim's variables set.
    """
    env = dict(os.environ if base is None else base)
    env.update(claim.environment)
    return env


if __name__ == "__main__":  # python -m oucr.engine.gpu_slots: who holds which GPU (oucr gpus)
    _parser = argparse.ArgumentParser(prog="python -m oucr.engine.gpu_slots",
                                      description="list the GPU slots of this machine and who holds them")
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
