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

Against a champion, the gate weighs what the use case's steps measured on rows neither version
trained on (:class:`~modelfactory.promotion.GateEvidence`); the decision, its reason and that
evidence are kept on the version (``promotion.*`` tags) and its run (the tags, ``gate_*``
metrics).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

from modelfactory.use_case import UseCase

if TYPE_CHECKING:
    from modelfactory.promotion import GateEvidence

PROMOTIONS = ("direct", "rollout")


def register_behind_gate(
    model_info: dict,
    model_name: str,
    case: UseCase,
    gather_evidence: Callable[[str, str], GateEvidence],
    margin: float = 0.0,
    tracking_uri: str = "",
    version_tags: dict[str, str] | None = None,
    promotion: str = "direct",
    min_rows: int | None = None,
) -> dict:
    """Register a trained model as challenger; the promotion gate decides whether it becomes
    champion.

    ``model_info`` comes from a train step (run id, model URI); the run holds
    ``holdout_<metric>`` and ``baseline_holdout_<metric>`` of the use case's gate metric.
    ``gather_evidence(champion_version, tracking_uri)`` measures both versions on the rows neither
    trained on (:class:`~modelfactory.promotion.GateEvidence`: this run's holdout less the
    champion's training rows, the champion's holdout less this run's). ``min_rows`` overrides
    the gate metric's minimum. The evidence is kept as ``promotion.*`` tags on the version and
    the run, and as ``gate_*`` metrics on the run.
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
    evidence = gather_evidence(str(champion.version), uri) if champion is not None else None
    decision = promotion_gate(
        metric,
        candidate,
        baseline=baseline,
        evidence=evidence,
        margin=margin,
        min_rows=min_rows or None,
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
    tags = {**decision.as_tags(), "modelfactory.registered_version": version.version}
    for key, value in tags.items():
        registry.client.set_tag(run_id, key, value)
    for name, figure in gate_metrics(metric.name, evidence).items():
        registry.client.log_metric(run_id, name, figure)
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
        "champion": decision.champion,
        "previous_champion": champion.version if champion else None,
        "evidence": asdict(evidence) if evidence is not None else None,
    }


def gate_metrics(metric: str, evidence: GateEvidence | None) -> dict[str, float]:
    """The evidence as run metrics: ``gate_<comparison>_rows`` and the scores of candidate and
    champion on them (``gate_fresh_candidate_roc_auc``, ...), where there are scores."""
    if evidence is None:
        return {}
    found: dict[str, float] = {}
    for name, comparison in (
        ("fresh", evidence.fresh),
        ("champion_holdout", evidence.champion_holdout),
    ):
        found[f"gate_{name}_rows"] = comparison.rows
        found[f"gate_{name}_of_rows"] = comparison.of_rows
        for who, value in (("candidate", comparison.candidate), ("champion", comparison.champion)):
            if value is not None and value == value:  # NaN: no score (one class only)
                found[f"gate_{name}_{who}_{metric}"] = value
    return found
