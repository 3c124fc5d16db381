"""The ModelDeployment CRD's schema defaults against the operator's parser: the API server fills
every default into a stored object before the operator reads it, so a default the parser refuses
(or reads otherwise than its own) breaks every resource that leaves the field out."""

from __future__ import annotations

import copy

import pytest

from modelfactory.rollout.spec import parse_spec

from .chartlib import render

METRICS = [
    {"name": "error-rate", "max": 0.01},
    {"name": "fallback-rate", "max": 0.05},
    {"name": "latency-p99-ms", "max": 50},
    {"name": "agreement", "min": 0.9},
    {"name": "realized-roc-auc", "minRatioToChampion": 0.98, "minLabelled": 50},
    {"name": "realized-mape", "max": 0.2},
    {"name": "queue-depth", "max": 10, "query": "max(queue_depth)"},
]
STEPS = [
    {"setWeight": 25},
    {"shadow": {}},
    {"analysis": {}},
    {"pause": {"duration": "1h30m"}},
    {"pause": {}},
    {"replay": {"lastRequests": 1000}},
    {"awaitOutcomes": {}},
]
SPECS = {
    "bare": {"model": "bank-marketing"},
    "every metric": {
        "model": "bank-marketing",
        "analysis": {"metrics": METRICS, "prometheus": {"address": "http://prometheus:9090"}},
    },
    "every step": {"model": "bank-marketing", "rollout": {"steps": STEPS}},
}


def with_defaults(value, schema: dict):
    """``value`` with the structural schema's defaults filled in, as the API server does."""
    if isinstance(value, dict):
        out = dict(value)
        for name, sub in (schema.get("properties") or {}).items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = with_defaults(out[name], sub)
        return out
    if isinstance(value, list) and "items" in schema:
        return [with_defaults(item, schema["items"]) for item in value]
    return value


@pytest.fixture(scope="module")
def spec_schema(helm) -> dict:
    (crd,) = [
        o
        for o in render()
        if o["kind"] == "CustomResourceDefinition"
        and o["spec"]["names"]["kind"] == "ModelDeployment"
    ]
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    return version["schema"]["openAPIV3Schema"]["properties"]["spec"]


@pytest.mark.parametrize("name", SPECS)
def test_a_spec_with_the_crd_defaults_reads_as_without_them(spec_schema, name):
    spec = SPECS[name]
    stored = with_defaults(spec, spec_schema)
    assert stored != spec  # the schema has defaults here to fill in
    assert parse_spec(stored) == parse_spec(spec)
