"""The rollout's decision: what to do next, from the spec, the last status and what was seen.

:func:`decide` is pure (no Kubernetes, no MLflow, no clock of its own): it takes a
:class:`~modelfactory.rollout.spec.RolloutSpec`, the :class:`~modelfactory.rollout.status.Status`
the last decision left (kept in the ModelDeployment's status, so a restarted operator resumes
where it stood) and an :class:`~modelfactory.rollout.actions.Observation` (the registry's
aliases and traffic tags, the serving pods' counters, the time, a user's promote/abort/retry),
and returns the next status and the actions to apply. The analysis of each interval is
:mod:`modelfactory.rollout.analysis`.

It is level-based: every call recomputes the traffic the current step wants and asks for it
again if the registry says otherwise. Its rules:

- a new ``challenger`` alias starts a rollout (``trigger: manual``: after ``promote``);
- a ``replay`` step asks for a replay of the champion's logged requests (``RunReplay``) and
  waits for its result: failed rolls back before any live traffic, inconclusive pauses;
- the challenger is judged every analysis interval while it gets traffic; an enforced metric
  failing more than ``failureLimit`` times rolls it back; more than ``inconclusiveLimit``
  inconclusive intervals in a row (too few requests, metrics unreachable) pause it, never pass
  it; dry-run metrics are measured and shown only;
- an ``awaitOutcomes`` step holds the weight until enough of the challenger's answers have
  ground truth, and pauses when its timeout passes first;
- a step that does not complete within ``progressDeadlineSeconds`` rolls back;
- after the last step the challenger becomes champion;
- the registry unreachable: hold (no traffic change, no promotion), saying why; the challenger
  gone from the registry: abort.
"""

from __future__ import annotations

import copy

from modelfactory.rollout import analysis
from modelfactory.rollout.actions import (
    USER_ACTIONS,
    Action,
    ClearTraffic,
    Decision,
    Event,
    Observation,
    RegistryView,
    RunReplay,
    SetChallenger,
    SetTraffic,
)
from modelfactory.rollout.replay import judge_replay
from modelfactory.rollout.spec import RolloutSpec, Step
from modelfactory.rollout.status import (
    DEGRADED,
    HEALTHY,
    PAUSED,
    PROGRESSING,
    AnalysisStatus,
    ReplayStatus,
    Status,
)
from modelfactory.rollout.transitions import (
    advance,
    current,
    finish,
    pause,
    promote,
    rollback,
    where,
)

# Steps whose message says what they wait for (the others show the analysis).
_SAYS_WHY = ("replay", "awaitOutcomes")


def decide(spec: RolloutSpec, status: Status, observed: Observation) -> Decision:
    s = copy.deepcopy(status)
    actions: list[Action] = []
    now = observed.now
    if observed.action is not None and observed.action not in USER_ACTIONS:
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
            where(spec, s) if s.challenger else f"champion v{s.champion}"
        )
        return Decision(s, actions)
    s.champion = registry.champion
    in_flight = s.in_flight

    if in_flight and registry.challenger != s.challenger:
        gone = s.challenger
        if registry.challenger is None:
            reason = f"challenger v{gone} is gone from the registry"
            finish(s, actions, now, "aborted", reason, record=False)
            actions.append(ClearTraffic())
            return Decision(s, actions)
        finish(s, actions, now, "superseded", f"v{registry.challenger} replaced v{gone}")
        in_flight = False

    if not in_flight:
        return _between_rollouts(spec, s, observed, actions)

    # A rollout in flight: the user first, then the measurements, then the steps.
    if observed.action == "abort":
        rollback(s, actions, now, "aborted by a user")
        return Decision(s, actions)
    if observed.action == "promote-full":
        promote(s, actions, now, "promoted by a user, skipping the remaining steps")
        return Decision(s, actions)
    if observed.action == "promote" and s.phase == PAUSED:
        s.phase, s.awaiting_promotion = PROGRESSING, False
        s.analysis.inconclusive_in_a_row = 0
        paused_on = current(spec, s)
        if paused_on is not None and paused_on.kind in ("pause", "replay", "awaitOutcomes"):
            advance(s, now)  # a person's promote goes past what the step waited for
        actions.append(Event("Normal", "Resumed", f"promote: going on at {where(spec, s)}"))

    verdict = analysis.close_interval(spec, s, observed)
    if verdict == "failed":
        rollback(s, actions, now, s.analysis.last_reason)
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
        waiting = current(spec, s)
        if s.phase == PROGRESSING and (waiting is None or waiting.kind not in _SAYS_WHY):
            s.message = f"{where(spec, s)}; {analysis.describe(s)}"
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
            promote(s, actions, now, "promoted by a user, skipping the steps")
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
    s.analysis = AnalysisStatus(metrics=analysis.metric_statuses(spec))
    s.replay = None
    verb = "retrying" if retried else "rolling out"
    s.message = f"{verb} v{version} beside champion v{s.champion}"
    actions.append(Event("Normal", "RolloutStarted", s.message))


