"""Atomic file writing: outputs appear complete under their final name or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, Union

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
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
        DataError: if the file is missing, or opening or reading it inside the block
            fails (truncated or corrupt file).
    """
    import h5py

    from oucr.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"{what} does not exist{hint}")
    try:
        with h5py.File(path, "r") as f:
            yield f
    except (OSError, RuntimeError) as err:  # h5py's errors for truncated or foreign files
        raise DataError(path, f"not a readable {what} (truncated or corrupt?): {err}") from err


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
