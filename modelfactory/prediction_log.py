"""The prediction log: every served (and shadow) prediction, written to a SQL store off the request path.

Drift detection reads this table (features, output, model version, time). A
request only puts rows on a bounded in-memory queue; a background thread writes
them in batches through SQLAlchemy (sqlite locally, PostgreSQL in the cluster).
A slow, full or missing store never blocks or fails a request: rows that do not
fit the queue, or whose batch the store refused, are dropped and counted
(``on_drop``), and the serving metrics show the count.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

log = logging.getLogger(__name__)

metadata = sa.MetaData()
predictions_table = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("request_id", sa.String(64), index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(50), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),  # served | shadow
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("output", sa.JSON, nullable=False),
    sa.Index("ix_predictions_model_time", "model_name", "model_version", "created_at"),
)


@dataclass(frozen=True)
class PredictionRow:
    created_at: dt.datetime
    request_id: str | None
    model_name: str
    model_version: str
    role: str
    features: Mapping
    output: Mapping

    def as_dict(self) -> dict:
        return {
            "created_at": self.created_at,
            "request_id": self.request_id,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "role": self.role,
            "features": dict(self.features),
            "output": dict(self.output),
        }


def _ignore(count: int, reason: str) -> None:
    pass


@dataclass(frozen=True)
class _Pending:
    """One request's rows as the request left them: expanded into rows by the writer, not the caller."""

    created_at: dt.datetime
    request_id: str | None
    model_name: str
    model_version: str
    role: str
    records: Sequence[Mapping]
    outputs: Sequence[Mapping]
    count: int

    def rows(self) -> list[PredictionRow]:
        return [
            PredictionRow(
                self.created_at,
                self.request_id,
                self.model_name,
                self.model_version,
                self.role,
                features,
                output,
            )
            for features, output in zip(
                self.records[: self.count], self.outputs[: self.count], strict=False
            )
        ]


