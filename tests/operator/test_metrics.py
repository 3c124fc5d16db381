"""The operator's Prometheus metrics of a rollout's evidence: what the dashboard plots."""

from __future__ import annotations

import prometheus_client as prom

from modelfactory.operator.metrics import OperatorMetrics
from modelfactory.rollout.status import AnalysisStatus, MetricStatus, Status


def samples(registry: prom.CollectorRegistry, name: str) -> dict[tuple, float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == name
    }


def test_each_metrics_bounds_and_each_versions_outcomes_are_exported_then_dropped():
    registry = prom.CollectorRegistry()
    metrics = OperatorMetrics(registry)
    analysis = AnalysisStatus(
        metrics={"agreement": MetricStatus(value=0.97, lower=0.93, upper=0.99, samples=400)},
        labelled={"1": 900, "2": 310},
        realized={"1": {"roc_auc": 0.81}, "2": {"roc_auc": 0.62}},
    )
    status = Status(phase="Progressing", champion="1", challenger="2", analysis=analysis)
    metrics.evidence_of("models", "bank", "bank-marketing", status)
    bounds = {
        dict(k)["bound"]: v
        for k, v in samples(registry, "modelfactory_operator_rollout_metric").items()
    }
    assert bounds == {"value": 0.97, "lower": 0.93, "upper": 0.99}
    realized = samples(registry, "modelfactory_operator_rollout_realized")
    assert sorted((dict(k)["version"], v) for k, v in realized.items()) == [
        ("1", 0.81),
        ("2", 0.62),
    ]
    labelled = samples(registry, "modelfactory_operator_rollout_labelled")
    assert sorted(labelled.values()) == [310, 900]
    metrics.evidence_of("models", "bank", "bank-marketing", Status(champion="2"))  # promoted
    assert samples(registry, "modelfactory_operator_rollout_metric") == {}
    assert samples(registry, "modelfactory_operator_rollout_realized") == {}
