"""The analysis of a rollout: every interval of traffic, the challenger's metrics judged
against their thresholds on all the evidence since the rollout began.

An interval begins when the traffic setting changes (or the last one closed) and keeps the
serving pods' counters at its start; :func:`close_interval` adds the counters' growth over the
interval to their totals since the rollout began, and judges each metric
(:mod:`modelfactory.rollout.evidence`): rates (errors, fallbacks, agreement, answers right) by
their anytime-valid bounds on the totals, so looking every interval inflates nothing; the p99
latency on the interval's own requests; ``realized-*`` figures on the ground truth of the
rollout's answers; PromQL metrics as Prometheus answered. An interval whose challenger requests
fall short of ``minRequests``, or whose evidence could not be read, is inconclusive, never a
pass; a rate whose bound still holds its threshold is undecided, and so is a ``realized-*``
metric whose versions have too few labelled answers yet: the interval is not a pass, and the
rollout waits for more evidence (within ``progressDeadlineSeconds``; an ``awaitOutcomes``
step before the analysis pauses at its own timeout instead).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Literal

from modelfactory.rollout.actions import Observation, VersionOutcome
from modelfactory.rollout.evidence import Evidence, Rate, judge_metric
from modelfactory.rollout.measurements import Measurement, Samples, increase, measure
from modelfactory.rollout.replay import describe as describe_metric
from modelfactory.rollout.spec import MetricSpec, RolloutSpec
from modelfactory.rollout.status import MetricStatus, Status

Verdict = Literal["failed", "pause"] | None


def interval_due(spec: RolloutSpec, s: Status, now: float) -> bool:
    """Whether a reconcile at ``now`` closes the analysis interval ``s`` is in."""
    started = s.analysis.interval_started_at
    return bool(s.weight) and started is not None and now - started >= spec.analysis.interval


def start_interval(s: Status, observed: Observation) -> None:
    s.analysis.interval_started_at = observed.now
    s.analysis.baseline = copy.deepcopy(observed.metrics)
    s.analysis.successful_in_a_row = 0


def metric_statuses(spec: RolloutSpec) -> dict[str, MetricStatus]:
    """Every metric of the analysis, nothing measured yet."""
    return {m.name: _metric_status(spec, m) for m in spec.analysis.metrics}


def _metric_status(spec: RolloutSpec, metric: MetricSpec) -> MetricStatus:
    return MetricStatus(threshold=metric.threshold(), dry_run=metric.name in spec.analysis.dry_run)


def close_interval(spec: RolloutSpec, s: Status, observed: Observation) -> Verdict:
    """Close the analysis interval when it is due: ``failed`` (roll back), ``pause`` (too many
    inconclusive intervals in a row) or None (go on)."""
    if not interval_due(spec, s, observed.now):
        return None
    a = s.analysis
    a.intervals += 1
    grown: Samples | None = None
    reason = ""
    if observed.metrics is None:
        reason = f"metrics unreachable ({observed.metrics_error})"
    elif observed.query_error is not None:
        reason = f"Prometheus unreachable ({observed.query_error})"
    elif spec.analysis.needs_outcomes and observed.outcomes is None:
        reason = f"ground truth unreachable ({observed.outcomes_error or 'not read'})"
    elif a.baseline is None:
        reason = "no baseline: the metrics were unreachable when the interval began"
    else:
        assert s.challenger is not None
        grown = increase(observed.metrics, a.baseline)
        calls = measure(grown, s.challenger, s.champion).calls
        if calls < spec.analysis.min_requests:
            reason = f"{calls:g} challenger requests < minRequests {spec.analysis.min_requests}"
    start_interval(s, observed)
    if reason:
        return _inconclusive(spec, s, reason)
    assert grown is not None and s.challenger is not None
    for key, value in grown.items():
        a.totals[key] = a.totals.get(key, 0.0) + value
    interval = measure(grown, s.challenger, s.champion)
    total = measure(a.totals, s.challenger, s.champion)
    if observed.outcomes is not None:
        a.labelled = {v: o.labelled for v, o in observed.outcomes.items()}
        a.realized = {v: dict(o.realized) for v, o in observed.outcomes.items()}
    seen = _evidence(spec, s, interval, total, observed)
    a.inconclusive_in_a_row = 0
    failures, undecided = [], []
    for metric in spec.analysis.metrics:
        state = a.metrics.setdefault(metric.name, _metric_status(spec, metric))
        judged = judge_metric(metric, seen, spec.analysis.alpha)
        state.lower, state.upper, state.samples = judged.lower, judged.upper, judged.trials
        if judged.verdict is None:
            state.last = "NoData"
            if metric.realized and not state.dry_run:  # never promoted without its outcomes
                undecided.append(f"{metric.name}: {judged.note or 'no labelled answers'}")
            continue
        state.value = judged.value
        if judged.verdict == "pass":
            state.successful += 1
            state.last = "Successful"
        elif judged.verdict == "inconclusive":
            state.inconclusive += 1
            state.last = "Inconclusive"
            if not state.dry_run:
                undecided.append(describe_metric(metric.name, state))
        else:
            state.failed += 1
            state.last = "Failed"
            if not state.dry_run and state.failed > spec.analysis.failure_limit:
                failures.append(
                    f"{describe_metric(metric.name, state)} (failed {state.failed} > "
                    f"failureLimit {spec.analysis.failure_limit}, {total.calls:g} challenger "
                    "requests)"
                )
    if failures:
        a.last_reason = "; ".join(failures)
        return "failed"
    failed_now = any(
        a.metrics[m.name].last == "Failed" and not a.metrics[m.name].dry_run
        for m in spec.analysis.metrics
    )
    passed = not failed_now and not undecided
    a.successful_in_a_row = a.successful_in_a_row + 1 if passed else 0
    head = f"interval {a.intervals}: {interval.calls:g} challenger requests, "
    if failed_now:
        a.last_reason = head + "a metric failed within failureLimit"
    elif undecided:
        a.last_reason = head + "waiting for evidence: " + "; ".join(undecided)
    else:
        a.last_reason = head + "every metric passed"
    return None


def _evidence(
    spec: RolloutSpec, s: Status, interval: Measurement, total: Measurement, observed: Observation
) -> Evidence:
    """Rates from the totals since the rollout began, the p99 of this interval, realized figures
    of the rollout's labelled answers, PromQL answers."""
    rates = {
        "error-rate": Rate(total.errors, total.calls),
        "fallback-rate": Rate(total.fallbacks, total.canary_calls),
        "agreement": Rate(total.compared - total.disagreed, total.compared),
    }
    values: dict[str, float | None] = {"latency-p99-ms": interval.latency_p99_ms}
    champion: dict[str, float | None] = {"latency-p99-ms": interval.champion_p99_ms}
    missing: dict[str, str] = {}
    outcomes: Mapping[str, VersionOutcome] = observed.outcomes or {}
    ours = outcomes.get(s.challenger or "")
    theirs = outcomes.get(s.champion or "")
    for metric in spec.analysis.metrics:
        if metric.query:
            values[metric.name] = observed.queried.get(metric.name)
            continue
        figure = metric.realized
        if figure is None:
            continue
        labelled = ours.labelled if ours else 0
        if labelled < metric.min_labelled:
            missing[metric.name] = (
                f"{labelled} labelled answers < minLabelled {metric.min_labelled}"
            )
            continue
        assert ours is not None
        if figure == "accuracy" and ours.correct is not None:
            rates[metric.name] = Rate(ours.correct, ours.labelled)
        values[metric.name] = _finite(ours.realized.get(figure))
        if theirs is not None and theirs.labelled >= metric.min_labelled:
            champion[metric.name] = _finite(theirs.realized.get(figure))
    return Evidence(rates=rates, values=values, champion=champion, missing=missing)


