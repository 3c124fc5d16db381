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
import queue
import threading
import time
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


class PredictionLog:
    """A bounded queue in front of the store, drained in batches by one daemon thread."""

    def __init__(
        self,
        url: str,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_seconds: float = 1.0,
        on_drop: Callable[[int, str], None] = _ignore,
        on_write: Callable[[int], None] = lambda n: None,
        engine_factory: Callable[[str], sa.Engine] | None = None,
    ):
        self.url = url
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.on_drop = on_drop
        self.on_write = on_write
        self._queue: queue.Queue[PredictionRow] = queue.Queue(maxsize=max_queue)
        self._engine_factory = engine_factory or _engine
        self._engine: sa.Engine | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        self._writing = False
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
        now = dt.datetime.now(dt.UTC)
        for i, (features, output) in enumerate(zip(records, outputs, strict=False)):
            row = PredictionRow(now, request_id, model_name, model_version, role, features, output)
            try:
                self._queue.put_nowait(row)
            except queue.Full:
                self._drop(len(records) - i, "queue_full")
                return

    def _drop(self, count: int, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count
        try:
            self.on_drop(count, reason)
        except Exception:  # a metrics hook must not break the caller
            log.exception("prediction log drop hook failed")

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while not self._stop.is_set() or not self._queue.empty():
            batch = self._take_batch()
            if batch:
                self._writing = True
                try:
                    self._write(batch)
                finally:
                    self._writing = False

    def _take_batch(self) -> list[PredictionRow]:
        try:
            batch = [self._queue.get(timeout=self.flush_seconds)]
        except queue.Empty:
            return []
        while len(batch) < self.batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list[PredictionRow]) -> None:
        try:
            if self._engine is None:
                engine = self._engine_factory(self.url)
                metadata.create_all(engine)
                self._engine = engine
            with self._engine.begin() as connection:
                connection.execute(predictions_table.insert(), [row.as_dict() for row in batch])
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
        """Wait until the queue is empty (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        time.sleep(0.01)
        while (not self._queue.empty() or self._writing) and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._engine is not None:
            self._engine.dispose()


def _engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        # Several serving workers write the same file: wait for the lock instead of failing at once.
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _wal(connection, _record) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
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
