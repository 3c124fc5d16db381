"""The operator's own Prometheus metrics: reconciles by outcome and their duration, decisions,
and each rollout's evidence (every metric's value and bounds, labelled answers and realized
figures by version), which the Grafana dashboard shows beside the serving pods' counters."""

from __future__ import annotations

import prometheus_client as prom

from modelfactory.rollout.status import Status


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
        self.evidence = prom.Gauge(
            "modelfactory_operator_rollout_metric",
            "Each analysis metric of the challenger in flight: its value and, for a rate, the "
            "bounds of its anytime-valid interval over everything seen since the rollout began.",
            ["namespace", "modeldeployment", "model", "challenger", "metric", "bound"],
            **kw,
        )
        self.labelled = prom.Gauge(
            "modelfactory_operator_rollout_labelled",
            "Answers with ground truth since the rollout began, by version.",
            ["namespace", "modeldeployment", "model", "version"],
            **kw,
        )
        self.realized = prom.Gauge(
            "modelfactory_operator_rollout_realized",
            "Realized figures (roc_auc, mape, ...) of each version's labelled answers since the "
            "rollout began.",
            ["namespace", "modeldeployment", "model", "version", "figure"],
            **kw,
        )
        self._shown: dict[tuple[str, str], list[tuple[prom.Gauge, tuple[str, ...]]]] = {}
        self.registry = registry

    def evidence_of(self, namespace: str, name: str, model: str, status: Status) -> None:
        """The rollout's evidence now; the series of the ModelDeployment's last rollout go."""
        for gauge, labels in self._shown.pop((namespace, name), []):
            gauge.remove(*labels)
        shown: list[tuple[prom.Gauge, tuple[str, ...]]] = []

        def show(gauge: prom.Gauge, labels: tuple[str, ...], value: float) -> None:
            gauge.labels(*labels).set(value)
            shown.append((gauge, labels))

        if status.challenger is not None:
            for metric, m in status.analysis.metrics.items():
                for bound, value in (("value", m.value), ("lower", m.lower), ("upper", m.upper)):
                    if value is not None:
                        labels = (namespace, name, model, status.challenger, metric, bound)
                        show(self.evidence, labels, value)
            for version, count in status.analysis.labelled.items():
                show(self.labelled, (namespace, name, model, version), count)
            for version, figures in status.analysis.realized.items():
                for figure, value in figures.items():
                    show(self.realized, (namespace, name, model, version, figure), value)
        self._shown[(namespace, name)] = shown

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
