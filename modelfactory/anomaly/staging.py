"""The staging table other systems read: one row per scored ride, replaced per batch date.

Table ``ride_outliers`` (created if missing)::

    batch_date  DATE      \\
    ride_id     BIGINT    / primary key
    ride_dist   FLOAT     miles
    ride_time   FLOAT     minutes
    ride_speed  FLOAT     mph
    is_outlier  BOOLEAN
    cluster     INTEGER   DBSCAN label, -1 = noise
    run_id      VARCHAR   the pipeline run / model version that scored the batch
    written_at  TIMESTAMP (UTC) when this batch was written

:func:`write_outliers` is idempotent per batch date: it deletes that day's rows and
inserts the new ones in one transaction, so a re-run replaces the day and a failure
half-way (connection lost, constraint violated, process killed) leaves the previous
rows exactly as they were. Any SQLAlchemy URL works; sqlite is the local default and
PostgreSQL (``postgresql+psycopg://...``) the cluster one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    insert,
    select,
)
from sqlalchemy.engine import make_url

from modelfactory.errors import DataValidationError, describe_rows

TABLE_NAME = "ride_outliers"
metadata = MetaData()
ride_outliers = Table(
    TABLE_NAME,
    metadata,
    Column("batch_date", Date, primary_key=True),
    Column("ride_id", BigInteger, primary_key=True),
    Column("ride_dist", Float, nullable=False),
    Column("ride_time", Float, nullable=False),
    Column("ride_speed", Float, nullable=False),
    Column("is_outlier", Boolean, nullable=False),
    Column("cluster", Integer, nullable=False),
    Column("run_id", String(200), nullable=False),
    Column("written_at", DateTime(timezone=True), nullable=False),
)
COLUMNS = [c.name for c in ride_outliers.columns]
_REQUIRED = ["ride_id", "ride_dist", "ride_time", "ride_speed", "is_outlier", "cluster"]


def staging_engine(url_or_engine: str | Engine) -> Engine:
    """An Engine for a URL (creating a sqlite file's directory), or the Engine given."""
    if isinstance(url_or_engine, Engine):
        return url_or_engine
    url = make_url(url_or_engine)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(url)


def ensure_table(engine: Engine) -> None:
    metadata.create_all(engine, tables=[ride_outliers], checkfirst=True)


def _rows(scored: pd.DataFrame, batch_date: date, run_id: str, written_at: datetime) -> list[dict]:
    missing = [c for c in _REQUIRED if c not in scored.columns]
    if missing:
        raise DataValidationError("scored rides", [f"missing column(s) {missing}"])
    if "batch_date" in scored.columns:
        other = pd.to_datetime(scored["batch_date"]).dt.date != batch_date
        if other.any():
            raise DataValidationError(
                "scored rides",
                [
                    f"column 'batch_date': {int(other.sum())} rides are not from {batch_date} "
                    f"({describe_rows(np.flatnonzero(other.to_numpy()))})"
                ],
            )
    n = len(scored)
    columns = {
        "batch_date": [batch_date] * n,
        "ride_id": scored["ride_id"].astype("int64").tolist(),
        "ride_dist": scored["ride_dist"].astype(float).tolist(),
        "ride_time": scored["ride_time"].astype(float).tolist(),
        "ride_speed": scored["ride_speed"].astype(float).tolist(),
        "is_outlier": scored["is_outlier"].astype(bool).tolist(),
        "cluster": scored["cluster"].astype("int64").tolist(),
        "run_id": [run_id] * n,
        "written_at": [written_at] * n,
    }
    return [
        dict(zip(COLUMNS, values, strict=True))
        for values in zip(*(columns[c] for c in COLUMNS), strict=True)
    ]


def write_outliers(
    url_or_engine: str | Engine,
    scored: pd.DataFrame,
    batch_date: date | str,
    run_id: str,
    chunk_size: int = 5000,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Replace ``batch_date``'s rows of ``ride_outliers`` with ``scored`` in one transaction.

    ``scored`` is :class:`~modelfactory.anomaly.detection.DetectionResult`'s ``rides``
    (ride_id, ride_dist, ride_time, ride_speed, is_outlier, cluster; batch_date if
    present must equal ``batch_date``). ``on_chunk(rows_written_so_far)`` is called after
    each inserted chunk (progress; raising from it aborts and rolls back). Returns the
    number of rows written.
    """
    batch_date = pd.Timestamp(batch_date).date()
    rows = _rows(scored, batch_date, run_id, datetime.now(UTC))
    engine = staging_engine(url_or_engine)
    ensure_table(engine)
    with engine.begin() as connection:  # commit on success, roll back on any exception
        connection.execute(delete(ride_outliers).where(ride_outliers.c.batch_date == batch_date))
        for start in range(0, len(rows), chunk_size):
            connection.execute(insert(ride_outliers), rows[start : start + chunk_size])
            if on_chunk is not None:
                on_chunk(min(start + chunk_size, len(rows)))
    return len(rows)


def read_outliers(
    url_or_engine: str | Engine, batch_date: date | str | None = None
) -> pd.DataFrame:
    """Rows of ``ride_outliers`` (one batch date, or all), ordered by batch_date, ride_id."""
    engine = staging_engine(url_or_engine)
    ensure_table(engine)
    query = select(ride_outliers).order_by(ride_outliers.c.batch_date, ride_outliers.c.ride_id)
    if batch_date is not None:
        query = query.where(ride_outliers.c.batch_date == pd.Timestamp(batch_date).date())
    with engine.connect() as connection:
        result = connection.execute(query)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
