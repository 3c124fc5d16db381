"""Errors a user can act on: each names what was wrong and where."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


class ModelFactoryError(Exception):
    """Base class for errors modelfactory reports to users without a traceback."""


class DataSourceError(ModelFactoryError):
    """A data file or URL could not be read (missing, unreadable, wrong format)."""


class DataValidationError(ModelFactoryError):
    """Data failed schema or quality checks; ``problems`` lists each finding."""

    def __init__(self, source: str, problems: Sequence[str]):
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s) found:\n{lines}")


class RegistryError(ModelFactoryError):
    """The model registry is unreachable or lacks what was asked for."""


def describe_rows(index: Iterable[Any], limit: int = 5) -> str:
    """'rows 3, 7, 12 (and 40 more)': row numbers as a user sees them in the file (1-based, header
    excluded)."""
    rows = [int(i) + 1 for i in index]
    shown = ", ".join(str(r) for r in rows[:limit])
    more = f" (and {len(rows) - limit} more)" if len(rows) > limit else ""
    return f"row{'s' if len(rows) != 1 else ''} {shown}{more}"
