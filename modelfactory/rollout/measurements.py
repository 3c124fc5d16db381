"""What serving measured about a challenger, read from the serving pods' ``/metrics``.

Each serving pod (each local serving process) exports Prometheus counters per challenger
version (:mod:`modelfactory.inference.metrics`). :func:`samples_from_text` keeps the few a
rollout needs, as a flat mapping of JSON-friendly keys (a ModelDeployment's status stores the
values at the start of an analysis interval); :func:`increase` takes per-pod deltas over the
interval the way Prometheus' ``increase`` does (a pod whose counter went down restarted: its
whole value counts); :func:`measure` turns them into the analysis metrics.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, float]  # key -> counter value, one pod
PodSamples = dict[str, Samples]  # pod (or process URL) -> its samples


def _key(*parts: str) -> str:
    return "|".join(parts)


def samples_from_text(text: str, model: str, versions: Iterable[str]) -> Samples:
    """The counters of ``model``'s ``versions`` in a Prometheus text exposition."""
    wanted = {str(v) for v in versions if v}
    found: Samples = {}

    def add(key: str, value: float) -> None:
        found[key] = found.get(key, 0.0) + value

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("model") != model:
                continue
            name = sample.name
            version = labels.get("version") or labels.get("challenger")
            if version not in wanted:
                continue
            if name == "modelfactory_challenger_calls_total":
                add(_key("calls", labels.get("mode", ""), version), sample.value)
            elif name == "modelfactory_challenger_errors_total":
                add(_key("errors", version), sample.value)
            elif name == "modelfactory_fallbacks_total":
                add(_key("fallbacks", version), sample.value)
            elif name == "modelfactory_compared_total":
                add(_key("compared", version), sample.value)
            elif name == "modelfactory_disagreed_total":
                add(_key("disagreed", version), sample.value)
            elif name == "modelfactory_challenger_latency_seconds_bucket":
                add(_key("challenger_le", version, labels["le"]), sample.value)
            elif name == "modelfactory_predict_latency_seconds_bucket":
                add(_key("answered_le", version, labels["le"]), sample.value)
    return found


def increase(current: PodSamples, baseline: PodSamples | None) -> Samples:
    """Per key, the increase summed over pods since ``baseline`` (counter resets handled)."""
    total: Samples = {}
    for pod, now in current.items():
        before = (baseline or {}).get(pod, {})
        for key, value in now.items():
            previous = before.get(key, 0.0)
            grown = value - previous if value >= previous else value  # reset: it restarted
            total[key] = total.get(key, 0.0) + grown
    return total


def quantile(buckets: Mapping[float, float], q: float) -> float | None:
    """``histogram_quantile``: ``buckets`` maps upper bounds (inf included) to cumulative counts."""
    if not buckets:
        return None
    bounds = sorted(buckets)
    count = buckets[bounds[-1]]
    if count <= 0:
        return None
    rank = q * count
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        cumulative = buckets[bound]
        if cumulative >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the largest finite bucket: its bound is all we know
            within = cumulative - lower_count
            fraction = (rank - lower_count) / within if within > 0 else 1.0
            return lower_bound + (bound - lower_bound) * fraction
        lower_bound, lower_count = bound, cumulative
    return bounds[-1]


def _buckets(increase_: Samples, prefix: str, version: str) -> dict[float, float]:
    head = _key(prefix, version, "")
    return {float(k[len(head) :]): v for k, v in increase_.items() if k.startswith(head)}


@dataclass(frozen=True)
class Measurement:
    """One interval of a challenger's traffic, and the analysis metrics it gives."""

    canary_calls: float
    shadow_calls: float
    errors: float
    fallbacks: float
    compared: float
    disagreed: float
    latency_p99_ms: float | None  # the challenger's own, canary requests
    champion_p99_ms: float | None  # the champion's answers in the same interval

    @property
    def calls(self) -> float:
        return self.canary_calls + self.shadow_calls

    def value(self, metric: str) -> float | None:
        """The metric's value, or None when this interval gives it no data."""
        if metric == "error-rate":
            return self.errors / self.calls if self.calls else None
        if metric == "fallback-rate":
            return self.fallbacks / self.canary_calls if self.canary_calls else None
        if metric == "latency-p99-ms":
            return self.latency_p99_ms
        if metric == "agreement":
            return 1 - self.disagreed / self.compared if self.compared else None
        raise ValueError(f"unknown metric {metric!r}")


def measure(increase_: Samples, challenger: str, champion: str | None) -> Measurement:
    def get(*parts: str) -> float:
        return increase_.get(_key(*parts), 0.0)

    p99 = quantile(_buckets(increase_, "challenger_le", challenger), 0.99)
    champion_p99 = (
        quantile(_buckets(increase_, "answered_le", champion), 0.99) if champion else None
    )
    return Measurement(
        canary_calls=get("calls", "canary", challenger),
        shadow_calls=get("calls", "shadow", challenger),
        errors=get("errors", challenger),
        fallbacks=get("fallbacks", challenger),
        compared=get("compared", challenger),
        disagreed=get("disagreed", challenger),
        latency_p99_ms=None if p99 is None else p99 * 1000,
        champion_p99_ms=None if champion_p99 is None else champion_p99 * 1000,
    )
