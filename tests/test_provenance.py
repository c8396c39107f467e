"""Provenance: the commit of the repository the code runs from, whether its tree was dirty, versions."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oucr.provenance import git_state, package_versions

ROOT = Path(__file__).resolve().parents[1]


def _git(folder, *args):
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_clone_records_its_own_commit_and_dirtiness(tmp_path):
    repo = tmp_path / "clone"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "Snakefile").write_text("# a checkout\n")
    (repo / "oucr").mkdir()
    (repo / "oucr" / "__init__.py").write_text("")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "first")
    head = _git(repo, "rev-parse", "--short=12", "HEAD")
    assert git_state(repo / "oucr") == (head, False)
    (repo / "Snakefile").write_text("# edited\n")
    assert git_state(repo) == (head, True)
    (repo / "Snakefile").write_text("# a checkout\n")
    (repo / "results.csv").write_text("untracked output\n")  # results inside the clone do not make it dirty
    assert git_state(repo) == (head, False)
    commit, dirty = git_state(tmp_path)  # outside any work tree: unknown, with the reason
    assert commit.startswith("unknown (") and "not inside a git work tree" in commit and dirty is None


def test_the_running_code_is_described_by_its_own_work_tree_not_its_parent():
    """An editable install from this clone records this clone's commit (not the folder above it)."""
    code = subprocess.run([sys.executable, "-c", "from oucr.provenance import code_state; print(code_state())"],
                          capture_output=True, text=True, cwd="/", check=True).stdout.strip()
    top = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if top.returncode != 0 or Path(top.stdout.strip()) != ROOT:
        pytest.skip("the tests do not run from a git clone of the project")
    assert _git(ROOT, "rev-parse", "--short=12", "HEAD") in code
    assert "oucr-benchmark=" in package_versions() and "torch=" in package_versions()
