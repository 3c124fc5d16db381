"""Reading a serving process's Prometheus ``/metrics`` (its own port) as a flat mapping."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def scrape(metrics_url: str) -> dict[tuple, float]:
    """{(sample name, label values...): value} from ``metrics_url``/metrics."""
    text = httpx.get(f"{metrics_url}/metrics", timeout=5).text
    return {
        (sample.name, *sample.labels.values()): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
