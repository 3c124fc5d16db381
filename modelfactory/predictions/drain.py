"""The prediction log's writer process: takes the batches a serving worker logs, appends them to
its spool, and drains the spool into the store in order.

The serving worker (:class:`~modelfactory.predictions.writer.PredictionLog`) starts it and talks
to it over a pipe: a configuration first, then batches, each answered at once with what was
written and dropped since the last answer and the spool's size. Nothing here waits for the
store on the serving worker's behalf: a batch is answered once it is on the spool; a thread
drains the spool into the store in transactions of at most ``batch_size`` rows, in the order the
rows were logged, and trims it after each commit. When the store fails, the rows stay on the
spool and the thread tries again (0.5 s, doubling up to 5 s); only past the spool's bound are
rows refused, and counted.

A row is stored once: after a start or a failed attempt (when a commit may have happened without
the trim that follows it) the drain looks up the rows it sends and inserts only those the store
does not hold (:func:`~modelfactory.predictions.store.insert_missing`), until a transaction finds
none of them there.

Without a spool directory it writes each batch straight to the store and drops (and counts)
what the store refuses, as before the spool existed. Design: docs/adr/0013-prediction-log-spool.md
(the spool), docs/adr/0002-prediction-log-writer-process.md (the process).
"""

from __future__ import annotations

import datetime as dt
import logging
import pickle
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa

from modelfactory.predictions.spool import Claim, Spool, claim, remove_if_empty
from modelfactory.predictions.store import (
    PredictionRow,
    create_tables,
    insert_missing,
    insert_rows,
)
from modelfactory.sql import engine as store_engine
from modelfactory.sql import shown_url

log = logging.getLogger(__name__)

_JSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS  # as the store's JSON columns
RETRY_SECONDS, MAX_RETRY_SECONDS = 0.5, 5.0
CLOSE_DRAIN_SECONDS = 3.0  # at end of input: drain what the store takes this quickly, keep the rest
ORPHAN_SCAN_SECONDS = 10.0
FRAME_ROWS = 100  # rows per frame: the grain at which a full spool refuses rows
# What the store refuses for the rows themselves (a value too long, a constraint): trying again
# cannot help, so those rows are dropped one by one instead of holding up the spool.
_REFUSED = (sa.exc.DataError, sa.exc.IntegrityError)


class PendingRequest(NamedTuple):
    """One request's rows as the request left them: made into rows here, not by the caller."""

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


def encode_rows(rows: list[PredictionRow]) -> bytes:
    """A frame's payload: the rows as one JSON list, times as RFC 3339."""
    return orjson.dumps([list(row) for row in rows], option=_JSON, default=str)


def decode_rows(payload: bytes) -> list[PredictionRow]:
    return [
        PredictionRow(dt.datetime.fromisoformat(when), *rest)
        for when, *rest in orjson.loads(payload)
    ]