class PredictionLog:
    """A bounded queue in front of the store, drained by one daemon thread.

    The bound (``max_queue``) counts rows in memory, queued or being written.

    The request path does one short locked append per request. The writer wakes every
    ``flush_seconds``, takes everything queued and writes it in transactions of at most
    ``batch_size`` rows: a few large transactions a second instead of one per request is
    what keeps logging cheap next to a sub-millisecond prediction (benchmarks/serving.py).
    """

    def __init__(
        self,
        url: str,
        max_queue: int = 10_000,
        batch_size: int = 1000,
        flush_seconds: float = 0.25,
        on_drop: Callable[[int, str], None] = _ignore,
        on_write: Callable[[int], None] = lambda n: None,
        engine_factory: Callable[[str], sa.Engine] | None = None,
    ):
        self.url = url
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.on_drop = on_drop
        self.on_write = on_write
        self._lock = threading.Lock()
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._engine_factory = engine_factory or _engine
        self._engine: sa.Engine | None = None
        self._stop = threading.Event()
        self._kick = threading.Event()  # flush() and close() wake the writer early
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped: dict[str, int] = {}
        self._last_error_logged = 0.0

    def start(self) -> PredictionLog:
        self._thread = threading.Thread(target=self._run, daemon=True, name="prediction-log")
        self._thread.start()
        return self

    def record(
        self,
        model_name: str,
        model_version: str,
        records: Sequence[Mapping],
        outputs: Sequence[Mapping],
        request_id: str | None = None,
        role: str = "served",
    ) -> None:
        """Queue one row per record; never blocks, never raises."""
        count = min(len(records), len(outputs))
        if not count:
            return
        with self._lock:
            room = self.max_queue - self._queued_rows
            taken = max(0, min(count, room))
            if taken:
                self._queued_rows += taken
                self._queue.append(
                    _Pending(
                        dt.datetime.now(dt.UTC),
                        request_id,
                        model_name,
                        model_version,
                        role,
                        records,
                        outputs,
                        taken,
                    )
                )
        if taken < count:
            self._drop(count - taken, "queue_full")

    def _drop(self, count: int, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count
        try:
            self.on_drop(count, reason)
        except Exception:  # a metrics hook must not break the caller
            log.exception("prediction log drop hook failed")

    @property
    def pending(self) -> int:
        """Rows in memory: queued, or taken by the writer and not yet written or dropped."""
        return self._queued_rows

    def _run(self) -> None:
        while True:
            self._kick.wait(self.flush_seconds)
            self._kick.clear()
            stopping = self._stop.is_set()
            with self._lock:
                taken, self._queue = self._queue, deque()
            rows = [row for pending in taken for row in pending.rows()]
            for start in range(0, len(rows), self.batch_size):
                batch = rows[start : start + self.batch_size]
                self._write(batch)
                with self._lock:  # rows count against the bound until written or dropped
                    self._queued_rows -= len(batch)
            if stopping:
                return

    def _write(self, batch: list[PredictionRow]) -> None:
        try:
            if self._engine is None:
                engine = self._engine_factory(self.url)
                metadata.create_all(engine)
                self._engine = engine
            with self._engine.begin() as connection:
                _insert(connection, batch)
            self.written += len(batch)
            self.on_write(len(batch))
        except Exception as exc:  # the store is down or refuses: count the loss, keep serving
            self._drop(len(batch), "store_error")
            if time.monotonic() - self._last_error_logged > 30:
                self._last_error_logged = time.monotonic()
                log.warning(
                    "prediction store %s refused %d rows (dropped): %s",
                    _safe(self.url),
                    len(batch),
                    exc,
                )
            self._stop.wait(
                min(self.flush_seconds, 1.0)
            )  # back off instead of spinning on a dead store

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far is written or dropped (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queued_rows and time.monotonic() < deadline:
            self._kick.set()
            time.sleep(0.01)

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._engine is not None:
            self._engine.dispose()


_COLUMNS = ("created_at", "request_id", "model_name", "model_version", "role", "features", "output")
# Rows per INSERT statement. Building a statement's parameters holds the GIL; executing it
# lets go. Small statements keep each hold short, so requests wait behind the writer for a
# fraction of a millisecond (fewer, larger statements doubled the forecast API's p99 at c8).
_ROWS_PER_STATEMENT = 32


def _insert(connection: sa.Connection, batch: list[PredictionRow]) -> None:
    """Insert rows, with as few hand-offs of the GIL as the driver allows.

    ``executemany`` on sqlite3 releases and retakes the GIL for every row; under load each
    retake waits for the request thread to yield, and that convoy cost ~15% of serving
    throughput. For qmark drivers (sqlite) the rows go as multi-row INSERTs of
    ``_ROWS_PER_STATEMENT`` rows, bound through the columns' own SQLAlchemy types, so what is
    stored is what ``predictions_table.insert()`` would store. Other drivers (psycopg) batch
    executemany themselves.
    """
    dialect = connection.dialect
    if dialect.paramstyle != "qmark":
        connection.execute(predictions_table.insert(), [row.as_dict() for row in batch])
        return
    bind = [predictions_table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in _COLUMNS]
    group = "(" + ", ".join("?" * len(_COLUMNS)) + ")"
    head = f"INSERT INTO {predictions_table.name} ({', '.join(_COLUMNS)}) VALUES "
    for start in range(0, len(batch), _ROWS_PER_STATEMENT):
        chunk = batch[start : start + _ROWS_PER_STATEMENT]
        params: list = []
        for row in chunk:
            values = (row.created_at, row.request_id, row.model_name, row.model_version, row.role,
                      row.features, row.output)
            params.extend(value if process is None else process(value)
                          for process, value in zip(bind, values, strict=True))
        connection.exec_driver_sql(head + ", ".join([group] * len(chunk)), tuple(params))


def _engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        # Several serving workers write the same file: wait for the lock instead of failing at once.
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _wal(connection, _record) -> None:
            # WAL lets readers (drift jobs) run beside the writers; synchronous=NORMAL syncs at
            # checkpoints rather than on every commit: a power cut may lose the last commits of
            # this log, never corrupt it.
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _safe(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<prediction store>"


def read_predictions(
    url: str, model_name: str | None = None, limit: int | None = None
) -> list[dict]:
    """Logged rows, newest first (drift jobs and tests)."""
    engine = _engine(url)
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
