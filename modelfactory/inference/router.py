"""The model router: which version answers a request, during a canary or a shadow rollout.

The rollout itself (who takes part, mode, weight, budget) is read from the
registry (:mod:`modelfactory.rollout`); every serving process polls it
(:class:`ModelRouter`) and keeps the last known state when the registry does not
answer. :func:`choose_route` is the pure per-request decision; :class:`ModelRouter`
holds the loaded versions and runs the decision with fallback to the champion
("better wrong than late"); predictions on the side (shadow, and the champion beside a canary
answer) go to its :class:`~modelfactory.inference.shadow.ShadowWorker`, off the request path.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from functools import partial

from modelfactory.inference.schema import InvalidInput
from modelfactory.inference.served import ServedModel
from modelfactory.inference.shadow import ShadowJob, ShadowResult, ShadowWorker
from modelfactory.registry import CHAMPION
from modelfactory.rollout import RolloutState

log = logging.getLogger(__name__)


class UnknownVersion(LookupError):
    """An explicit version that this process does not serve."""

    def __init__(self, version: str, served: Sequence[str]):
        super().__init__(
            f"version {version!r} is not served here (served: {', '.join(served) or 'none'})"
        )
        self.version = version


@dataclass(frozen=True)
class Route:
    version: str  # who answers
    reason: str  # champion | canary | explicit
    shadow: str | None = None  # who predicts on the side, never answering
    fallback: str | None = None  # who answers if `version` errors or is late


def request_bucket(key: str) -> float:
    """A stable point in [0, 1) for a request key: the same key lands on the same side at a given
    weight, and a key on the challenger side stays there as the weight grows."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def choose_route(
    state: RolloutState,
    explicit_version: str | None = None,
    request_key: str | None = None,
    draw: Callable[[], float] = random.random,
) -> Route:
    """Which version answers: an explicit version wins; else a weighted (or sticky) draw."""
    if state.champion is None:
        raise UnknownVersion(explicit_version or CHAMPION, ())
    if explicit_version:
        if explicit_version in (state.champion, state.challenger):
            return Route(explicit_version, "explicit")
        raise UnknownVersion(explicit_version, [v for v in (state.champion, state.challenger) if v])
    if not state.active:
        return Route(state.champion, "champion")
    point = request_bucket(request_key) if request_key else draw()
    chosen = point * 100 < state.weight
    if state.mode == "canary":
        if chosen and state.challenger is not None:
            return Route(state.challenger, "canary", fallback=state.champion)
        return Route(state.champion, "champion")
    return Route(state.champion, "champion", shadow=state.challenger if chosen else None)


# --- the stateful router ------------------------------------------------------------------------


@dataclass
class Routed:
    """What answered a request."""

    model: ServedModel
    predictions: list[dict]
    route: Route
    seconds: float
    fallback_reason: str | None = None  # error | late | rejected, when the champion stood in


class RouterObserver:
    """Hooks for metrics and the prediction log; every method is a no-op by default."""

    def fallback(self, model: ServedModel, challenger: str, reason: str) -> None: ...

    def challenger_error(self, model: ServedModel, kind: str) -> None: ...

    def challenger_called(self, model: ServedModel, mode: str) -> None:
        """The challenger was asked to predict one request (``mode`` canary or shadow)."""

    def challenger_latency(self, model: ServedModel, seconds: float) -> None:
        """How long the challenger itself took for one canary request, whether or not its answer
        was used (answers past the budget are late even when they arrived before the wait began)."""

    def compared(self, challenger: str, agreements: Sequence[bool]) -> None:
        """Per record, whether the challenger agreed with the champion on the same input."""

    def shadow(
        self, challenger: ServedModel, results: Sequence[ShadowResult], seconds: float
    ) -> None:
        """The challenger's answers to a batch of shadowed requests, predicted in ``seconds``."""

    def shadow_skipped(self, challenger: str) -> None: ...

    def state_refresh_failed(self, error: Exception) -> None: ...

    def state_changed(self, state: RolloutState) -> None: ...