class _Store:
    """The store's engine, made (and the tables created) on first use and again after a failure."""

    def __init__(self, url: str):
        self.url = url
        self._engine: sa.Engine | None = None

    def begin(self):
        if self._engine is None:
            created = store_engine(self.url)
            try:
                create_tables(created)
            except Exception:
                created.dispose()
                raise
            self._engine = created
        return self._engine.begin()

    def reset(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


class SpoolWriter:
    """The writer process's state with a spool: appends (the pipe's thread) and the drain thread."""

    def __init__(
        self, url: str, root: Path, own: Path, batch_size: int, max_bytes: int, fsync: bool
    ):
        self.url, self.root, self.batch_size = url, root, batch_size
        self.max_bytes, self.fsync = max_bytes, fsync
        self.store = _Store(url)
        self.spool = Spool(own, max_bytes, fsync)
        self._lock = threading.Lock()
        self._dropped: Counter[str] = Counter()
        self._written = 0
        if self.spool.torn_rows:
            self._dropped["spool_torn"] += self.spool.torn_rows
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._stop_by = float("inf")
        self._failing_since: float | None = None
        self._last_warning = self._last_full_warning = 0.0
        self._thread = threading.Thread(target=self._drain, daemon=True, name="spool-drain")

    # -- the pipe's side ----------------------------------------------------------------------
    def append(self, batch_id: int, rows: list[PredictionRow]) -> None:
        if batch_id == self.spool.last_batch_id:
            return  # sent again after the writer before us died having spooled it
        frames = []
        for start in range(0, len(rows), FRAME_ROWS):
            part = rows[start : start + FRAME_ROWS]
            try:
                frames.append((len(part), encode_rows(part)))
            except (TypeError, ValueError):  # orjson refuses a value (an int past 64 bits)
                self._drop(len(part), "unserializable")
        try:
            kept = self.spool.append(frames, batch_id)
        except OSError as exc:  # a full or failing volume
            log.warning("prediction spool %s refused a batch: %s", self.spool.path, exc)
            self._drop(sum(n for n, _ in frames), "spool_error")
            return
        refused = sum(n for n, _ in frames) - kept
        if refused:
            self._drop(refused, "spool_full")
            if time.monotonic() - self._last_full_warning > 30:
                self._last_full_warning = time.monotonic()
                log.warning(
                    "prediction spool %s is full (%d bytes, %d rows; bound %d bytes, "
                    "MODELFACTORY_PREDICTION_SPOOL_MAX_MB): %d rows dropped",
                    self.spool.path,
                    self.spool.size,
                    self.spool.rows,
                    self.spool.max_bytes,
                    refused,
                )
        self._wake.set()

    def answer(self) -> dict[str, Any]:
        with self._lock:
            dropped, self._dropped = dict(self._dropped), Counter()
            written, self._written = self._written, 0
        return {
            "written": written,
            "dropped": dropped,
            "spool_rows": self.spool.rows,
            "spool_bytes": self.spool.size,
        }

    def _drop(self, count: int, reason: str) -> None:
        with self._lock:
            self._dropped[reason] += count

    def start(self) -> SpoolWriter:
        self._thread.start()
        return self

    def close(self) -> None:
        """End of input: drain what the store takes within CLOSE_DRAIN_SECONDS, keep the rest."""
        self._stop_by = time.monotonic() + CLOSE_DRAIN_SECONDS
        self._stop.set()
        self._wake.set()
        self._thread.join(CLOSE_DRAIN_SECONDS + 1)
        self.spool.close()
        self.store.reset()

    # -- the drain thread ---------------------------------------------------------------------
    def _drain(self) -> None:
        """Own spool first; when it is empty, the spools of workers that are gone, one at a time."""
        uncertain, delay, next_scan = True, 0.0, 0.0
        adopted: tuple[Claim, Spool] | None = None
        while True:
            if self._stop.is_set() and (time.monotonic() > self._stop_by or delay):
                break  # stopping, and the store is failing or the time is up: the rest waits
            spool = self.spool
            if not spool.rows and adopted is not None:
                spool = adopted[1]
                if not spool.rows:
                    self._finish(adopted)
                    adopted, uncertain, next_scan = None, True, 0.0  # there may be more
                    continue
            if not spool.rows:
                if self._stop.is_set():
                    break
                if adopted is None and time.monotonic() >= next_scan:
                    adopted, next_scan = self._adopt(), time.monotonic() + ORPHAN_SCAN_SECONDS
                    if adopted is not None:
                        uncertain = True
                        continue
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            waiting = spool.rows
            try:
                uncertain = self._store_chunk(spool, uncertain)
            except Exception as exc:
                uncertain = True  # the commit may have happened before the error
                self.store.reset()
                delay = min(max(RETRY_SECONDS, delay * 2), MAX_RETRY_SECONDS)
                self._failing(exc, spool)
                self._stop.wait(delay)
                continue
            if delay:
                log.warning(
                    "prediction store %s is back after %.0f s; draining %d spooled rows",
                    shown_url(self.url),
                    time.monotonic() - (self._failing_since or time.monotonic()),
                    waiting,
                )
            delay, self._failing_since = 0.0, None
        if adopted is not None:
            adopted[1].close()
            adopted[0].release()

    def _store_chunk(self, spool: Spool, uncertain: bool) -> bool:
        """Store the spool's next rows and trim them; returns whether the next ones may be stored
        already (only while every row sent so far was)."""
        chunk = spool.read(self.batch_size)
        if chunk.corrupt_rows:
            log.warning("prediction spool %s: %d rows unreadable", spool.path, chunk.corrupt_rows)
            self._drop(chunk.corrupt_rows, "spool_corrupt")
        rows = [row for payload in chunk.payloads for row in decode_rows(payload)]
        held = 0
        if rows:
            try:
                with self.store.begin() as connection:
                    if uncertain:
                        held = insert_missing(connection, rows)
                    else:
                        insert_rows(connection, rows)
            except _REFUSED:
                held = self._store_one_by_one(rows)
        with self._lock:  # counted before the trim: an answer never shows one without the other
            self._written += len(rows) - held
        spool.advance(chunk)
        return uncertain and bool(rows) and held == len(rows)

    def _store_one_by_one(self, rows: list[PredictionRow]) -> int:
        held = 0
        for row in rows:
            try:
                with self.store.begin() as connection:
                    held += insert_missing(connection, [row])
            except _REFUSED as exc:
                log.warning("prediction store refused a row of %s: %s", row.model_name, exc.orig)
                self._drop(1, "store_refused")
                held += 1  # not written either
        return held

    def _failing(self, exc: Exception, spool: Spool) -> None:
        now = time.monotonic()
        self._failing_since = self._failing_since or now
        if now - self._last_warning > 30:
            self._last_warning = now
            log.warning(
                "prediction store %s does not take rows (%s: %s); %d rows (%d bytes of %d) wait "
                "in the spool %s",
                shown_url(self.url),
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
                spool.rows,
                spool.size,
                spool.max_bytes,
                spool.path,
            )

    def _adopt(self) -> tuple[Claim, Spool] | None:
        try:
            held = claim(self.root, self.url, create=False)
        except OSError:
            return None
        try:
            spool = Spool(held.path, self.max_bytes, self.fsync)
        except OSError as exc:
            log.warning("prediction spool %s cannot be read: %s", held.path, exc)
            held.release()
            return None
        if spool.torn_rows:
            self._drop(spool.torn_rows, "spool_torn")
        log.info("draining %s (%d rows), left by a stopped worker", held.path, spool.rows)
        return held, spool

    def _finish(self, adopted: tuple[Claim, Spool]) -> None:
        """An adopted spool is drained: removed, and its lock let go."""
        held, spool = adopted
        spool.close()
        remove_if_empty(held)
        held.release()


def _store_directly(batch_size: int, rows: list[PredictionRow], store: _Store) -> dict[str, Any]:
    """Without a spool: each batch straight to the store; what it refuses is dropped."""
    written, lost, error = 0, 0, None
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        try:
            with store.begin() as connection:
                insert_rows(connection, batch)
            written += len(batch)
        except Exception as exc:  # counted as dropped by the serving side
            store.reset()
            lost += len(batch)
            error = error or f"{type(exc).__name__}: {exc}"
    return {"written": written, "dropped": {"store_error": lost} if lost else {}, "error": error}


def serve_store() -> None:
    """The writer process: a configuration first, then ("rows", batch id, [PendingRequest]) or
    ("status",) messages on stdin. The configuration and each message are answered on stdout
    (written and dropped rows since the last answer, the spool's rows and bytes). Ends at end of
    input."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints go to the service's log, never into the pipe
    logging.basicConfig(level=logging.WARNING)
    # A stop signal to the serving process group must not cut a batch in half: this process ends
    # at end of input, when its serving worker has handed over its last rows or has died.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    config = receive(stdin)
    batch_size, spooled = config["batch_size"], config.get("spool")
    store = _Store(config["url"])
    writer = None
    if spooled is not None:
        writer = SpoolWriter(
            config["url"],
            Path(spooled["root"]),
            Path(spooled["path"]),
            batch_size,
            spooled["max_bytes"],
            spooled["fsync"],
        ).start()
    send(stdout, writer.answer() if writer else {"written": 0, "dropped": {}})
    while (message := receive(stdin)) is not None:
        kind, *body = message
        rows = []
        if kind == "rows":
            rows = [row for pending in body[1] for row in pending.rows()]
        if writer is not None:
            if rows:
                writer.append(body[0], rows)
            send(stdout, writer.answer())
        else:
            send(stdout, _store_directly(batch_size, rows, store))
    if writer is not None:
        writer.close()
    store.reset()


def send(stream, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(4, "big") + data)
    stream.flush()


def receive(stream):
    """The next message, or None at end of input."""
    head = stream.read(4)
    if len(head) < 4:
        return None
    return pickle.loads(stream.read(int.from_bytes(head, "big")))
