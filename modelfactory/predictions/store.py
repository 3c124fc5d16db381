"""The prediction store: the table definitions serving writes and monitoring reads.

Every served (and shadow) prediction is a row: when, which request, which model
version answered in which role, the features it was given and its output (JSON).
Serving writes it through :class:`~modelfactory.predictions.writer.PredictionLog`;
drift and performance jobs read it (:func:`read_predictions`, or their own queries
over :data:`predictions_table`). Ground truth that arrives later (``POST /feedback``) is a
row of :data:`feedback_table` per request and record
(:mod:`modelfactory.predictions.feedback`). sqlite on one machine, PostgreSQL in the cluster.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from typing import NamedTuple

import sqlalchemy as sa

from modelfactory.sql import engine as store_engine

metadata = sa.MetaData()
predictions_table = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("request_id", sa.String(64)),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(50), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),  # served | shadow
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("output", sa.JSON, nullable=False),
    # By model, version and time: how drift checks and a rollout's outcomes read the log.
    sa.Index("ix_predictions_model_time", "model_name", "model_version", "created_at"),
    # By request id: how a label finds its answer (POST /feedback, a rollout's outcomes). It
    # costs inserts (random keys), and saves a scan of the model's log per label batch
    # (docs/adr/0002-prediction-log-writer-process.md has both figures).
    sa.Index("ix_predictions_model_request", "model_name", "request_id"),
)

# The observed outcome of a logged prediction: one row per (model, request, record), so a
# repeated label replaces the earlier one and is never counted twice. ``record`` is the
# record's position in its request (0 for a one-record request): rows of one request are
# logged in request order. Joined to predictions by request id in batch jobs.
feedback_table = sa.Table(
    "feedback",
    metadata,
    sa.Column("model_name", sa.String(200), primary_key=True),
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("record", sa.Integer, primary_key=True),
    sa.Column("actual", sa.JSON, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
)


def create_tables(store: sa.Engine, tables: list[sa.Table] | None = None) -> None:
    """The log's tables when missing, and their indexes when missing from tables an earlier
    version made (a new index on a large log takes a while, once)."""
    metadata.create_all(store, tables=tables)
    for table in tables or list(metadata.tables.values()):
        for index in table.indexes:
            index.create(store, checkfirst=True)


class PredictionRow(NamedTuple):
    """One stored prediction, its values in the table's column order."""

    created_at: dt.datetime
    request_id: str | None
    model_name: str
    model_version: str
    role: str
    features: Mapping
    output: Mapping

    def as_dict(self) -> dict:
        return {**self._asdict(), "features": dict(self.features), "output": dict(self.output)}


# Rows per INSERT statement (sqlite binds at most 32766 parameters per statement).
ROWS_PER_STATEMENT = 32


def insert_rows(connection: sa.Connection, batch: list[PredictionRow]) -> None:
    """Insert rows: multi-row INSERTs for qmark drivers (sqlite), executemany for the others.

    ``executemany`` on sqlite3 goes back to Python between rows; statements of
    ``ROWS_PER_STATEMENT`` rows are bound through the columns' own SQLAlchemy types, so what is
    stored is what ``predictions_table.insert()`` would store (docs/adr/0002). psycopg batches
    executemany itself.
    """
    dialect = connection.dialect
    if dialect.paramstyle != "qmark":
        connection.execute(predictions_table.insert(), [row.as_dict() for row in batch])
        return
    bind = [
        predictions_table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        for name in PredictionRow._fields
    ]
    group = "(" + ", ".join("?" * len(bind)) + ")"
    head = f"INSERT INTO {predictions_table.name} ({', '.join(PredictionRow._fields)}) VALUES "
    for start in range(0, len(batch), ROWS_PER_STATEMENT):
        chunk = batch[start : start + ROWS_PER_STATEMENT]
        params: list = []
        for row in chunk:
            for process, value in zip(bind, row, strict=True):
                params.append(value if process is None else process(value))
        connection.exec_driver_sql(head + ", ".join([group] * len(chunk)), tuple(params))


def _instant(value: dt.datetime) -> dt.datetime:
    """A stored time as naive UTC: sqlite gives its text back naive, PostgreSQL in its zone."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _identity(row) -> tuple:
    return (row.model_name, row.model_version, row.role, row.request_id, _instant(row.created_at))


def insert_missing(connection: sa.Connection, batch: list[PredictionRow]) -> int:
    """Insert the rows of ``batch`` the store does not hold yet; returns how many it held.

    For rows that may have been committed already (a writer stopped between the store's commit and
    the spool's trim): a row is held when one with its model, version, role, request id and time
    is (rows of one request share all five, so they are counted, not just matched). The lookup
    reads the (model, version, time) index over the batch's time span, no more.
    """
    spans: dict[tuple[str, str], tuple[dt.datetime, dt.datetime]] = {}
    for row in batch:
        low, high = spans.get((row.model_name, row.model_version), (row.created_at,) * 2)
        spans[row.model_name, row.model_version] = (
            min(low, row.created_at),
            max(high, row.created_at),
        )
    table = predictions_table
    held: Counter[tuple] = Counter()
    for (model, version), (low, high) in spans.items():
        query = sa.select(
            table.c.model_name,
            table.c.model_version,
            table.c.role,
            table.c.request_id,
            table.c.created_at,
        ).where(
            table.c.model_name == model,
            table.c.model_version == version,
            table.c.created_at.between(low, high),
        )
        held.update(_identity(stored) for stored in connection.execute(query))
    missing = []
    for row in batch:
        identity = _identity(row)
        if held[identity]:
            held[identity] -= 1
        else:
            missing.append(row)
    if missing:
        insert_rows(connection, missing)
    return len(batch) - len(missing)


def read_predictions(
    url: str, model_name: str | None = None, limit: int | None = None
) -> list[dict]:
    """Logged rows, newest first (drift jobs and tests)."""
    engine = store_engine(url)
    try:
        query = sa.select(predictions_table).order_by(predictions_table.c.id.desc())
        if model_name:
            query = query.where(predictions_table.c.model_name == model_name)
        if limit:
            query = query.limit(limit)
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]
    finally:
        engine.dispose()
