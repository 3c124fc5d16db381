"""Where a batch's results go, and how a batch is replaced as a whole.

Scoring writes each partition's results to a *part*: a folder of Parquet files
(``results.parquet``, ``rejects.parquet``) holding only what varies per row. Publishing
adds the batch's lineage (batch id, model name and version, time) and writes every part
to the destination:

- a SQLAlchemy URL: one transaction deletes the batch id's earlier rows and inserts the
  new ones, so a re-run replaces the batch and a failure half-way (connection lost, a
  repeated row key, the process killed) leaves the table as it was. PostgreSQL is written
  with ``COPY``, any other database with batched ``INSERT``\\s.
- a ``.parquet`` path: the results file and its rejects beside it
  (``<name>.rejects.parquet``), each written to a temporary file and renamed into place.

Tables (created when missing; the key leads with ``batch_id``, which the replace deletes by)::

    batch_scores     batch_id, row_key | model_name, model_version, prediction, probability,
                     scored_at
    batch_forecasts  batch_id, store, ds | model_name, model_version, yhat, yhat_lower,
                     yhat_upper, open, scored_at
    batch_rejects    batch_id, row_key | model_name, model_version, reason, record, rejected_at
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from modelfactory.errors import ModelFactoryError

metadata = sa.MetaData()
_LINEAGE = (
    sa.Column("batch_id", sa.String(100), primary_key=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(50), nullable=False),
)
SCORES = sa.Table(
    "batch_scores",
    metadata,
    _LINEAGE[0].copy(),
    sa.Column("row_key", sa.String(200), primary_key=True),
    *(c.copy() for c in _LINEAGE[1:]),
    sa.Column("prediction", sa.String(100), nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
)
FORECASTS = sa.Table(
    "batch_forecasts",
    metadata,
    _LINEAGE[0].copy(),
    sa.Column("store", sa.BigInteger, primary_key=True),
    sa.Column("ds", sa.Date, primary_key=True),
    *(c.copy() for c in _LINEAGE[1:]),
    sa.Column("yhat", sa.Float, nullable=False),
    sa.Column("yhat_lower", sa.Float, nullable=False),
    sa.Column("yhat_upper", sa.Float, nullable=False),
    sa.Column("open", sa.Boolean, nullable=False),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
)
REJECTS = sa.Table(
    "batch_rejects",
    metadata,
    _LINEAGE[0].copy(),
    sa.Column("row_key", sa.String(200), primary_key=True),
    *(c.copy() for c in _LINEAGE[1:]),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("record", sa.Text, nullable=False),  # the rejected row as JSON, as it was read
    sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=False),
)
TABLES = {t.name: t for t in (SCORES, FORECASTS, REJECTS)}
_TIME_COLUMN = {SCORES.name: "scored_at", FORECASTS.name: "scored_at", REJECTS.name: "rejected_at"}
RESULTS_FILE, REJECTS_FILE = "results.parquet", "rejects.parquet"
INSERT_ROWS = 5_000


class PublishError(ModelFactoryError):
    """A batch could not be written; the destination keeps what it had."""


@dataclass(frozen=True)
class Lineage:
    batch_id: str
    model_name: str
    model_version: str


def is_parquet_destination(to: str) -> bool:
    return to.endswith((".parquet", ".pq")) and "://" not in to


def rejects_path(to: str) -> Path:
    path = Path(to)
    return path.with_name(f"{path.stem}.rejects{path.suffix}")


class PartWriter:
    """Appends a partition's results and rejects to its part folder, chunk by chunk."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._writers: dict[str, object] = {}

    def write(self, results: pd.DataFrame | pa.Table, rejects: pd.DataFrame | pa.Table) -> None:
        for name, rows in ((RESULTS_FILE, results), (REJECTS_FILE, rejects)):
            if not len(rows) and name in self._writers:
                continue
            self._append(name, rows)

    def _append(self, name: str, rows: pd.DataFrame | pa.Table) -> None:
        import pyarrow.parquet as pq

        table = (
            rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)
        )
        writer = self._writers.get(name)
        if writer is None:
            writer = self._writers[name] = pq.ParquetWriter(self.directory / name, table.schema)
        writer.write_table(table.cast(writer.schema))  # type: ignore[attr-defined]

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()  # type: ignore[attr-defined]
        self._writers.clear()


def _part_batches(parts: list[str | Path], name: str, rows: int) -> Iterator[pa.Table]:
    import pyarrow.parquet as pq

    for part in parts:
        path = Path(part) / name
        if not path.exists():
            continue
        for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
            if batch.num_rows:
                yield pa.Table.from_batches([batch])


def _with_lineage(rows: pa.Table, table: sa.Table, lineage: Lineage, at: datetime) -> pa.Table:
    """The part's columns and the batch's lineage (the same for every row), in the table's
    column order."""
    n = rows.num_rows
    constant = {
        "batch_id": pa.repeat(lineage.batch_id, n),
        "model_name": pa.repeat(lineage.model_name, n),
        "model_version": pa.repeat(lineage.model_version, n),
        _TIME_COLUMN[table.name]: pa.repeat(pa.scalar(at, pa.timestamp("us", tz="UTC")), n),
    }
    return pa.table(
        {
            c.name: constant[c.name] if c.name in constant else rows.column(c.name)
            for c in table.columns
        }
    )


