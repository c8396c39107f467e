"""Where a number came from: the code's git commit (and whether the tree was dirty), package versions.

The commit is that of the git work tree holding the running ``oucr`` package (an
editable install from a clone, as the README installs it). When the package is
not inside a work tree (a wheel in site-packages), the current working directory's
work tree is used if it is a checkout of this project (it has the ``Snakefile``
and the ``oucr`` package), the folder Snakemake runs the pipeline from. Otherwise
the commit is ``unknown`` with the reason.
"""

from __future__ import annotations

import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Dict, Optional, Tuple

PACKAGES = ["oucr-benchmark", "torch", "numpy", "scipy", "scikit-image", "sigpy", "h5py", "snakemake"]


def _git(folder: Path, *args: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def work_tree(folder: Path) -> Optional[Path]:
    """The top of the git work tree containing ``folder``, or None."""
    top = _git(folder, "rev-parse", "--show-toplevel")
    return Path(top) if top else None


def git_state(folder: Path) -> Tuple[str, Optional[bool]]:
    """``(commit, dirty)`` of the work tree containing ``folder``; ``("unknown (reason)", None)`` otherwise.

    ``dirty`` is True when tracked files differ from the commit (untracked files
    do not count: results and virtual environments live inside the clone).
    """
    folder = Path(folder)
    top = work_tree(folder)
    if top is None:
        return f"unknown ({folder} is not inside a git work tree, or git is missing)", None
    commit = _git(top, "rev-parse", "--short=12", "HEAD")
    if commit is None:
        return f"unknown ({top} has no commit yet)", None
    status = _git(top, "status", "--porcelain", "--untracked-files=no")
    return commit, (bool(status) if status is not None else None)


def code_folder() -> Path:
    """The folder holding the running ``oucr`` package's parent (the clone's root for an editable install)."""
    return Path(__file__).resolve().parents[1]


def _is_project_checkout(top: Path) -> bool:
    return (top / "Snakefile").is_file() and (top / "oucr" / "__init__.py").is_file()


@lru_cache(maxsize=1)
def code_state() -> Tuple[str, Optional[bool]]:
    """``(commit, dirty)`` of the code that runs (module docstring)."""
    package_tree = work_tree(code_folder())
    if package_tree is not None:
        return git_state(package_tree)
    cwd_tree = work_tree(Path.cwd())
    if cwd_tree is not None and _is_project_checkout(cwd_tree):
        return git_state(cwd_tree)
    return f"unknown (the oucr package at {code_folder()} is not in a git work tree)", None


def git_commit() -> str:
    """The code's commit, ``-dirty`` appended when the tree was modified, or ``unknown (reason)``."""
    commit, dirty = code_state()
    return commit + ("-dirty" if dirty else "")


def package_versions() -> str:
    """``name=version`` of the packages that shape the numbers, ``;``-separated."""
    out = []
    for n in PACKAGES:
        try:
            out.append(f"{n}={metadata.version(n)}")
        except metadata.PackageNotFoundError:
            out.append(f"{n}=absent")
    return ";".join(out)


def provenance() -> Dict[str, object]:
    """The provenance columns of every metrics file: ``git_commit``, ``git_dirty``, ``versions``."""
    commit, dirty = code_state()
    return {"git_commit": commit, "git_dirty": "" if dirty is None else bool(dirty), "versions": package_versions()}
