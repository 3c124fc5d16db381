"""Prometheus metrics of a serving process, per model version.

Created when the service starts, not at import: BentoML workers set
``PROMETHEUS_MULTIPROC_DIR`` after importing the service module, and only
metrics made afterwards land in the files ``/metrics`` aggregates across
workers. Tests pass their own ``CollectorRegistry``.
"""

from __future__ import annotations

# Fine around the usual latency budgets (50-250 ms): a p99 interpolated inside a wide bucket
# misstates by up to the bucket's width (ADR 0009 has the measured case).
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.035,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
)


class ServingMetrics:
    def __init__(self, registry=None):
        import prometheus_client as prom

        kw = {"registry": registry} if registry is not None else {}
        self.requests = prom.Counter(
            "modelfactory_requests",
            "Requests answered, by model version, route and protocol.",
            ["model", "version", "route", "protocol"],
            **kw,
        )
        self.errors = prom.Counter(
            "modelfactory_request_errors",
            "Requests refused or failed, by reason (invalid, not_found, "
            "too_large, unauthenticated, not_ready, model_error).",
            ["model", "version", "reason", "protocol"],
            **kw,
        )
        self.latency = prom.Histogram(
            "modelfactory_predict_latency_seconds",
            "Time to route, check and predict one request.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self.fallbacks = prom.Counter(
            "modelfactory_fallbacks",
            "Challenger requests answered by the champion instead, by reason "
            "(error, late, rejected).",
            ["model", "challenger", "reason"],
            **kw,
        )
        self.challenger_errors = prom.Counter(
            "modelfactory_challenger_errors",
            "Challenger predictions that raised.",
            ["model", "version", "kind"],
            **kw,
        )
        # What rollout analysis reads, per challenger version (docs: the operator's metrics).
        self.challenger_calls = prom.Counter(
            "modelfactory_challenger_calls",
            "Requests the challenger was asked to predict, by mode (canary, shadow).",
            ["model", "version", "mode"],
            **kw,
        )
        self.challenger_latency = prom.Histogram(
            "modelfactory_challenger_latency_seconds",
            "The challenger's own prediction time per canary request, used or not (late ones too).",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self.compared = prom.Counter(
            "modelfactory_compared",
            "Records both champion and challenger predicted (shadow, or the champion beside a "
            "canary answer).",
            ["model", "challenger"],
            **kw,
        )
        self.disagreed = prom.Counter(
            "modelfactory_disagreed",
            "Compared records where the challenger disagreed with the champion.",
            ["model", "challenger"],
            **kw,
        )
        self.shadow_predictions = prom.Counter(
            "modelfactory_shadow_predictions",
            "Records predicted in shadow by the challenger.",
            ["model", "version"],
            **kw,
        )
        self.shadow_disagreements = prom.Counter(
            "modelfactory_shadow_disagreements",
            "Shadow records where the challenger disagreed with the champion.",
            ["model", "version"],
            **kw,
        )
        self.shadow_skipped = prom.Counter(
            "modelfactory_shadow_skipped",
            "Shadow predictions skipped because too many were in flight.",
            ["model", "version"],
            **kw,
        )
        self.shadow_latency = prom.Histogram(
            "modelfactory_shadow_latency_seconds",
            "Time the challenger took per shadow batch (the requests queued since the last one).",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self.predictions = prom.Counter(
            "modelfactory_predictions",
            "Records predicted, by model version and predicted label.",
            ["model", "version", "label"],
            **kw,
        )
        self.score = prom.Histogram(
            "modelfactory_prediction_score",
            "Distribution of predicted scores (positive-class probability).",
            ["model", "version"],
            buckets=tuple(i / 10 for i in range(1, 11)),
            **kw,
        )
        self.log_written = prom.Counter(
            "modelfactory_prediction_log_written",
            "Prediction rows written to the prediction store.",
            **kw,
        )
        self.log_dropped = prom.Counter(
            "modelfactory_prediction_log_dropped",
            "Prediction rows dropped, by reason: queue_full (the worker's queue), spool_full "
            "(the spool at its bound), spool_torn and spool_corrupt (unreadable on the spool), "
            "store_refused (a row the store rejects), store_error (no spool and the store "
            "failed), spool_error, writer_error, unserializable.",
            ["reason"],
            **kw,
        )
        # Gauges of each worker's spool, summed over the live workers of the process.
        self.log_spool_rows = prom.Gauge(
            "modelfactory_prediction_log_spool_rows",
            "Prediction rows on the spool, waiting for the store.",
            multiprocess_mode="livesum",
            **kw,
        )
        self.log_spool_bytes = prom.Gauge(
            "modelfactory_prediction_log_spool_bytes",
            "Bytes of the spool on the volume (what its bound counts).",
            multiprocess_mode="livesum",
            **kw,
        )
        self.rollout_refresh_failures = prom.Counter(
            "modelfactory_rollout_refresh_failures",
            "Polls of the registry that failed (last state kept).",
            ["model"],
            **kw,
        )
        self._children: dict[tuple, tuple] = {}

    def spooled(self, rows: int, size: int) -> None:
        """The prediction log's spool, as its writer reported it."""
        self.log_spool_rows.set(rows)
        self.log_spool_bytes.set(size)

    def per_version(self, model: str, version: str, route: str, protocol: str):
        """The labelled children a request touches, cached: labels() costs more than inc()."""
        key = (model, version, route, protocol)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(model, version, route, protocol),
                self.latency.labels(model, version),
                self.score.labels(model, version),
            )
            self._children[key] = children
        return children
