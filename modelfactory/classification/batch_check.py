"""A chunk of batch records checked against the model's inputs, column by column, vectorised.

Serving checks a request record by record (:mod:`modelfactory.inference.schema`); a batch
checks a whole column at once, with the same verdicts: a missing or empty value, a
non-number where a number belongs, a fraction where an integer belongs, something other
than true or false where a boolean belongs. Arrow columns of the expected type (what
Parquet gives) are checked without a Python object per value; any other column (CSV and
query results read by pandas, a number stored as text) goes through pandas' parsing, as
before. A record's reasons are joined by "; " in the order of the schema's fields.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modelfactory.inference.schema import Field
from modelfactory.scoring.sources import Chunk

_EXPECTED = {"integer": "an integer", "number": "a number"}


@dataclass
class CheckedChunk:
    rejected: np.ndarray  # per record: has at least one problem
    reasons: np.ndarray  # per record: its problems joined by "; " ("" when none)
    numbers: dict[str, np.ndarray]  # integer and number fields as float64 (NaN where bad)
    texts: dict[str, pa.Array]  # string fields
    other: dict[str, pd.Series]  # boolean fields (True/False, None where bad)

    def good_frame(self, fields: tuple[Field, ...]) -> pd.DataFrame:
        """The good records typed as the model was trained (its pipeline takes pandas)."""
        keep = ~self.rejected
        frame = {}
        for field in fields:
            if field.name in self.numbers:
                values = self.numbers[field.name][keep]
                frame[field.name] = values.astype(np.int64) if field.kind == "integer" else values
            elif field.name in self.texts:
                frame[field.name] = self.texts[field.name].filter(pa.array(keep)).to_pandas()
            else:
                frame[field.name] = self.other[field.name][keep].reset_index(drop=True)
        return pd.DataFrame(frame)


def check_chunk(chunk: Chunk, fields: tuple[Field, ...]) -> CheckedChunk:
    rows = len(chunk)
    reasons = np.full(rows, "", dtype=object)
    checked = CheckedChunk(np.zeros(rows, dtype=bool), reasons, {}, {}, {})
    for field in fields:
        values = chunk.column(field.name)
        if field.kind in _EXPECTED:
            problem = _check_number(field, values, checked)
        elif field.kind == "boolean":
            problem = _check_boolean(field, _pandas(values), checked)
        else:
            problem = _check_text(field, values, checked)
        if problem is not None:
            has = problem != ""
            first = has & (reasons == "")
            later = has & ~first
            reasons[first] = problem[first]
            reasons[later] = reasons[later] + "; " + problem[later]
    checked.rejected = reasons != ""
    return checked


def _check_number(field: Field, values, checked: CheckedChunk) -> np.ndarray | None:
    expected = f"{field.name}: expected {_EXPECTED[field.kind]}, got "
    if isinstance(values, pa.ChunkedArray) and pa.types.is_integer(values.type):
        empty = values.is_null().to_numpy(zero_copy_only=False)
        numbers = pc.cast(values, pa.float64()).fill_null(np.nan).to_numpy()
        checked.numbers[field.name] = numbers
        return _problems(field, empty, np.zeros_like(empty), None, expected)
    if isinstance(values, pa.ChunkedArray) and pa.types.is_floating(values.type):
        numbers = pc.cast(values, pa.float64()).fill_null(np.nan).to_numpy()
        empty = np.isnan(numbers)  # null or NaN: missing, as pandas reads both
        bad = ~empty & ~np.isfinite(numbers)
        if field.kind == "integer":
            bad |= ~empty & np.isfinite(numbers) & (numbers != np.round(numbers))
        checked.numbers[field.name] = numbers
        return _problems(field, empty, bad, numbers, expected)
    series = _pandas(values)
    empty = series.isna().to_numpy()
    numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~empty & ~np.isfinite(numbers)
    if field.kind == "integer":
        bad |= ~empty & np.isfinite(numbers) & (numbers != np.round(numbers))
    checked.numbers[field.name] = numbers
    return _problems(field, empty, bad, series, expected)


def _check_text(field: Field, values, checked: CheckedChunk) -> np.ndarray | None:
    if isinstance(values, pa.ChunkedArray) and pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if isinstance(values, pa.ChunkedArray) and pa.types.is_string(values.type):
        checked.texts[field.name] = values.combine_chunks()
        empty = values.is_null().to_numpy(zero_copy_only=False)
    else:  # anything else is written as str() writes it, as before
        series = _pandas(values)
        empty = series.isna().to_numpy()
        checked.texts[field.name] = pa.array(series.astype(str), type=pa.string())
    return _problems(field, empty, np.zeros_like(empty), None, "")


def _check_boolean(field: Field, series: pd.Series, checked: CheckedChunk) -> np.ndarray | None:
    empty = series.isna().to_numpy()
    truth = series.map(_truth)
    checked.other[field.name] = truth
    bad = ~empty & truth.isna().to_numpy()
    return _problems(field, empty, bad, series, f"{field.name}: expected true or false, got ")


def _problems(field: Field, empty, bad, values, expected: str) -> np.ndarray | None:
    """Per record: this field's problem ("" when none); None when no record has one."""
    if not (empty.any() or bad.any()):
        return None
    problem = np.where(empty, f"{field.name}: missing", "").astype(object)
    if bad.any():
        shown = values[bad].tolist() if values is not None else []
        problem[bad] = [expected + _shown(v) for v in shown]
    return problem


def _pandas(values) -> pd.Series:
    if isinstance(values, pa.ChunkedArray):
        return values.to_pandas()
    return values


def _truth(value):
    if isinstance(value, bool):
        return value
    return {"true": True, "false": False}.get(str(value).strip().lower())


def _shown(value) -> str:
    text = f'"{value}"' if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
