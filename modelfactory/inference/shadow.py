"""Predictions on the side, off the request path: the shadow worker of a model router.

A request one version answered may be predicted again by another, never answering: the
challenger in a shadow rollout (its answers are logged and compared with the champion's), or the
champion beside a canary answer (agreement is all that is kept). The router
(:class:`~modelfactory.inference.router.ModelRouter`) queues such a :class:`ShadowJob` and
returns; :class:`ShadowWorker`'s one daemon thread predicts what is queued in batches and tells
the router's observer what came of it. Past ``pending_limit`` queued jobs the router skips the
side prediction (and counts it) rather than fall behind without bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from modelfactory.inference.served import ServedModel

log = logging.getLogger(__name__)

SHADOW_BATCH = 64  # shadow requests predicted together in one challenger call
SHADOW_TICK_SECONDS = 0.02  # the shadow thread wakes this often and takes everything queued


@dataclass(frozen=True)
class ShadowResult:
    """The challenger's answer to one shadowed request (``predictions`` None when it failed)."""

    champion: ServedModel
    records: Sequence[Mapping]
    predictions: list[dict] | None
    agreements: list[bool] | None
    request_id: str | None
    error: str | None


@dataclass(frozen=True)
class ShadowJob:
    """One request to predict on the side."""

    side: ServedModel  # who predicts on the side: the challenger (shadow) or the champion
    answered_by: ServedModel  # who answered the request
    answer: list[dict]  # what it answered
    records: Sequence[Mapping]
    request_id: str | None
    compare_only: bool = False  # the champion beside a canary answer: only agreement is kept


class ShadowObserver(Protocol):
    """What the worker reports (the router's observer: metrics and the prediction log)."""

    def challenger_error(self, model: ServedModel, kind: str) -> None: ...

    def compared(self, challenger: str, agreements: Sequence[bool]) -> None: ...

    def shadow(
        self, challenger: ServedModel, results: Sequence[ShadowResult], seconds: float
    ) -> None: ...


class ShadowWorker:
    """A queue of :class:`ShadowJob` and the one thread that predicts them, started on the first
    job. ``observer()`` returns whom to report to (read per batch: a router's observer is set
    after the router is made)."""

    def __init__(
        self, name: str, observer: Callable[[], ShadowObserver], pending_limit: int = 1024
    ):
        self.name = name
        self._observer = observer
        self.pending_limit = pending_limit
        # Appends and pops of a deque are atomic, so the request path takes no lock and wakes no
        # thread.
        self._jobs: deque[ShadowJob] = deque()
        self._busy = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def full(self) -> bool:
        return len(self._jobs) >= self.pending_limit

    def submit(self, job: ShadowJob) -> None:
        self._jobs.append(job)
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, daemon=True, name=f"shadow-{self.name}"
                    )
                    self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def drain(self, timeout: float = 5.0) -> None:
        """Wait for shadow predictions in flight (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while (self._jobs or self._busy) and time.monotonic() < deadline:
            time.sleep(0.005)

    def _loop(self) -> None:
        # One thread wakes every SHADOW_TICK_SECONDS and predicts everything queued, a batch per
        # challenger call: a thread per request, or a wake-up per request, fought the request
        # threads for the GIL, and the compiled model costs far less per row in a batch.
        while not self._stop.wait(SHADOW_TICK_SECONDS):
            while self._jobs:
                self._busy = True  # before taking jobs, so drain() never sees neither
                batch: list[ShadowJob] = []
                while self._jobs and len(batch) < SHADOW_BATCH:
                    batch.append(self._jobs.popleft())
                try:
                    self._run_batch(batch)
                except Exception:  # metrics or logging trouble must not stop the shadow thread
                    log.exception("recording shadow predictions failed")
                finally:
                    self._busy = False

    def _run_batch(self, batch: list[ShadowJob]) -> None:
        observer = self._observer()
        by_side: dict[tuple[str, bool], list[ShadowJob]] = {}
        for job in batch:
            by_side.setdefault((job.side.version, job.compare_only), []).append(job)
        for (_, compare_only), jobs in by_side.items():
            if compare_only:
                self._compare_batch(jobs, observer)
                continue
            started = time.perf_counter()
            challenger = jobs[0].side
            try:
                merged = challenger.predict([r for job in jobs for r in job.records], None)
                answers: list[tuple[list[dict] | None, str | None]] = []
                offset = 0
                for job in jobs:
                    answers.append((merged[offset : offset + len(job.records)], None))
                    offset += len(job.records)
            except Exception:  # one bad request must not cost the others their shadow answer
                answers = [_predict_one(challenger, job, observer) for job in jobs]
            seconds = time.perf_counter() - started
            results = [
                ShadowResult(
                    job.answered_by,
                    job.records,
                    predictions,
                    job.answered_by.agrees(job.answer, predictions)
                    if predictions is not None
                    else None,
                    job.request_id,
                    error,
                )
                for job, (predictions, error) in zip(jobs, answers, strict=True)
            ]
            observer.shadow(challenger, results, seconds)
            observer.compared(
                challenger.version, [a for result in results for a in result.agreements or ()]
            )

    def _compare_batch(self, jobs: list[ShadowJob], observer: ShadowObserver) -> None:
        """The champion's answers to requests the challenger answered in a canary, compared."""
        champion = jobs[0].side
        try:
            merged = champion.predict([r for job in jobs for r in job.records], None)
        except Exception:  # the champion refusing what the challenger answered: not comparable
            return
        offset, agreements = 0, []
        for job in jobs:
            mine = merged[offset : offset + len(job.records)]
            offset += len(job.records)
            agreements += champion.agrees(mine, job.answer)
        observer.compared(jobs[0].answered_by.version, agreements)


def _predict_one(
    challenger: ServedModel, job: ShadowJob, observer: ShadowObserver
) -> tuple[list[dict] | None, str | None]:
    try:
        return challenger.predict(job.records, None), None
    except Exception as exc:  # a shadow failure is data for the analysis, never the caller's
        observer.challenger_error(challenger, type(exc).__name__)
        return None, type(exc).__name__
