"""Schema and quality checks for tabular data, reported per column with the rows at fault.

One style for every data set (ADR 0004): a :class:`TableSchema` lists the columns a
use case needs, each a number, an integer, a category or a date, with what its
values may be (allowed values, a minimum, empty or not), the columns that together
identify a row, and the fewest rows worth training on. :func:`validate_table`
collects every problem before raising, so one run tells the user all that is wrong
with their file, not only the first thing, and returns the table with each column
as its kind. Rows are named as the user sees them in the file (1-based, header
excluded; a filtered frame keeps its file positions in its index).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from modelfactory.errors import DataValidationError, describe_rows

KINDS = ("number", "integer", "category", "date")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # number, integer, category or date
    allowed: frozenset | None = None  # the values it may take (None: any of its kind)
    minimum: float | None = None  # numbers and integers: the smallest value allowed
    nullable: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name}: kind must be one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class TableSchema:
    columns: tuple[Column, ...]
    target: str | None = None
    key: tuple[str, ...] = ()  # columns whose values together appear at most once
    min_rows: int = 1
    missing_hint: str = ""  # appended to the missing-columns problem: what file was expected
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def feature_columns(self) -> list[Column]:
        return [c for c in self.columns if c.name != self.target]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


@dataclass
class _Parsed:
    """One column read as its kind: values, and where they could not be read."""

    values: pd.Series
    unreadable: np.ndarray


def _parse(values: pd.Series, column: Column) -> _Parsed:
    present = values.notna().to_numpy()
    if column.kind in ("number", "integer"):
        numbers = pd.to_numeric(values, errors="coerce")
        as_float = numbers.to_numpy(dtype=float, na_value=np.nan)
        bad = present & ~np.isfinite(as_float)
        if column.kind == "integer":
            bad |= present & np.isfinite(as_float) & (as_float != np.round(as_float))
        return _Parsed(numbers, bad)
    if column.kind == "date":
        dates = pd.to_datetime(values, errors="coerce", format="mixed")
        return _Parsed(dates.dt.normalize(), present & dates.isna().to_numpy())
    return _Parsed(values.astype(str).where(values.notna()), np.zeros(len(values), dtype=bool))


_EXPECTED = {"number": "numbers", "integer": "integers", "date": "dates"}


def _shown(value) -> str:
    """A value as the user wrote it in the file: text quoted, numbers and dates plain."""
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d}" if value == value.normalize() else str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return repr(value) if isinstance(value, str) else str(value)


def _examples(values: pd.Series, mask: np.ndarray) -> str:
    return ", ".join(_shown(v) for v in pd.unique(values[mask])[:3])


def _column_problems(
    values: pd.Series, parsed: _Parsed, column: Column, rows: pd.Index, is_target: bool
) -> list[str]:
    where = f"column '{column.name}'" if not is_target else f"target column '{column.name}'"
    problems = []
    nulls = values.isna().to_numpy()
    if nulls.any() and not column.nullable:
        problems.append(f"{where}: empty value in {describe_rows(rows[nulls])}")
    if parsed.unreadable.any():
        problems.append(
            f"{where}: expected {_EXPECTED[column.kind]}, found "
            f"{_examples(values, parsed.unreadable)} in {describe_rows(rows[parsed.unreadable])}"
        )
    readable = ~nulls & ~parsed.unreadable
    if column.minimum is not None:
        low = readable & (parsed.values.to_numpy(dtype=float, na_value=np.nan) < column.minimum)
        if low.any():
            problems.append(
                f"{where}: below {column.minimum:g}, found {_examples(parsed.values, low)} "
                f"in {describe_rows(rows[low])}"
            )
    if column.allowed is not None:
        unknown = readable & ~parsed.values.isin(column.allowed).to_numpy()
        if unknown.any():
            allowed = ", ".join(sorted(str(v) for v in column.allowed))
            problems.append(
                f"{where}: unknown value(s) {_examples(values, unknown)} in "
                f"{describe_rows(rows[unknown])}; allowed: {allowed}"
            )
    return problems


def _file_rows(frame: pd.DataFrame) -> pd.Index:
    """Row positions as in the file: the frame's own index when it is one, else 0..n-1."""
    index = frame.index
    if pd.api.types.is_integer_dtype(index) and index.is_unique:
        return index
    return pd.RangeIndex(len(frame))


def _check(frame: pd.DataFrame, schema: TableSchema) -> tuple[list[str], dict[str, _Parsed]]:
    problems: list[str] = []
    missing = [c for c in schema.names if c not in frame.columns]
    if missing:
        hint = f"; {schema.missing_hint}" if schema.missing_hint else ""
        problems.append(f"missing column(s): {', '.join(missing)}{hint}")
    if len(frame) < schema.min_rows:
        problems.append(f"{len(frame)} row(s); at least {schema.min_rows} needed")
    rows = _file_rows(frame)
    parsed = {}
    for column in schema.columns:
        if column.name not in frame.columns:
            continue
        values = frame[column.name].reset_index(drop=True)
        parsed[column.name] = _parse(values, column)
        problems.extend(
            _column_problems(
                values, parsed[column.name], column, rows, is_target=column.name == schema.target
            )
        )
    if schema.key and all(name in parsed for name in schema.key):
        readable = np.logical_and.reduce([~parsed[n].unreadable for n in schema.key])
        keys = pd.DataFrame({n: parsed[n].values for n in schema.key})
        repeated = keys.duplicated(keep=False).to_numpy() & readable
        if repeated.any():
            first = ", ".join(_shown(v) for v in keys[repeated].iloc[0])
            names = ", ".join(f"'{n}'" for n in schema.key)
            problems.append(
                f"column(s) {names}: {int(repeated.sum())} rows share the same values "
                f"(e.g. {first}) in {describe_rows(rows[repeated])}"
            )
    return problems, parsed


_CAST: dict[str, Callable[[pd.Series], pd.Series]] = {
    "number": lambda s: s.astype(float) if s.dtype == object else s,
    "integer": lambda s: s.astype("int64") if not s.isna().any() else s.astype("Int64"),
    "category": lambda s: s,
    "date": lambda s: s,
}


def validate_table(frame: pd.DataFrame, schema: TableSchema, source: str) -> pd.DataFrame:
    """``frame`` with each schema column as its kind; raise DataValidationError listing all
    problems."""
    problems, parsed = _check(frame, schema)
    if problems:
        raise DataValidationError(source, problems)
    out = frame.copy()
    for column in schema.columns:
        out[column.name] = _CAST[column.kind](parsed[column.name].values).to_numpy()
    return out
