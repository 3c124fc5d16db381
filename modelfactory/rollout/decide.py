"""The rollout's decision core: what to do next, from the spec, the last status and what was seen.

:func:`decide` is pure (no Kubernetes, no MLflow, no clock of its own): it takes a
:class:`~modelfactory.rollout.spec.RolloutSpec`, the :class:`Status` the last decision left
(kept in the ModelDeployment's status, so a restarted operator resumes where it stood) and an
:class:`Observation` (the registry's aliases and traffic tags, the serving pods' counters, the
time, a user's promote/abort/retry), and returns the next status and the actions to apply:
traffic tags, alias moves, the outcome recorded on the version, events.

It is level-based: every call recomputes the traffic the current step wants and asks for it
again if the registry says otherwise. Its rules:

- a new ``challenger`` alias starts a rollout (``trigger: manual``: after ``promote``);
- the challenger is judged every analysis interval while it gets traffic; an enforced metric
  failing more than ``failureLimit`` times rolls it back; more than ``inconclusiveLimit``
  inconclusive intervals in a row (too few requests, metrics unreachable) pause it, never pass
  it; dry-run metrics are measured and shown only;
- a step that does not complete within ``progressDeadlineSeconds`` rolls back;
- after the last step the challenger becomes champion;
- the registry unreachable: hold (no traffic change, no promotion), saying why; the challenger
  gone from the registry: abort.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelfactory.rollout.measurements import Measurement, PodSamples, increase, measure
from modelfactory.rollout.spec import MetricSpec, RolloutSpec, Step
from modelfactory.rollout.state import RolloutState

HEALTHY, PROGRESSING, PAUSED, DEGRADED = "Healthy", "Progressing", "Paused", "Degraded"
ACTIONS = ("promote", "promote-full", "abort", "retry")
HISTORY_KEPT = 10


# --- what the controller observed, and what it should do -----------------------------------------
@dataclass(frozen=True)
class RegistryView:
    champion: str | None
    challenger: str | None
    traffic: RolloutState  # what the rollout.* tags say now


@dataclass(frozen=True)
class Observation:
    now: float  # seconds since the epoch
    registry: RegistryView | None  # None: unreachable
    registry_error: str | None = None
    metrics: PodSamples | None = None  # None: unreachable
    metrics_error: str | None = None
    action: str | None = None  # a user's promote, promote-full, abort or retry
    held_by: str | None = None  # another deployment drives this model's rollout
    # The analysis' PromQL metrics as Prometheus answered them now (None: no data), or why not.
    queried: Mapping[str, float | None] = field(default_factory=dict)
    query_error: str | None = None


@dataclass(frozen=True)
class SetTraffic:
    mode: str
    weight: float
    step: int
    budget_ms: float


@dataclass(frozen=True)
class ClearTraffic:
    pass


@dataclass(frozen=True)
class Promote:
    version: str  # becomes champion; the challenger alias and the traffic tags go


@dataclass(frozen=True)
class Rollback:
    version: str  # the challenger alias goes (if it still names this version), traffic tags too


@dataclass(frozen=True)
class SetChallenger:
    version: str


@dataclass(frozen=True)
class RecordOutcome:
    version: str
    outcome: str  # promoted | rolled-back | aborted
    reason: str
    metrics: dict[str, Any]


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


Action = SetTraffic | ClearTraffic | Promote | Rollback | SetChallenger | RecordOutcome | Event


# --- the state kept between decisions ------------------------------------------------------------
@dataclass
class MetricStatus:
    value: float | None = None
    threshold: str = ""
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    dry_run: bool = False
    last: str = ""  # Successful | Failed | Inconclusive | NoData


@dataclass
class AnalysisStatus:
    interval_started_at: float | None = None
    baseline: PodSamples | None = None
    intervals: int = 0
    successful_in_a_row: int = 0
    inconclusive_in_a_row: int = 0
    last_reason: str = ""
    metrics: dict[str, MetricStatus] = field(default_factory=dict)


@dataclass
class Status:
    phase: str = HEALTHY
    message: str = ""
    champion: str | None = None
    challenger: str | None = None
    step: int = 0
    step_started_at: float | None = None
    weight: float = 0.0
    mode: str | None = None
    rollout_started_at: float | None = None
    awaiting_promotion: bool = False
    last_finished: str | None = None  # version of the last rollout that ended
    last_outcome: str | None = None
    analysis: AnalysisStatus = field(default_factory=AnalysisStatus)
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in the field names of a ModelDeployment's status (times as RFC 3339)."""
        a = self.analysis
        return {
            "phase": self.phase,
            "message": self.message,
            "champion": self.champion,
            "challenger": self.challenger,
            "step": self.step,
            "stepStartedAt": _iso(self.step_started_at),
            "weight": self.weight,
            "mode": self.mode,
            "rolloutStartedAt": _iso(self.rollout_started_at),
            "awaitingPromotion": self.awaiting_promotion,
            "lastFinished": self.last_finished,
            "lastOutcome": self.last_outcome,
            "analysis": {
                "intervalStartedAt": _iso(a.interval_started_at),
                "baseline": a.baseline,
                "intervals": a.intervals,
                "successfulInARow": a.successful_in_a_row,
                "inconclusiveInARow": a.inconclusive_in_a_row,
                "lastReason": a.last_reason,
                "metrics": {
                    name: {
                        "value": m.value,
                        "threshold": m.threshold,
                        "successful": m.successful,
                        "failed": m.failed,
                        "inconclusive": m.inconclusive,
                        "dryRun": m.dry_run,
                        "last": m.last,
                    }
                    for name, m in a.metrics.items()
                },
            },
            "history": self.history,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Status:
        if not raw:
            return cls()
        a = raw.get("analysis") or {}
        return cls(
            phase=raw.get("phase") or HEALTHY,
            message=raw.get("message") or "",
            champion=raw.get("champion"),
            challenger=raw.get("challenger"),
            step=int(raw.get("step") or 0),
            step_started_at=_seconds(raw.get("stepStartedAt")),
            weight=float(raw.get("weight") or 0),
            mode=raw.get("mode"),
            rollout_started_at=_seconds(raw.get("rolloutStartedAt")),
            awaiting_promotion=bool(raw.get("awaitingPromotion")),
            last_finished=raw.get("lastFinished"),
            last_outcome=raw.get("lastOutcome"),
            analysis=AnalysisStatus(
                interval_started_at=_seconds(a.get("intervalStartedAt")),
                baseline=a.get("baseline"),
                intervals=int(a.get("intervals") or 0),
                successful_in_a_row=int(a.get("successfulInARow") or 0),
                inconclusive_in_a_row=int(a.get("inconclusiveInARow") or 0),
                last_reason=a.get("lastReason") or "",
                metrics={
                    name: MetricStatus(
                        value=m.get("value"),
                        threshold=m.get("threshold", ""),
                        successful=int(m.get("successful", 0)),
                        failed=int(m.get("failed", 0)),
                        inconclusive=int(m.get("inconclusive", 0)),
                        dry_run=bool(m.get("dryRun", False)),
                        last=m.get("last", ""),
                    )
                    for name, m in (a.get("metrics") or {}).items()
                },
            ),
            history=list(raw.get("history") or []),
        )


@dataclass(frozen=True)
class Decision:
    status: Status
    actions: list[Action]


# --- the decision ------------------------------------------------------------------------------
def decide(spec: RolloutSpec, status: Status, observed: Observation) -> Decision:
    s = copy.deepcopy(status)
    actions: list[Action] = []
    now = observed.now
    if observed.action is not None and observed.action not in ACTIONS:
        actions.append(Event("Warning", "UnknownAction", f"ignored action {observed.action!r}"))
    if observed.held_by is not None:
        s.message = (
            f"{spec.model}'s rollout is driven by {observed.held_by}: this one serves it but moves "
            "nothing (one ModelDeployment per registered model; delete the other, or its "
            "registered-model tag modelfactory.deployment if it is gone)"
        )
        return Decision(s, actions)
    registry = observed.registry
    if registry is None:
        s.message = f"registry unreachable ({observed.registry_error}): holding " + (
            _where(spec, s) if s.challenger else f"champion v{s.champion}"
        )
        return Decision(s, actions)
    s.champion = registry.champion
    in_flight = s.phase in (PROGRESSING, PAUSED) and s.challenger is not None

    if in_flight and registry.challenger != s.challenger:
        gone = s.challenger
        if registry.challenger is None:
            _finish(
                s,
                actions,
                now,
                "aborted",
                f"challenger v{gone} is gone from the registry",
                record=False,
            )
            actions.append(ClearTraffic())
            return Decision(s, actions)
        _finish(s, actions, now, "superseded", f"v{registry.challenger} replaced v{gone}")
        in_flight = False

    if not in_flight:
        return _between_rollouts(spec, s, observed, actions)

    # A rollout in flight: the user first, then the measurements, then the steps.
    if observed.action == "abort":
        _rollback(s, actions, now, "aborted by a user")
        return Decision(s, actions)
    if observed.action == "promote-full":
        _promote(s, actions, now, "promoted by a user, skipping the remaining steps")
        return Decision(s, actions)
    if observed.action == "promote" and s.phase == PAUSED:
        s.phase, s.awaiting_promotion = PROGRESSING, False
        s.analysis.inconclusive_in_a_row = 0
        paused_on = _current(spec, s)
        if paused_on is not None and paused_on.kind == "pause":
            _advance(spec, s, now)
        actions.append(Event("Normal", "Resumed", f"promote: going on at {_where(spec, s)}"))

    verdict = _analyse(spec, s, observed)
    if verdict == "failed":
        _rollback(s, actions, now, s.analysis.last_reason)
        return Decision(s, actions)
    if verdict == "pause":
        if s.phase != PAUSED:  # one event when it pauses; the message keeps counting
            actions.append(Event("Warning", "AnalysisInconclusive", s.analysis.last_reason))
        s.phase = PAUSED
        s.message = s.analysis.last_reason

    if s.phase == PROGRESSING:
        _run_steps(spec, s, observed, actions)
        if s.phase != PROGRESSING:  # promoted, rolled back or paused on a step
            return Decision(s, actions)
    if s.challenger is not None:
        _enforce_traffic(spec, s, registry, actions)
        if s.phase == PROGRESSING:
            s.message = f"{_where(spec, s)}; {_analysis_summary(s)}"
    return Decision(s, actions)


def _between_rollouts(
    spec: RolloutSpec, s: Status, observed: Observation, actions: list[Action]
) -> Decision:
    registry = observed.registry
    assert registry is not None
    now = observed.now
    challenger = registry.challenger
    fresh = challenger is not None and challenger != registry.champion
    if fresh and challenger == s.last_finished and s.last_outcome != "superseded":
        fresh = False  # its rollout ended (the alias could not be removed): wait for retry
    if observed.action == "retry" and s.last_finished and s.last_outcome != "promoted":
        version = s.last_finished
        actions.append(SetChallenger(version))
        _start(spec, s, actions, now, version, retried=True)
        registry = RegistryView(registry.champion, version, registry.traffic)
    elif fresh:
        assert challenger is not None
        if spec.trigger == "manual" and observed.action not in ("promote", "promote-full"):
            s.phase, s.challenger, s.awaiting_promotion = PAUSED, challenger, True
            s.step, s.weight, s.mode = 0, 0.0, None
            s.rollout_started_at = s.step_started_at = now
            s.message = f"challenger v{challenger} waits for promote (trigger: manual)"
            s.analysis = AnalysisStatus()
            actions.append(Event("Normal", "RolloutWaiting", s.message))
            if registry.traffic.active:
                actions.append(ClearTraffic())
            return Decision(s, actions)
        _start(spec, s, actions, now, challenger)
        if observed.action == "promote-full":
            _promote(s, actions, now, "promoted by a user, skipping the steps")
            return Decision(s, actions)
    if s.phase == PROGRESSING and s.challenger is not None:
        _run_steps(spec, s, observed, actions)
        if s.challenger is not None:
            _enforce_traffic(spec, s, registry, actions)
        return Decision(s, actions)
    # Nothing to roll out: the champion answers everything.
    if registry.traffic.active:
        actions.append(ClearTraffic())
    s.challenger, s.weight, s.mode, s.step = None, 0.0, None, 0
    s.awaiting_promotion = False
    if s.phase != DEGRADED:
        s.phase = HEALTHY
        s.message = (
            f"champion v{registry.champion} answers all requests"
            if registry.champion
            else f"{spec.model} has no champion yet"
        )
    return Decision(s, actions)


def _start(
    spec: RolloutSpec,
    s: Status,
    actions: list[Action],
    now: float,
    version: str,
    retried: bool = False,
) -> None:
    s.phase, s.challenger, s.awaiting_promotion = PROGRESSING, version, False
    s.step, s.weight, s.mode = 0, 0.0, None
    s.rollout_started_at = s.step_started_at = now
    s.analysis = AnalysisStatus(
        metrics={
            m.name: MetricStatus(threshold=m.threshold(), dry_run=m.name in spec.analysis.dry_run)
            for m in spec.analysis.metrics
        }
    )
    verb = "retrying" if retried else "rolling out"
    s.message = f"{verb} v{version} beside champion v{s.champion}"
    actions.append(Event("Normal", "RolloutStarted", s.message))


def _current(spec: RolloutSpec, s: Status) -> Step | None:
    return spec.steps[s.step] if s.step < len(spec.steps) else None


def _advance(spec: RolloutSpec, s: Status, now: float) -> None:
    s.step += 1
    s.step_started_at = now
    s.analysis.successful_in_a_row = 0


def _run_steps(spec: RolloutSpec, s: Status, observed: Observation, actions: list[Action]) -> None:
    now = observed.now
    while s.phase == PROGRESSING:
        step = _current(spec, s)
        if step is None:
            _promote(s, actions, now, f"all {len(spec.steps)} steps passed")
            return
        if step.kind in ("setWeight", "shadow"):
            mode = "canary" if step.kind == "setWeight" else "shadow"
            if (mode, step.weight) != (s.mode, s.weight):
                s.mode, s.weight = mode, step.weight
                _new_interval(s, observed)  # an interval measures one traffic setting
            _advance(spec, s, now)
            continue
        started = s.step_started_at or now
        if step.kind == "analysis":
            if s.analysis.successful_in_a_row >= step.intervals:
                _advance(spec, s, now)
                continue
        elif step.kind == "pause":
            if step.duration is None:
                s.phase, s.awaiting_promotion = PAUSED, True
                s.message = f"{_where(spec, s)}: waiting for promote"
                actions.append(Event("Normal", "RolloutPaused", s.message))
                return
            if now - started >= step.duration:
                _advance(spec, s, now)
                continue
            return
        if now - started > spec.progress_deadline:
            _rollback(
                s,
                actions,
                now,
                f"{_where(spec, s)} made no progress in {spec.progress_deadline:g} s "
                f"(progressDeadlineSeconds); {_analysis_summary(s)}",
            )
        return


def _new_interval(s: Status, observed: Observation) -> None:
    s.analysis.interval_started_at = observed.now
    s.analysis.baseline = copy.deepcopy(observed.metrics)
    s.analysis.successful_in_a_row = 0


def interval_due(spec: RolloutSpec, s: Status, now: float) -> bool:
    """Whether a reconcile at ``now`` closes the analysis interval ``s`` is in."""
    started = s.analysis.interval_started_at
    return bool(s.weight) and started is not None and now - started >= spec.analysis.interval


def _analyse(spec: RolloutSpec, s: Status, observed: Observation) -> str | None:
    """Close the analysis interval when it is due; 'failed', 'pause' or None."""
    if not interval_due(spec, s, observed.now):
        return None
    a = s.analysis
    a.intervals += 1
    measured: Measurement | None = None
    if observed.metrics is None:
        reason = f"metrics unreachable ({observed.metrics_error})"
    elif observed.query_error is not None:
        reason = f"Prometheus unreachable ({observed.query_error})"
    elif a.baseline is None:
        reason = "no baseline: the metrics were unreachable when the interval began"
    else:
        assert s.challenger is not None
        measured = measure(increase(observed.metrics, a.baseline), s.challenger, s.champion)
        reason = (
            f"{measured.calls:g} challenger requests < minRequests {spec.analysis.min_requests}"
            if measured.calls < spec.analysis.min_requests
            else ""
        )
    _new_interval(s, observed)
    if reason:
        a.successful_in_a_row = 0
        a.inconclusive_in_a_row += 1
        for kept in a.metrics.values():
            kept.inconclusive += 1
            kept.last = "Inconclusive"
        a.last_reason = f"inconclusive: {reason}"
        if a.inconclusive_in_a_row > spec.analysis.inconclusive_limit:
            a.last_reason = (
                f"inconclusive {a.inconclusive_in_a_row} intervals in a row (inconclusiveLimit "
                f"{spec.analysis.inconclusive_limit}): {reason}; promote to go on, abort to roll "
                "back"
            )
            return "pause"
        return None
    assert measured is not None
    a.inconclusive_in_a_row = 0
    failures = []
    for metric in spec.analysis.metrics:
        state = a.metrics.setdefault(
            metric.name,
            MetricStatus(
                threshold=metric.threshold(), dry_run=metric.name in spec.analysis.dry_run
            ),
        )
        value, passed = _judge(metric, measured, observed.queried)
        if value is None:
            state.last = "NoData"
            continue
        state.value = value
        if passed:
            state.successful += 1
            state.last = "Successful"
            continue
        state.failed += 1
        state.last = "Failed"
        if not state.dry_run and state.failed > spec.analysis.failure_limit:
            failures.append(
                f"{metric.name} {_fmt(value)} violates {metric.threshold()} "
                f"(failed {state.failed} > failureLimit {spec.analysis.failure_limit}, "
                f"{measured.calls:g} challenger requests)"
            )
    if failures:
        a.last_reason = "; ".join(failures)
        return "failed"
    failed_now = any(
        a.metrics[m.name].last == "Failed" and not a.metrics[m.name].dry_run
        for m in spec.analysis.metrics
    )
    a.successful_in_a_row = 0 if failed_now else a.successful_in_a_row + 1
    a.last_reason = f"interval {a.intervals}: {measured.calls:g} challenger requests, " + (
        "a metric failed within failureLimit" if failed_now else "every metric passed"
    )
    return None


def _judge(
    metric: MetricSpec, measured: Measurement, queried: Mapping[str, float | None]
) -> tuple[float | None, bool]:
    value = queried.get(metric.name) if metric.query else measured.value(metric.name)
    if value is None:
        return None, True
    if metric.max_ratio_to_champion is not None:
        if not measured.champion_p99_ms:
            return None, True
        ratio = value / measured.champion_p99_ms
        return value, ratio <= metric.max_ratio_to_champion
    if metric.max is not None:
        return value, value <= metric.max
    assert metric.min is not None
    return value, value >= metric.min


def _enforce_traffic(
    spec: RolloutSpec, s: Status, registry: RegistryView, actions: list[Action]
) -> None:
    traffic = registry.traffic
    if not s.weight or s.mode is None:
        if traffic.active:
            actions.append(ClearTraffic())
        return
    wanted = (s.mode, s.weight, s.step, spec.budget_ms)
    current = (traffic.mode, traffic.weight, traffic.step, traffic.budget_ms)
    if wanted != current or not traffic.active:
        actions.append(SetTraffic(s.mode, s.weight, s.step, spec.budget_ms))


def _summary(s: Status) -> dict[str, Any]:
    return {
        name: {"value": m.value, "threshold": m.threshold, "successful": m.successful,
               "failed": m.failed, "inconclusive": m.inconclusive}
        for name, m in s.analysis.metrics.items()
    }  # fmt: skip


def _finish(
    s: Status, actions: list[Action], now: float, outcome: str, reason: str, record: bool = True
) -> None:
    version = s.challenger
    assert version is not None
    if record:
        actions.append(RecordOutcome(version, outcome, reason, _summary(s)))
    s.history = [
        {
            "version": version,
            "outcome": outcome,
            "reason": reason,
            "startedAt": _iso(s.rollout_started_at),
            "finishedAt": _iso(now),
            "metrics": _summary(s),
        },
        *s.history,
    ][:HISTORY_KEPT]
    s.last_finished, s.last_outcome = version, outcome
    s.challenger, s.weight, s.mode, s.step, s.awaiting_promotion = None, 0.0, None, 0, False
    s.analysis.interval_started_at = None
    s.analysis.baseline = None
    if outcome == "promoted":
        s.phase, s.champion = HEALTHY, version
        s.message = f"v{version} promoted to champion: {reason}"
    else:
        s.phase = DEGRADED
        s.message = f"v{version} {outcome}: {reason}"
    kind = "Normal" if outcome in ("promoted", "superseded") else "Warning"
    actions.append(Event(kind, outcome.title().replace("-", ""), s.message))


def _promote(s: Status, actions: list[Action], now: float, reason: str) -> None:
    assert s.challenger is not None
    actions.append(Promote(s.challenger))
    _finish(s, actions, now, "promoted", reason)


def _rollback(s: Status, actions: list[Action], now: float, reason: str) -> None:
    assert s.challenger is not None
    actions.append(Rollback(s.challenger))
    outcome = "aborted" if reason.startswith("aborted") else "rolled-back"
    _finish(s, actions, now, outcome, reason)


# --- words ---------------------------------------------------------------------------------------
def _where(spec: RolloutSpec, s: Status) -> str:
    step = _current(spec, s)
    doing = step.describe() if step else "promotion"
    return f"step {s.step + 1}/{len(spec.steps)} ({doing}) of v{s.challenger}, weight {s.weight:g}%"


def _analysis_summary(s: Status) -> str:
    parts = [
        f"{name} {_fmt(m.value)} {m.threshold}{' (dry run)' if m.dry_run else ''}"
        for name, m in s.analysis.metrics.items()
        if m.value is not None
    ]
    return ", ".join(parts) if parts else "no analysis interval closed yet"


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}"


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat()


def _seconds(text: str | None) -> float | None:
    return None if not text else dt.datetime.fromisoformat(text).timestamp()
