"""Filling a prediction store the way serving's writer does (``insert_rows``), with chosen times."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from modelfactory.predictions.store import PredictionRow, insert_rows, metadata
from modelfactory.sql import engine as store_engine


def write_log(
    url: str,
    features: Sequence[dict],
    outputs: Sequence[dict],
    model: str,
    version: str = "1",
    start: dt.datetime | None = None,
    every: dt.timedelta = dt.timedelta(seconds=1),
    role: str = "served",
    request_ids: Sequence[str | None] | None = None,
) -> list[PredictionRow]:
    """One logged row per (features, output), ``every`` apart from ``start``."""
    start = start or dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    rows = [
        PredictionRow(
            start + i * every,
            request_ids[i] if request_ids is not None else f"{model}-{version}-{role}-{i}",
            model,
            version,
            role,
            feature,
            output,
        )
        for i, (feature, output) in enumerate(zip(features, outputs, strict=True))
    ]
    engine = store_engine(url)
    try:
        metadata.create_all(engine)
        with engine.begin() as connection:
            for begin in range(0, len(rows), 5000):
                insert_rows(connection, rows[begin : begin + 5000])
    finally:
        engine.dispose()
    return rows
