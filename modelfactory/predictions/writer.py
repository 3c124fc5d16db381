"""The prediction log's serving side: every served (and shadow) prediction, handed off the request
path to a writer process that spools it on the pod's volume and stores it in a SQL store.

Drift detection and feedback joins read that table (features, output, model version, time). A
request only puts rows on a bounded in-memory queue; a background thread hands them, a few times
a second, to the writer process (:mod:`modelfactory.predictions.drain`), which appends them to
this worker's spool (:mod:`modelfactory.predictions.spool`) and drains the spool into the store
(sqlite locally, PostgreSQL in the cluster) in order. A slow, full or missing store never blocks
or fails a request, and loses no row while the spool has room; rows that do not fit the queue or
the spool are dropped and counted (``on_drop``), and the serving metrics show the count and the
spool's size.

Why a writer process rather than a thread: docs/adr/0002-prediction-log-writer-process.md; the
spool: docs/adr/0013-prediction-log-spool.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from modelfactory.predictions import spool
from modelfactory.predictions.drain import PendingRequest, receive, send
from modelfactory.sql import shown_url

log = logging.getLogger(__name__)

DEFAULT_SPOOL_BYTES = 256 << 20


def _ignore(*args) -> None:
    pass


class PredictionLog:
    """A bounded queue in front of the writer process, handed over by one daemon thread.

    The bound (``max_queue``) counts rows in memory, queued or being handed over.

    The request path does one short locked append per request. The thread wakes every
    ``flush_seconds``, takes everything queued and sends it to the writer process (started on
    first use and again if it dies; a batch it was given when it died is given to the next
    one), which answers once the rows are on the spool, and stores them in transactions of at
    most ``batch_size`` rows: a few large transactions a second instead of one per request is
    what keeps logging cheap next to a sub-millisecond prediction.

    ``spool_dir``: where the spools live (one per worker, at most ``spool_max_bytes`` each; the
    worker takes over a spool a stopped worker left). None: no spool, and rows the store refuses
    are dropped (``store_error``). ``on_spool(rows, bytes)`` follows the spool's size.
    """

    def __init__(
        self,
        url: str,
        max_queue: int = 10_000,
        batch_size: int = 1000,
        flush_seconds: float = 0.25,
        on_drop: Callable[[int, str], None] = _ignore,
        on_write: Callable[[int], None] = _ignore,
        spool_dir: Path | str | None = None,
        spool_max_bytes: int = DEFAULT_SPOOL_BYTES,
        spool_fsync: bool = False,
        on_spool: Callable[[int, int], None] = _ignore,
    ):
        self.url = url
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.on_drop = on_drop
        self.on_write = on_write
        self.on_spool = on_spool
        self.spool_dir = Path(spool_dir) if spool_dir is not None else None
        self.spool_max_bytes = spool_max_bytes
        self.spool_fsync = spool_fsync
        self.claim: spool.Claim | None = None
        self._lock = threading.Lock()
        self._queue: deque[PendingRequest] = deque()
        self._queued_rows = 0
        self._writer: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._kick = threading.Event()  # flush() and close() wake the thread early
        self._thread: threading.Thread | None = None
        self._batches = int.from_bytes(os.urandom(6), "big")  # batch ids, unique per spool
        self.written = 0
        self.dropped: dict[str, int] = {}
        self.spooled_rows = 0
        self.spooled_bytes = 0
        self._answered = False  # the spool's size is known once its writer has answered
        self._last_error_logged = 0.0

    def start(self) -> PredictionLog:
        if self.spool_dir is not None:
            try:
                self.claim = spool.claim(self.spool_dir, self.url)
            except OSError as exc:
                log.warning(
                    "prediction spool directory %s cannot be used (%s): rows the store cannot "
                    "take will be dropped (MODELFACTORY_PREDICTION_SPOOL_DIR)",
                    self.spool_dir,
                    exc,
                )
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
                    PendingRequest(
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
        """Rows in memory: queued, or being handed to the writer."""
        return self._queued_rows

    def _run(self) -> None:
        if self.claim is not None:
            self._hand_over([])  # the writer drains what a stopped worker left, traffic or not
        while True:
            self._kick.wait(self.flush_seconds)
            self._kick.clear()
            stopping = self._stop.is_set()
            with self._lock:
                taken, self._queue = self._queue, deque()
            if taken or self.spooled_rows:  # while the spool drains, its size is followed
                self._hand_over(list(taken))
            if stopping:
                self._stop_writer()
                return

    def _hand_over(self, taken: list[PendingRequest]) -> None:
        """Give ``taken`` to the writer process (a second one if the first dies on it); count what
        it reports written and dropped."""
        total = sum(pending.rows_count for pending in taken)
        self._batches += 1
        message = ("rows", self._batches, taken) if taken else ("status",)
        answer, error = None, None
        for _attempt in range(2):
            try:
                writer = self._writer_process()
                send(writer.stdin, message)
                answer = receive(writer.stdout)
                if answer is None:
                    raise OSError(f"the writer process exited (code {writer.wait()})")
                break
            except Exception as exc:  # cannot pickle, writer died
                self._stop_writer()
                error = f"{type(exc).__name__}: {exc}"
        with self._lock:  # rows count against the bound until handed over or dropped
            self._queued_rows -= total
        if answer is None:
            answer = {"written": 0, "dropped": {"writer_error": total} if total else {}}
        self._count(answer, answer.get("error") or error)

    def _count(self, answer: dict, error: str | None) -> None:
        if answer["written"]:
            self.written += answer["written"]
            self.on_write(answer["written"])
        for reason, count in answer["dropped"].items():
            self._drop(count, reason)
        if "spool_rows" in answer:
            self._answered = True
            self.spooled_rows, self.spooled_bytes = answer["spool_rows"], answer["spool_bytes"]
            try:
                self.on_spool(self.spooled_rows, self.spooled_bytes)
            except Exception:
                log.exception("prediction log spool hook failed")
        if answer["dropped"] and error and time.monotonic() - self._last_error_logged > 30:
            self._last_error_logged = time.monotonic()
            log.warning(
                "prediction store %s refused %d rows (dropped): %s",
                shown_url(self.url),
                sum(answer["dropped"].values()),
                error,
            )

    def _writer_process(self) -> subprocess.Popen:
        if self._writer is None or self._writer.poll() is not None:
            held = self.claim
            self._writer = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from modelfactory.predictions.drain import serve_store; serve_store()",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                # The spool's lock goes with it: held while this worker or its writer lives.
                pass_fds=(held.lock_fd,) if held else (),
            )
            config: dict = {"url": self.url, "batch_size": self.batch_size}  # not argv: passwords
            if held is not None:
                config["spool"] = {
                    "root": str(self.spool_dir),
                    "path": str(held.path),
                    "max_bytes": self.spool_max_bytes,
                    "fsync": self.spool_fsync,
                }
            send(self._writer.stdin, config)
            self._count(receive(self._writer.stdout) or {"written": 0, "dropped": {}}, None)
        return self._writer

    def _stop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            if writer.stdin is not None:
                writer.stdin.close()  # end of input: the writer drains briefly and exits
            writer.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            writer.kill()
            writer.wait()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything logged so far is in the store, or dropped (tests, shutdown), or
        ``timeout`` has passed (the store is down: the rows wait in the spool)."""
        deadline = time.monotonic() + timeout
        while self._unsettled() and time.monotonic() < deadline:
            self._kick.set()
            time.sleep(0.01)

    def _unsettled(self) -> bool:
        return bool(self._queued_rows or self.spooled_rows or (self.claim and not self._answered))

    def close(self, timeout: float = 15.0) -> None:
        """Hand over what is queued and stop the writer; the spool stays for the next worker when
        it holds rows, and is removed when it does not."""
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._stop_writer()  # if the thread is stuck on a hung writer, the writer goes anyway
        held, self.claim = self.claim, None
        if held is not None:
            spool.remove_if_empty(held)
            held.release()
            self._count({"written": 0, "dropped": {}, "spool_rows": 0, "spool_bytes": 0}, None)
