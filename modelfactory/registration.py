"""Registering a trained version behind the promotion gate: the step every model-making pipeline
ends with.

How a version that passes the gate reaches traffic (``promotion``):

- ``direct``: it becomes champion at once (one machine, no rollout running);
- ``rollout``: it becomes ``challenger`` and a rollout (the operator, or ``modelfactory rollout
  run``) moves it out step by step; a version that fails the gate gets no alias, so no rollout
  ever picks it up (and a rollout of an earlier challenger goes on).

A version gets its alias only once the gate has judged it: a rollout watching the
``challenger`` alias never sees a version the gate has not passed.

The first version of a model becomes champion either way: there is nothing to roll out against.
"""

from __future__ import annotations

from collections.abc import Callable

from modelfactory.use_case import UseCase

PROMOTIONS = ("direct", "rollout")


def register_behind_gate(
    model_info: dict,
    model_name: str,
    case: UseCase,
    score_champion: Callable[[str, str], tuple[float, dict]],
    margin: float = 0.0,
    tracking_uri: str = "",
    version_tags: dict[str, str] | None = None,
    promotion: str = "direct",
) -> dict:
    """Register a trained model as challenger; the promotion gate decides whether it becomes
    champion.

    ``model_info`` comes from a train step (run id, model URI); the run holds
    ``holdout_<metric>`` and ``baseline_holdout_<metric>`` of the use case's gate metric.
    ``score_champion(version, tracking_uri)`` scores the current champion on this run's holdout,
    so both numbers answer the same question, and returns ``(score, extra run tags)``.
    """
    import mlflow

    from modelfactory.promotion import promotion_gate
    from modelfactory.registry import CHALLENGER, CHAMPION, Registry, resolve_tracking_uri

    if promotion not in PROMOTIONS:
        raise ValueError(f"promotion {promotion!r}: use one of {', '.join(PROMOTIONS)}")
    metric = case.gate
    uri = resolve_tracking_uri(tracking_uri or model_info.get("tracking_uri"))
    mlflow.set_tracking_uri(uri)
    registry = Registry(uri)
    metrics = registry.run_metrics(model_info["run_id"])
    candidate = metrics[f"holdout_{metric.name}"]
    baseline = metrics[f"baseline_holdout_{metric.name}"]
    champion = registry.version_by_alias(model_name, CHAMPION)
    champion_score: float | None = None
    run_tags: dict[str, str] = {}
    if champion is not None:
        champion_score, run_tags = score_champion(str(champion.version), uri)
    decision = promotion_gate(
        metric,
        candidate,
        champion=champion_score,
        baseline=baseline,
        margin=margin,
        champion_version=champion.version if champion else None,
    )
    version = registry.register(
        model_name,
        model_info["model_uri"],
        model_info["run_id"],
        case.name,
        tags=version_tags,
        challenger=False,
    )
    becomes_champion = decision.promote and (champion is None or promotion == "direct")
    registry.record_decision(model_name, version.version, decision, becomes_champion)
    alias: str | None
    if becomes_champion:
        alias, reason = CHAMPION, decision.reason
    elif decision.promote:
        alias, reason = CHALLENGER, f"{decision.reason}; eligible for a rollout"
    elif promotion == "rollout":
        alias, reason = None, decision.reason  # nothing failing the gate is rolled out
    else:
        alias, reason = CHALLENGER, decision.reason
    if alias is not None:  # the champion is challenger too: no other version is rolled out
        registry.set_alias(model_name, CHALLENGER, version.version)
    # On the training run by id (no active run: the caller's process may have its own).
    run_id = model_info["run_id"]
    tags = {**decision.as_tags(), "modelfactory.registered_version": version.version, **run_tags}
    for key, value in tags.items():
        registry.client.set_tag(run_id, key, value)
    if champion_score is not None:
        registry.client.log_metric(run_id, f"champion_holdout_{metric.name}", champion_score)
    return {
        "model_name": model_name,
        "version": version.version,
        "promoted": becomes_champion,
        "eligible": decision.promote,
        "alias": alias,
        "reason": reason,
        "run_id": model_info["run_id"],
        "metric": metric.name,
        "candidate": candidate,
        "baseline": baseline,
        "champion": champion_score,
        "previous_champion": champion.version if champion else None,
    }