def publish(
    parts: list[str | Path],
    to: str,
    table: sa.Table,
    lineage: Lineage,
    on_rows: Callable[[int], None] | None = None,
    rows_per_write: int = 50_000,
) -> dict:
    """Write every part's results (to ``table``) and rejects to ``to``, replacing the batch.

    Returns the rows written per table. ``on_rows(n)`` is called after each write (progress).
    """
    at = datetime.now(UTC)
    if is_parquet_destination(to):
        return {
            table.name: _publish_parquet(
                parts, RESULTS_FILE, Path(to), table, lineage, at, on_rows, rows_per_write
            ),
            REJECTS.name: _publish_parquet(
                parts, REJECTS_FILE, rejects_path(to), REJECTS, lineage, at, None, rows_per_write
            ),
        }
    from modelfactory.sql import engine as make_engine
    from modelfactory.sql import shown_url

    engine = make_engine(to)
    written = {table.name: 0, REJECTS.name: 0}
    try:
        metadata.create_all(engine, tables=[table, REJECTS], checkfirst=True)
        with engine.begin() as connection:  # commit on success, roll back on any exception
            for target, name in ((table, RESULTS_FILE), (REJECTS, REJECTS_FILE)):
                connection.execute(sa.delete(target).where(target.c.batch_id == lineage.batch_id))
                for batch in _part_batches(parts, name, rows_per_write):
                    rows = _with_lineage(batch, target, lineage, at)
                    _insert(connection, target, rows)
                    written[target.name] += len(rows)
                    if on_rows is not None and target is table:
                        on_rows(len(rows))
    except Exception as exc:
        # COPY runs on the driver's connection: its errors are the driver's, not SQLAlchemy's.
        driver = type(exc).__module__.split(".")[0] in ("psycopg", "sqlite3")
        if not (isinstance(exc, sa.exc.SQLAlchemyError) or driver):
            raise
        first = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        code = str(getattr(getattr(exc, "orig", exc), "sqlstate", "") or "")
        if isinstance(exc, sa.exc.IntegrityError) or code == "23505":
            raise PublishError(
                f"{shown_url(to)}: batch {lineage.batch_id} not written, nothing changed: a row "
                f"key repeats ({first}); give --key a column whose values are unique"
            ) from None
        raise PublishError(
            f"{shown_url(to)}: batch {lineage.batch_id} not written, nothing changed "
            f"({type(exc).__name__}: {first})"
        ) from None
    return written


def _insert(connection: sa.Connection, table: sa.Table, rows: pa.Table) -> None:
    if connection.dialect.name == "postgresql":
        # COPY of CSV that Arrow writes (no Python object per value): several times faster
        # than INSERTs; still inside the batch's transaction.
        import pyarrow.csv as csv

        text = pa.BufferOutputStream()
        csv.write_csv(rows, text, csv.WriteOptions(include_header=False))
        columns = ", ".join(f'"{c}"' for c in rows.column_names)
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor:  # type: ignore[union-attr]
            with cursor.copy(
                f'COPY "{table.name}" ({columns}) FROM STDIN WITH (FORMAT csv)'
            ) as copy:
                copy.write(memoryview(text.getvalue()))
        return
    records = rows.to_pylist()
    for start in range(0, len(records), INSERT_ROWS):
        connection.execute(sa.insert(table), records[start : start + INSERT_ROWS])


def _publish_parquet(
    parts: list[str | Path],
    name: str,
    path: Path,
    table: sa.Table,
    lineage: Lineage,
    at: datetime,
    on_rows: Callable[[int], None] | None,
    rows_per_write: int,
) -> int:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    written, writer = 0, None
    try:
        for batch in _part_batches(parts, name, rows_per_write):
            rows = _with_lineage(batch, table, lineage, at)
            if writer is None:
                writer = pq.ParquetWriter(tmp, rows.schema)
            writer.write_table(rows.cast(writer.schema))
            written += rows.num_rows
            if on_rows is not None:
                on_rows(rows.num_rows)
        if writer is None:  # an empty batch still replaces the file: with an empty one
            empty = pd.DataFrame({c.name: pd.Series(dtype=object) for c in table.columns})
            pq.write_table(pa.Table.from_pandas(empty, preserve_index=False), tmp)
        else:
            writer.close()
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            writer.close()
        Path(tmp).unlink(missing_ok=True)
        raise
    return written


def read_batch(to: str, table: sa.Table, batch_id: str | None = None) -> pd.DataFrame:
    """A published batch (or every batch) of ``table`` at ``to``, ordered by its key."""
    if is_parquet_destination(to):
        path = Path(to) if table is not REJECTS else rejects_path(to)
        frame = pd.read_parquet(path)
        if batch_id is not None:
            frame = frame[frame["batch_id"] == batch_id]
    else:
        from modelfactory.sql import engine

        query = sa.select(table)
        if batch_id is not None:
            query = query.where(table.c.batch_id == batch_id)
        with engine(to).connect() as connection:
            result = connection.execute(query)
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    keys = [c.name for c in table.primary_key.columns]
    return frame.sort_values(keys, kind="stable", ignore_index=True)
