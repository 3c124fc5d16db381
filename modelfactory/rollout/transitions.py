"""How a rollout moves between its states, each move recorded: the step it stands on and the
next one, a pause that says why, and the end of a rollout (promoted, rolled back, aborted,
superseded) with its outcome in the history, on the version (``RecordOutcome``) and as an
event. The decision (:mod:`modelfactory.rollout.decide`) calls these; nothing else writes the
status's phase.
"""

from __future__ import annotations

from modelfactory.rollout.actions import Action, Event, Promote, RecordOutcome, Rollback
from modelfactory.rollout.spec import RolloutSpec, Step
from modelfactory.rollout.status import (
    DEGRADED,
    HEALTHY,
    HISTORY_KEPT,
    PAUSED,
    FinishedRollout,
    Status,
)


def current(spec: RolloutSpec, s: Status) -> Step | None:
    return spec.steps[s.step] if s.step < len(spec.steps) else None


def advance(s: Status, now: float) -> None:
    s.step += 1
    s.step_started_at = now
    s.analysis.successful_in_a_row = 0


def pause(s: Status, actions: list[Action], reason: str) -> None:
    s.phase, s.awaiting_promotion, s.message = PAUSED, True, reason
    actions.append(Event("Warning", "RolloutInconclusive", reason))


def finish(
    s: Status, actions: list[Action], now: float, outcome: str, reason: str, record: bool = True
) -> None:
    version = s.challenger
    assert version is not None
    metrics = {name: m.summary() for name, m in s.analysis.metrics.items()}
    replayed = s.replay if s.replay is not None and s.replay.version == version else None
    replay = None
    if replayed is not None and replayed.verdict:
        replay = {
            "verdict": replayed.verdict,
            "rows": replayed.rows,
            "metrics": {name: m.summary() for name, m in replayed.metrics.items()},
        }
    if record:
        actions.append(
            RecordOutcome(
                version, outcome, reason, {**metrics, **({"replay": replay} if replay else {})}
            )
        )
    finished = FinishedRollout(version, outcome, reason, s.rollout_started_at, now, metrics, replay)
    s.history = [finished, *s.history][:HISTORY_KEPT]
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


def promote(s: Status, actions: list[Action], now: float, reason: str) -> None:
    assert s.challenger is not None
    actions.append(Promote(s.challenger))
    finish(s, actions, now, "promoted", reason)


def rollback(s: Status, actions: list[Action], now: float, reason: str) -> None:
    assert s.challenger is not None
    actions.append(Rollback(s.challenger))
    outcome = "aborted" if reason.startswith("aborted") else "rolled-back"
    finish(s, actions, now, outcome, reason)


def where(spec: RolloutSpec, s: Status) -> str:
    step = current(spec, s)
    doing = step.describe() if step else "promotion"
    return f"step {s.step + 1}/{len(spec.steps)} ({doing}) of v{s.challenger}, weight {s.weight:g}%"
