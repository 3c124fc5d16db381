"""The analysis of a rollout: every interval of traffic, the challenger's metrics judged
against their thresholds.

An interval begins when the traffic setting changes (or the last one closed) and keeps the
serving pods' counters at its start; :func:`close_interval` measures the increase since then
(:mod:`modelfactory.rollout.measurements`) or takes what Prometheus answered, judges each
metric, and tallies it in the status. Too few challenger requests, or metrics that could not
be read, make the interval inconclusive, never a pass.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Literal

from modelfactory.rollout.actions import Observation
from modelfactory.rollout.measurements import Measurement, increase, measure
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
    start_interval(s, observed)
    if reason:
        return _inconclusive(spec, s, reason)
    assert measured is not None
    a.inconclusive_in_a_row = 0
    failures = []
    for metric in spec.analysis.metrics:
        state = a.metrics.setdefault(metric.name, _metric_status(spec, metric))
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
                f"{metric.name} {fmt(value)} violates {metric.threshold()} "
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


def describe(s: Status) -> str:
    """Each measured metric against its threshold, as the status message shows them."""
    parts = [
        f"{name} {fmt(m.value)} {m.threshold}{' (dry run)' if m.dry_run else ''}"
        for name, m in s.analysis.metrics.items()
        if m.value is not None
    ]
    return ", ".join(parts) if parts else "no analysis interval closed yet"


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
