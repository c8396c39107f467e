"""Atomic file writing: outputs appear complete under their final name or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, Sequence, Union

PathLike = Union[str, os.PathLike]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def apply_default_permissions(path: PathLike, directory: bool = False) -> None:
    """Give ``path`` the permissions a plain ``open``/``mkdir`` would have (temp files are 0600)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and nothing is left at
    ``path`` (an existing file there is left untouched).

    Args:
        path: the final destination.

    Yields:
        a temporary path in the same folder (same file system, so the rename is atomic).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        apply_default_permissions(tmp)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_directory(path: PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole.

    On any exception the temporary folder is removed and an existing ``path`` is
    left untouched, so a folder of outputs is either complete or absent.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        apply_default_permissions(tmp, directory=True)
        replace_directory(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def replace_directory(new: PathLike, final: PathLike) -> None:
    """Put the folder ``new`` at ``final``, replacing a folder there, with no moment where neither exists.

    Where the file system can swap two folders atomically (Linux), it does, then removes the
    old one from ``new``'s former name; elsewhere the old folder is first renamed aside (a
    reader then briefly finds nothing at ``final``, but never a half-written folder).
    """
    new, final = Path(new), Path(final)
    if not final.exists():
        new.rename(final)
        return
    if _exchange(new, final):
        shutil.rmtree(new)  # now the old folder
        return
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def open_hdf5(path: PathLike, what: str = "HDF5 file", hint: str = "") -> Iterator[Any]:
    """Open an HDF5 file for reading, for the body of a ``with`` block, with clear errors.

    Args:
        path: the file.
        what: what the file is, in words, for the messages ("masks file").
        hint: appended to the missing-file message ("; run `oucr masks` first").

    Raises:
        DataError: if the file is missing, or opening it, or an h5py read inside the
            block, fails (truncated or corrupt file). Other errors raised inside the block
            (the caller's own) pass through unchanged.
    """
    import h5py

    from oucr.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"{what} does not exist{hint}")
    try:
        f = h5py.File(path, "r")
    except (OSError, RuntimeError) as err:  # h5py's errors for truncated or foreign files
        raise DataError(path, f"not a readable {what} (truncated or corrupt?): {err}") from err
    try:
        with f:
            yield f
    except (OSError, RuntimeError) as err:
        if not _raised_by_h5py(err):
            raise  # the caller's own error, not a damaged file
        raise DataError(path, f"not a readable {what} (truncated or corrupt?): {err}") from err


def _raised_by_h5py(err: BaseException) -> bool:
    """Whether the innermost frame of ``err``'s traceback is h5py's (a read that failed)."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", "")).startswith("h5py")


def decoded_attrs(node: Any) -> Dict[str, Any]:
    """The attributes of an HDF5 file, group or dataset, byte strings decoded."""
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in node.attrs.items()}


def read_torch_file(path: PathLike, what: str = "torch file") -> object:
    """``torch.load`` a file of this project (model, checkpoint) with clear errors.

    Raises:
        DataError: if the file is missing or cannot be read as a torch file.
    """
    import torch

    from oucr.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"{what} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise DataError(path, f"not a readable {what} ({err})") from err


def read_csv_file(path: PathLike, what: str, required: Sequence[str] = (), hint: str = "",
                  **read_csv_args: Any) -> Any:
    """``pandas.read_csv`` a file of this project with clear errors.

    Args:
        path: the file.
        what: what the file is, in words, for the messages ("manifest", "bench CSV").
        required: columns the file must have.
        hint: appended to the missing-file message ("; run `oucr train`").
        read_csv_args: passed to ``pandas.read_csv`` (``dtype``, ``sep``).

    Returns:
        the DataFrame (possibly without rows: what an empty table means is the caller's call).

    Raises:
        DataError: naming the file, if it is missing, empty, not parseable as CSV or lacks
            a required column.
    """
    import pandas as pd

    from oucr.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"{what} does not exist{hint}")
    try:
        frame = pd.read_csv(path, **read_csv_args)
    except pd.errors.EmptyDataError:
        raise DataError(path, f"{what} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as err:
        raise DataError(path, f"not a readable {what} ({type(err).__name__}: {err})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(path, f"{what} lacks the column(s) {', '.join(map(str, missing))} "
                              f"(it has {', '.join(map(str, frame.columns))})")
    return frame
