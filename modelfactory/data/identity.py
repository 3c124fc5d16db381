"""Row identity: which rows of one table another model version already trained on.

A row is known by the values of its identity columns, never by its label: a relabelled row is
the same row (the classifier's identity is its features; the forecaster's, the store and the
day). Each row's values are hashed after normalising each column's type (numbers as floats,
dates as days, anything else as text), so the same row read back from Parquet, a CSV or the
prediction log has the same key. Why these identities: ADR 0014.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def row_keys(frame: pd.DataFrame, columns: Sequence[str], table: str = "the table") -> np.ndarray:
    """One 64-bit key per row of ``frame`` from its ``columns``; ValueError naming ``table`` and
    the columns it lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{table} lacks the column(s) {', '.join(missing)} that identify a row "
            f"({', '.join(columns)})"
        )
    normal = pd.DataFrame({c: _normal(frame[c]) for c in columns})
    return pd.util.hash_pandas_object(normal, index=False).to_numpy()


def unseen(
    frame: pd.DataFrame,
    seen: pd.DataFrame,
    columns: Sequence[str],
    table: str = "the holdout",
    seen_table: str = "the training data",
) -> np.ndarray:
    """A mask of the rows of ``frame`` whose identity is not among the rows of ``seen``."""
    return ~np.isin(row_keys(frame, columns, table), row_keys(seen, columns, seen_table))


def _normal(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values.astype("float64").reset_index(drop=True)
    if pd.api.types.is_datetime64_any_dtype(values):
        days = pd.to_datetime(values).dt.tz_localize(None) if values.dt.tz else values
        return days.dt.normalize().astype("datetime64[ns]").reset_index(drop=True)
    return values.astype(str).reset_index(drop=True)