@dataclass
class _Snapshot:
    state: RolloutState
    models: dict[str, ServedModel] = field(default_factory=dict)


class ModelRouter:
    """Champion and challenger of one registered model in this process, following the registry.

    ``read_state`` returns the registry's :class:`RolloutState`; ``load`` loads a
    version. Both are injected so the routing can be tested without MLflow.
    """

    def __init__(
        self,
        name: str,
        read_state: Callable[[], RolloutState],
        load: Callable[[str], ServedModel],
        observer: RouterObserver | None = None,
        poll_seconds: float = 5.0,
        shadow_pending_limit: int = 1024,
    ):
        self.name = name
        self._read_state = read_state
        self._load = load
        self.observer = observer or RouterObserver()
        self.poll_seconds = poll_seconds
        self._snapshot = _Snapshot(RolloutState())
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # A canary challenger runs here so a slow one can be abandoned at its budget.
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="challenger")
        self._shadow = ShadowWorker(name, lambda: self.observer, shadow_pending_limit)
        self.last_refresh_error: str | None = None

    # state ---------------------------------------------------------------------------------------
    @property
    def state(self) -> RolloutState:
        return self._snapshot.state

    @property
    def ready(self) -> bool:
        snapshot = self._snapshot
        return snapshot.state.champion is not None and snapshot.state.champion in snapshot.models

    def model(self, version: str | None = None) -> ServedModel | None:
        snapshot = self._snapshot
        return snapshot.models.get(version or snapshot.state.champion or "")

    @property
    def served_versions(self) -> list[str]:
        snapshot = self._snapshot
        return [
            v
            for v in (snapshot.state.champion, snapshot.state.challenger)
            if v and v in snapshot.models
        ]

    def refresh(self) -> bool:
        """Read the registry and load what it names; keep the last known state on any failure."""
        with self._refresh_lock:
            try:
                state = self._read_state()
            except Exception as exc:  # registry unreachable: keep serving what we have
                self.last_refresh_error = str(exc)
                self.observer.state_refresh_failed(exc)
                log.warning(
                    "rollout state of %s not refreshed, keeping %s: %s",
                    self.name,
                    self._snapshot.state.describe(),
                    exc,
                )
                return False
            current = self._snapshot
            models = {
                v: m for v, m in current.models.items() if v in (state.champion, state.challenger)
            }
            # The challenger is loaded whenever the alias exists, so `x-model-version` can reach it
            # before any traffic is shifted.
            for version, required in ((state.champion, True), (state.challenger, False)):
                if version is None or version in models:
                    continue
                try:
                    models[version] = self._load(version)
                except Exception as exc:
                    self.last_refresh_error = f"loading v{version}: {exc}"
                    log.warning("could not load %s v%s: %s", self.name, version, exc)
                    if required:  # no new champion: keep the whole previous snapshot
                        self.observer.state_refresh_failed(exc)
                        return False
                    state = replace(
                        state,
                        challenger=None,
                        mode=None,
                        problem=f"challenger v{version} failed to load: {exc}",
                    )
            self.last_refresh_error = None
            if state != current.state:
                log.info("%s: %s", self.name, state.describe())
                self.observer.state_changed(state)
            self._snapshot = _Snapshot(state, models)
            return True

    def start(self) -> ModelRouter:
        """Refresh now, then every ``poll_seconds`` in a daemon thread."""
        self.refresh()
        self._thread = threading.Thread(
            target=self._poll, daemon=True, name=f"rollout-poll-{self.name}"
        )
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds if self.ready else min(self.poll_seconds, 2.0)):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        self._shadow.stop()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # requests ------------------------------------------------------------------------------------
    def predict(
        self,
        records,
        *,
        explicit_version: str | None = None,
        request_key: str | None = None,
        request_id: str | None = None,
        max_records: int | None = None,
    ) -> Routed:
        """Answer ``records``; raises InvalidInput (bad records), UnknownVersion, LookupError (not
        ready)."""
        snapshot = self._snapshot
        if not self.ready:
            raise LookupError(f"no champion of {self.name} is loaded yet")
        route = choose_route(snapshot.state, explicit_version, request_key)
        model = snapshot.models.get(route.version)
        if model is None:  # an explicit challenger version that is not loaded
            raise UnknownVersion(route.version, list(snapshot.models))
        started = time.perf_counter()
        if route.fallback is None:
            predictions = model.predict(records, max_records)
            routed = Routed(model, predictions, route, time.perf_counter() - started)
        else:
            routed = self._with_fallback(snapshot, route, model, records, max_records, started)
        if route.shadow is not None and route.shadow in snapshot.models:
            self._submit_shadow(snapshot.models[route.shadow], routed, records, request_id)
        elif route.reason == "canary" and routed.fallback_reason is None and route.fallback:
            # The champion answers the same input on the side, so agreement is measured in a
            # canary as in a shadow rollout.
            champion = snapshot.models[route.fallback]
            self._submit_shadow(champion, routed, records, request_id, compare_only=True)
        return routed

    def _with_fallback(
        self,
        snapshot: _Snapshot,
        route: Route,
        challenger: ServedModel,
        records,
        max_records,
        started: float,
    ) -> Routed:
        champion = snapshot.models[route.fallback or route.version]
        budget = snapshot.state.budget_ms / 1000
        self.observer.challenger_called(challenger, "canary")
        future = self._executor.submit(_timed, challenger.predict, records, max_records)
        try:
            predictions, took = future.result(timeout=budget)
            self.observer.challenger_latency(challenger, took)
            if took <= budget:
                return Routed(challenger, predictions, route, time.perf_counter() - started)
            reason = "late"  # it finished before the wait began, but past its budget
        except FutureTimeout:
            # Its latency still counts when it finishes: a p99 of only the punctual ones would lie.
            future.add_done_callback(partial(self._late_answer, challenger))
            reason = "late"
        except InvalidInput:
            reason = "rejected"  # the champion decides whether the input is bad for everyone
        except Exception as exc:
            log.warning("challenger %s v%s failed: %s", self.name, challenger.version, exc)
            self.observer.challenger_error(challenger, type(exc).__name__)
            reason = "error"
        predictions = champion.predict(records, max_records)
        self.observer.fallback(champion, challenger.version, reason)
        return Routed(
            champion,
            predictions,
            replace(route, version=champion.version),
            time.perf_counter() - started,
            fallback_reason=reason,
        )

    def _late_answer(self, challenger: ServedModel, future) -> None:
        if not future.cancelled() and future.exception() is None:
            self.observer.challenger_latency(challenger, future.result()[1])

    def _submit_shadow(
        self,
        side: ServedModel,
        routed: Routed,
        records,
        request_id: str | None,
        compare_only: bool = False,
    ) -> None:
        """Queue ``side``'s prediction of a request another version answered: the challenger in
        shadow mode, or the champion beside a canary answer (``compare_only``: agreement is all
        that is kept). Past ``shadow_pending_limit`` queued, skip it (counted)."""
        if self._shadow.full:
            self.observer.shadow_skipped(side.version)
            return
        if not compare_only:
            self.observer.challenger_called(side, "shadow")
        self._shadow.submit(
            ShadowJob(side, routed.model, routed.predictions, records, request_id, compare_only)
        )

    def drain(self, timeout: float = 5.0) -> None:
        """Wait for shadow predictions in flight (tests, shutdown)."""
        self._shadow.drain(timeout)


def _timed(predict: Callable, records, max_records) -> tuple[list[dict], float]:
    started = time.perf_counter()
    return predict(records, max_records), time.perf_counter() - started
