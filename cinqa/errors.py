"""Exceptions that cinqa raises for bad input, each naming the file, line and problem."""

from __future__ import annotations

from pathlib import Path


def shorten(text: str, limit: int) -> str:
    """Cut ``text`` to its first ``limit`` characters, saying how long it is, so a message or a display
    quoting a value from a file stays short however long the value."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


class CinqaError(Exception):
    """Base of every error cinqa raises on purpose."""


class PathError(CinqaError):
    """A problem with one file or folder, shown as ``"<path>: <problem>"``; ``path`` and ``problem`` kept apart."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ReadError(CinqaError):
    """A census file cannot be read: it is missing, not XML, unsafe or not a CIN return."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}, line {line}" if line else self.path
        super().__init__(f"{where}: {problem}")


class TableError(CinqaError):
    """A return's tables lack a column, or hold one of another type, than reading the file gives."""


class YearError(CinqaError):
    """A census year is unknown, unsupported or cannot be determined."""


class CsvError(ReadError):
    """A CSV cinqa reads (England's figures, an LA's comparators) is missing, malformed or holds a bad value."""
