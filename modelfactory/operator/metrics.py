"""The operator's own Prometheus metrics: reconciles by outcome and their duration, decisions."""

from __future__ import annotations

import prometheus_client as prom


class OperatorMetrics:
    def __init__(self, registry: prom.CollectorRegistry | None = None):
        kw: dict = {"registry": registry} if registry is not None else {}
        self.reconciles = prom.Counter(
            "modelfactory_operator_reconciles",
            "Rollout reconciles of ModelDeployments, by outcome (ok, invalid-spec, "
            "registry-write-failed).",
            ["outcome"],
            **kw,
        )
        self.reconcile_seconds = prom.Histogram(
            "modelfactory_operator_reconcile_seconds",
            "Time of one rollout reconcile: registry, metrics scrape, decision, writes.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            **kw,
        )
        self.decisions = prom.Counter(
            "modelfactory_operator_decisions",
            "Rollout decisions, by reason (RolloutStarted, Promoted, RolledBack, Aborted, "
            "RolloutPaused, AnalysisInconclusive, ...).",
            ["reason"],
            **kw,
        )
        self.rollout_weight = prom.Gauge(
            "modelfactory_operator_rollout_weight",
            "Percent of requests the challenger gets (canary) or predicts (shadow) right now.",
            ["namespace", "modeldeployment", "model", "challenger", "mode"],
            **kw,
        )
        self.rollout_step = prom.Gauge(
            "modelfactory_operator_rollout_step",
            "The rollout's current step (0 when none is in flight).",
            ["namespace", "modeldeployment", "model"],
            **kw,
        )
        self.registry = registry

    def reconciled(self, outcome: str, seconds: float) -> None:
        self.reconciles.labels(outcome).inc()
        self.reconcile_seconds.observe(seconds)

    def rollout(
        self,
        namespace: str,
        name: str,
        model: str,
        challenger: str | None,
        mode: str | None,
        weight: float,
        step: int,
    ) -> None:
        self.rollout_weight.labels(namespace, name, model, challenger or "", mode or "").set(weight)
        self.rollout_step.labels(namespace, name, model).set(step)

    def decided(self, reason: str) -> None:
        self.decisions.labels(reason).inc()

    def serve(self, port: int) -> None:
        prom.start_http_server(port, registry=self.registry or prom.REGISTRY)


OPERATOR_METRICS = OperatorMetrics()
