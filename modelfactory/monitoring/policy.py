"""The retraining policy: from what a check measured, decide what to do, and say why.

:func:`decide` is pure: the :class:`Evidence` of one check, the :class:`DriftPolicy`, the
monitor's :class:`MonitorState` and the time in; a :class:`Decision` (an action and its
reason) and the next state out. The state is small and plain (consecutive drifted checks, the
last retrain), so it lives wherever the caller keeps it (a DriftMonitor's status, a JSON
file) and survives restarts; nothing is kept in process memory.

The rules, in order:

1. fewer than ``min_rows`` rows in the window: ``insufficient_data``, never a retrain, and the
   consecutive count is left as it was (no evidence either way);
2. drift triggers: at least ``drifted_share`` of the input columns drifted, or one of the
   ``decisive`` columns did, or (``prediction_drift_decides``) an output did;
3. the performance trigger: with at least ``min_labelled_rows`` labelled rows, the gate metric
   realized over the window fell more than ``max_performance_drop`` below the version's holdout
   figure;
4. a drifted check adds one to the consecutive count, any other resets it;
5. a retrain is due when drift has lasted ``consecutive_checks`` checks, or performance fell;
   it waits (``cooldown``) while the last retrain is more recent than ``cooldown``, and is only
   an ``alert`` when retraining is disabled.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Literal

from modelfactory.durations import describe
from modelfactory.status import Moment, camel_case
from modelfactory.timestamps import rfc3339

Action = Literal["insufficient_data", "no_drift", "drift_pending", "retrain", "cooldown", "alert"]


@dataclass(frozen=True)
class DriftPolicy:
    """When a check's findings become a retrain (a monitor's configuration makes one:
    :meth:`~modelfactory.monitoring.config.MonitorConfig.policy`)."""

    min_rows: int = 500
    drifted_share: float = 0.3
    decisive: tuple[str, ...] = ()
    prediction_drift_decides: bool = True
    consecutive_checks: int = 2
    cooldown: dt.timedelta = dt.timedelta(hours=24)
    max_performance_drop: float = 0.05
    min_labelled_rows: int = 200


@dataclass(frozen=True)
class Evidence:
    """What one check measured. ``performance_drop``: the gate metric's holdout figure minus its
    realized figure, in the direction where positive is worse (None: too few labels)."""

    rows: int
    input_columns: int = 0
    drifted_inputs: tuple[str, ...] = ()
    drifted_outputs: tuple[str, ...] = ()
    labelled_rows: int = 0
    metric: str | None = None
    realized: float | None = None
    holdout: float | None = None
    performance_drop: float | None = None

    @property
    def drifted_share(self) -> float:
        return len(self.drifted_inputs) / self.input_columns if self.input_columns else 0.0


@camel_case
@dataclass(frozen=True)
class LastRetrain:
    """The last retrain the policy started: when, why, and (once it started) its run and the
    version it registered."""

    time: Moment
    reason: str | None = None
    run_id: str | None = None
    version: str | None = None


@camel_case
@dataclass(frozen=True)
class MonitorState:
    """What a monitor remembers between checks: the DriftMonitor status's fields (written by
    :mod:`modelfactory.status`)."""

    consecutive_drifted_checks: int = 0
    last_check: Moment | None = None
    last_retrain: LastRetrain | None = None

    def with_retrain(self, run_id: str | None, version: str | None = None) -> MonitorState:
        """The state once the retrain this state announced was started (its run and version)."""
        assert self.last_retrain is not None
        return replace(
            self, last_retrain=replace(self.last_retrain, run_id=run_id, version=version)
        )


@camel_case
@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    drifted: bool = False
    triggers: tuple[str, ...] = ()  # data_drift, decisive_column, prediction_drift, performance
    consecutive_drifted_checks: int = 0
    drifted_share: float = 0.0

    @property
    def retrain(self) -> bool:
        return self.action == "retrain"


def decide(
    evidence: Evidence,
    policy: DriftPolicy,
    state: MonitorState,
    now: dt.datetime,
    retrain_enabled: bool = True,
) -> tuple[Decision, MonitorState]:
    """The decision for ``evidence`` and the state the next check starts from."""
    checked = replace(state, last_check=now)
    if evidence.rows < policy.min_rows:
        return (
            Decision(
                "insufficient_data",
                f"insufficient data: {evidence.rows} rows in the window, the policy judges drift "
                f"from {policy.min_rows} rows on (never a retrain on fewer)",
                consecutive_drifted_checks=state.consecutive_drifted_checks,
            ),
            checked,
        )
    found: list[str] = []
    triggers: list[str] = []
    share = evidence.drifted_share
    drifted_count = f"{len(evidence.drifted_inputs)} of {evidence.input_columns} input columns"
    if evidence.input_columns and share >= policy.drifted_share:
        triggers.append("data_drift")
        found.append(
            f"{drifted_count} drifted ({share:.0%} >= {policy.drifted_share:.0%}: "
            f"{', '.join(evidence.drifted_inputs)})"
        )
    decisive = [c for c in policy.decisive if c in evidence.drifted_inputs]
    if decisive:
        triggers.append("decisive_column")
        found.append(f"decisive column(s) drifted: {', '.join(decisive)}")
    if evidence.drifted_outputs and policy.prediction_drift_decides:
        triggers.append("prediction_drift")
        found.append(f"prediction drift: {', '.join(evidence.drifted_outputs)}")
    drifted = bool(triggers)
    consecutive = state.consecutive_drifted_checks + 1 if drifted else 0
    performance = _performance_trigger(evidence, policy)
    if performance:
        triggers.append("performance")
        found.append(performance)
    due = (drifted and consecutive >= policy.consecutive_checks) or bool(performance)
    counted = replace(checked, consecutive_drifted_checks=consecutive)

    def decision(action: Action, reason: str) -> Decision:
        return Decision(action, reason, drifted, tuple(triggers), consecutive, share)

    if not triggers:
        quiet = (
            f"no drift: {drifted_count} drifted ({share:.0%} < {policy.drifted_share:.0%})"
            if evidence.input_columns
            else "no drift in the compared columns"
        )
        if evidence.performance_drop is not None:
            quiet += (
                f"; realized {evidence.metric} {evidence.realized:.4f} vs holdout "
                f"{evidence.holdout:.4f} (drop {evidence.performance_drop:+.4f} within "
                f"{policy.max_performance_drop:g})"
            )
        return decision("no_drift", quiet), counted
    summary = "; ".join(found)
    if not due:
        return (
            decision(
                "drift_pending",
                f"{summary}; drifted check {consecutive} of {policy.consecutive_checks} "
                "consecutive before a retrain",
            ),
            counted,
        )
    if not retrain_enabled:
        return decision("alert", f"{summary}; retraining is disabled"), counted
    last = state.last_retrain
    if last is not None and now - last.time < policy.cooldown:
        return (
            decision(
                "cooldown",
                f"{summary}; a retrain is due but the last one started "
                f"{describe(now - last.time)} ago (cooldown {describe(policy.cooldown)}, "
                f"until {rfc3339(last.time + policy.cooldown)})",
            ),
            counted,
        )
    retrained = replace(
        counted, consecutive_drifted_checks=0, last_retrain=LastRetrain(now, reason=summary)
    )
    return decision("retrain", summary), retrained


def _performance_trigger(evidence: Evidence, policy: DriftPolicy) -> str | None:
    if evidence.performance_drop is None or evidence.labelled_rows < policy.min_labelled_rows:
        return None
    if evidence.performance_drop <= policy.max_performance_drop:
        return None
    return (
        f"realized {evidence.metric} {evidence.realized:.4f} on {evidence.labelled_rows} labelled "
        f"rows vs holdout {evidence.holdout:.4f}: drop {evidence.performance_drop:.4f} > "
        f"{policy.max_performance_drop:g}"
    )