def _inconclusive(spec: RolloutSpec, s: Status, reason: str) -> Verdict:
    a = s.analysis
    a.successful_in_a_row = 0
    a.inconclusive_in_a_row += 1
    for kept in a.metrics.values():
        kept.inconclusive += 1
        kept.last = "Inconclusive"
    a.last_reason = f"inconclusive: {reason}"
    if a.inconclusive_in_a_row > spec.analysis.inconclusive_limit:
        a.last_reason = (
            f"inconclusive {a.inconclusive_in_a_row} intervals in a row (inconclusiveLimit "
            f"{spec.analysis.inconclusive_limit}): {reason}; promote to go on, abort to roll back"
        )
        return "pause"
    return None


def describe(s: Status) -> str:
    """Each measured metric against its threshold, as the status message shows them."""
    parts = []
    for name, m in s.analysis.metrics.items():
        if m.value is None:
            continue
        bounds = f" [{fmt(m.lower)}, {fmt(m.upper)}]" if m.lower is not None else ""
        parts.append(
            f"{name} {fmt(m.value)}{bounds} {m.threshold}{' (dry run)' if m.dry_run else ''}"
        )
    return ", ".join(parts) if parts else "no analysis interval closed yet"


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _finite(value: float | None) -> float | None:
    return value if value is not None and value == value else None
