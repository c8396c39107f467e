"""Exceptions with messages meant for the person running the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Union


class OUCRError(Exception):
    """Base class: the command-line entry prints the message and exits with status 2."""


class DataError(OUCRError):
    """An input file is unreadable, malformed or inconsistent.

    Args:
        path: the offending file or folder.
        problem: what is wrong with it, in words.
    """

    def __init__(self, path: Union[str, Path], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(OUCRError):
    """A configuration value is missing, of the wrong type or out of range."""