def _run_steps(spec: RolloutSpec, s: Status, observed: Observation, actions: list[Action]) -> None:
    now = observed.now
    while s.phase == PROGRESSING:
        step = current(spec, s)
        if step is None:
            promote(s, actions, now, f"all {len(spec.steps)} steps passed")
            return
        if step.kind in ("setWeight", "shadow"):
            mode = "canary" if step.kind == "setWeight" else "shadow"
            if (mode, step.weight) != (s.mode, s.weight):
                s.mode, s.weight = mode, step.weight
                analysis.start_interval(s, observed)  # an interval measures one traffic setting
            advance(s, now)
            continue
        started = s.step_started_at or now
        if step.kind == "replay":
            if _replayed(spec, s, step, observed, actions):
                advance(s, now)
                continue
            return
        if step.kind == "awaitOutcomes":
            if _outcomes_arrived(spec, s, step, observed, actions):
                advance(s, now)
                continue
            return
        if step.kind == "analysis":
            if s.analysis.successful_in_a_row >= step.intervals:
                advance(s, now)
                continue
        elif step.kind == "pause":
            if step.duration is None:
                s.phase, s.awaiting_promotion = PAUSED, True
                s.message = f"{where(spec, s)}: waiting for promote"
                actions.append(Event("Normal", "RolloutPaused", s.message))
                return
            if now - started >= step.duration:
                advance(s, now)
                continue
            return
        if now - started > spec.progress_deadline:
            rollback(
                s,
                actions,
                now,
                f"{where(spec, s)} made no progress in {spec.progress_deadline:g} s "
                f"(progressDeadlineSeconds); {analysis.describe(s)}",
            )
        return


def _replayed(
    spec: RolloutSpec, s: Status, step: Step, observed: Observation, actions: list[Action]
) -> bool:
    """Ask for the replay, wait for it, judge it: True once it passed."""
    now = observed.now
    assert s.challenger is not None
    asked = s.replay
    if asked is None or asked.version != s.challenger:
        s.replay = ReplayStatus(s.challenger, requested_at=now)
        actions.append(RunReplay(s.challenger, s.champion, step.last_requests, now - step.since))
        s.message = f"{where(spec, s)}: replaying the champion's logged requests"
        return False
    result = observed.replay
    if result is None or result.version != s.challenger or result.finished_at < asked.requested_at:
        if now - (s.step_started_at or now) > spec.progress_deadline:
            rollback(
                s,
                actions,
                now,
                f"the replay of v{s.challenger} did not finish in {spec.progress_deadline:g} s "
                "(progressDeadlineSeconds)",
            )
        else:
            s.message = f"{where(spec, s)}: replaying the champion's logged requests"
        return False
    judged = judge_replay(spec, step, result)
    asked.rows, asked.verdict, asked.reason = result.rows, judged.verdict, judged.reason
    asked.metrics = judged.metrics
    if judged.verdict == "Failed":
        rollback(s, actions, now, judged.reason)
        return False
    if judged.verdict == "Inconclusive":
        pause(s, actions, judged.reason)
        return False
    actions.append(Event("Normal", "ReplayPassed", judged.reason))
    return True


def _outcomes_arrived(
    spec: RolloutSpec, s: Status, step: Step, observed: Observation, actions: list[Action]
) -> bool:
    """Whether enough of the challenger's answers have ground truth; pause at the timeout."""
    now = observed.now
    assert s.challenger is not None
    if observed.outcomes is not None:
        s.analysis.labelled = {v: o.labelled for v, o in observed.outcomes.items()}
        s.analysis.realized = {v: dict(o.realized) for v, o in observed.outcomes.items()}
    labelled = s.analysis.labelled.get(s.challenger, 0)
    if labelled >= step.min_labelled:
        return True
    waited = now - (s.step_started_at or now)
    assert step.duration is not None
    if waited >= step.duration:
        pause(
            s,
            actions,
            f"inconclusive: {labelled} of v{s.challenger}'s answers have ground truth after "
            f"{waited:g} s, awaitOutcomes wants {step.min_labelled} (timeout "
            f"{step.duration:g} s); promote to go on, abort to roll back",
        )
        return False
    unreachable = (
        f"; ground truth unreachable ({observed.outcomes_error})" if observed.outcomes_error else ""
    )
    s.message = (
        f"{where(spec, s)}: {labelled} of {step.min_labelled} labelled answers{unreachable}; "
        f"{analysis.describe(s)}"
    )
    return False


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
