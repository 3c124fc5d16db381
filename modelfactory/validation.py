"""Schema and quality checks for tabular data, reported per column with the rows at fault.

A :class:`TableSchema` lists the columns a use case needs, each numeric or
categorical, optionally with the values a categorical column may take.
:func:`validate_table` collects every problem before raising, so one run tells
the user all that is wrong with their file, not only the first thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from modelfactory.errors import DataValidationError, describe_rows


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "numeric" or "categorical"
    allowed: frozenset[str] | None = None  # values a categorical column may take (None: any)
    nullable: bool = False

    def __post_init__(self):
        if self.kind not in {"numeric", "categorical"}:
            raise ValueError(f"column {self.name}: kind must be numeric or categorical")


@dataclass(frozen=True)
class TableSchema:
    columns: tuple[Column, ...]
    target: str | None = None
    min_rows: int = 1
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def feature_columns(self) -> list[Column]:
        return [c for c in self.columns if c.name != self.target]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def find_problems(frame: pd.DataFrame, schema: TableSchema) -> list[str]:
    """Every schema and quality problem in ``frame``, each naming the column and rows."""
    problems: list[str] = []
    missing = [c for c in schema.names if c not in frame.columns]
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    if len(frame) < schema.min_rows:
        problems.append(f"{len(frame)} row(s); at least {schema.min_rows} needed")
    for column in schema.columns:
        if column.name in frame.columns:
            problems.extend(_column_problems(frame[column.name], column, is_target=column.name == schema.target))
    return problems


def _column_problems(values: pd.Series, column: Column, is_target: bool) -> list[str]:
    problems = []
    positions = pd.RangeIndex(len(values))
    nulls = values.isna().to_numpy()
    if nulls.any() and not column.nullable:
        problems.append(f"column '{column.name}': empty value in {describe_rows(positions[nulls])}")
    present = ~nulls
    if column.kind == "numeric":
        as_number = pd.to_numeric(values, errors="coerce")
        bad = present & as_number.isna().to_numpy()
        if bad.any():
            examples = ", ".join(repr(v) for v in values[bad].unique()[:3])
            problems.append(
                f"column '{column.name}': expected numbers, found {examples} in {describe_rows(positions[bad])}"
            )
    elif column.allowed is not None:
        unknown = present & ~values.astype(str).isin(column.allowed).to_numpy()
        if unknown.any() and is_target:
            examples = ", ".join(repr(v) for v in values[unknown].unique()[:3])
            problems.append(
                f"target column '{column.name}': unknown value(s) {examples} in {describe_rows(positions[unknown])}; "
                f"allowed: {', '.join(sorted(column.allowed))}"
            )
    return problems


def unknown_categories(frame: pd.DataFrame, schema: TableSchema) -> dict[str, list[str]]:
    """Feature values outside the known categories: not an error (the model ignores them), worth a warning."""
    found = {}
    for column in schema.feature_columns:
        if column.kind == "categorical" and column.allowed is not None and column.name in frame:
            values = frame[column.name].dropna().astype(str)
            extra = sorted(set(values.unique()) - column.allowed)
            if extra:
                found[column.name] = extra
    return found


def validate_table(frame: pd.DataFrame, schema: TableSchema, source: str) -> pd.DataFrame:
    """Return ``frame`` with numeric columns as numbers; raise DataValidationError listing all problems."""
    problems = find_problems(frame, schema)
    if problems:
        raise DataValidationError(source, problems)
    frame = frame.copy()
    for column in schema.columns:
        if column.kind == "numeric":
            frame[column.name] = pd.to_numeric(frame[column.name])
        else:
            frame[column.name] = frame[column.name].astype(str)
    return frame


def require_columns(frame: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataValidationError(source, [f"missing column(s): {', '.join(missing)}"])
