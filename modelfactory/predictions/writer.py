"""The prediction log's writer: every served (and shadow) prediction, written to a SQL store off
the request path.

Drift detection reads this table (features, output, model version, time). A
request only puts rows on a bounded in-memory queue; a background thread hands
them, a few times a second, to a writer process that stores them in batches
through SQLAlchemy (sqlite locally, PostgreSQL in the cluster). A slow, full or
missing store never blocks or fails a request: rows that do not fit the queue,
or whose batch the store refused, are dropped and counted (``on_drop``), and the
serving metrics show the count.

Why a writer process rather than a thread: docs/adr/0002-prediction-log-writer-process.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import pickle
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import sqlalchemy as sa

from modelfactory.predictions.store import PredictionRow, insert_rows, metadata
from modelfactory.sql import engine as store_engine
from modelfactory.sql import shown_url

log = logging.getLogger(__name__)


def _ignore(count: int, reason: str) -> None:
    pass


class _Pending(NamedTuple):
    """One request's rows as the request left them: expanded into rows by the writer, not the
    caller."""

    created_at: dt.datetime
    request_id: str | None
    model_name: str
    model_version: str
    role: str
    records: Sequence[Mapping]
    outputs: Sequence[Mapping]
    rows_count: int

    def rows(self) -> list[PredictionRow]:
        head = self[:5]
        return [
            PredictionRow(*head, features, output)
            for features, output in zip(
                self.records[: self.rows_count], self.outputs[: self.rows_count], strict=False
            )
        ]


class PredictionLog:
    """A bounded queue in front of the store, drained by one daemon thread and a writer process.

    The bound (``max_queue``) counts rows in memory, queued or being written.

    The request path does one short locked append per request. The thread wakes every
    ``flush_seconds``, takes everything queued and sends it to the writer process
    (:func:`serve_store`, started on first use and again if it dies), which writes it in
    transactions of at most ``batch_size`` rows: a few large transactions a second instead of
    one per request is what keeps logging cheap next to a sub-millisecond prediction.
    """

    def __init__(
        self,
        url: str,
        max_queue: int = 10_000,
        batch_size: int = 1000,
        flush_seconds: float = 0.25,
        on_drop: Callable[[int, str], None] = _ignore,
        on_write: Callable[[int], None] = lambda n: None,
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
        self._writer: subprocess.Popen | None = None
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
            if taken:
                self._store(taken)
            if stopping:
                self._stop_writer()
                return

    def _store(self, taken: deque[_Pending]) -> None:
        """Have the writer process store ``taken``; count what it wrote and what was lost."""
        total = sum(pending.rows_count for pending in taken)
        try:
            writer = self._writer_process()
            _send(writer.stdin, list(taken))
            answer = _receive(writer.stdout)
            if answer is None:
                raise OSError(f"the writer process exited (code {writer.wait()})")
            written, error = answer
        except Exception as exc:  # cannot pickle, writer died: the batch is lost, not the worker
            self._stop_writer()
            written, error = [], f"{type(exc).__name__}: {exc}"
        for count in written:
            self.written += count
            self.on_write(count)
        lost = total - sum(written)
        with self._lock:  # rows count against the bound until written or dropped
            self._queued_rows -= total
        if lost:
            self._drop(lost, "store_error")
            if time.monotonic() - self._last_error_logged > 30:
                self._last_error_logged = time.monotonic()
                log.warning(
                    "prediction store %s refused %d rows (dropped): %s",
                    shown_url(self.url),
                    lost,
                    error,
                )
            self._stop.wait(min(self.flush_seconds, 1.0))  # back off from a dead store

    def _writer_process(self) -> subprocess.Popen:
        if self._writer is None or self._writer.poll() is not None:
            self._writer = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from modelfactory.predictions.writer import serve_store; serve_store()",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            _send(self._writer.stdin, (self.url, self.batch_size))  # not argv: URLs hold passwords
        return self._writer

    def _stop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            if writer.stdin is not None:
                writer.stdin.close()  # end of input: the writer finishes its batch and exits
            writer.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            writer.kill()
            writer.wait()

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
        self._stop_writer()  # if the thread is stuck on a hung store, the writer goes anyway


def serve_store() -> None:
    """The writer process: (url, batch size) first, then lists of pending requests on stdin.

    Each list is stored in transactions of at most ``batch size`` rows, and answered on
    stdout with (rows written per transaction, the first error or None). Ends at end of input.
    """
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints go to the service's log, never into the pipe
    logging.basicConfig(level=logging.WARNING)
    url, batch_size = _receive(stdin)
    engine: sa.Engine | None = None
    while (taken := _receive(stdin)) is not None:
        rows = [row for pending in taken for row in pending.rows()]
        written, error = [], None
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            try:
                if engine is None:
                    created = store_engine(url)
                    try:
                        metadata.create_all(created)  # until this works, every batch tries again
                    except Exception:
                        created.dispose()
                        raise
                    engine = created
                with engine.begin() as connection:
                    insert_rows(connection, batch)
                written.append(len(batch))
            except Exception as exc:  # counted as dropped by the serving side
                error = error or f"{type(exc).__name__}: {exc}"
        _send(stdout, (written, error))
    if engine is not None:
        engine.dispose()


def _send(stream, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(4, "big") + data)
    stream.flush()


def _receive(stream):
    """The next message, or None at end of input."""
    head = stream.read(4)
    if len(head) < 4:
        return None
    return pickle.loads(stream.read(int.from_bytes(head, "big")))
