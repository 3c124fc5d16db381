"""One duration grammar: both CRDs' patterns, the ModelDeployment's parser and the DriftMonitor's
accept and refuse the same texts (a `7d` cooldown and a `1h30m` interval alike)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from modelfactory.durations import PATTERN, parse_duration
from modelfactory.monitoring.config import MonitorConfig
from modelfactory.rollout.spec import SpecError, parse_spec
from tests.charts.chartlib import of_kind, render

GOOD = {
    "90s": dt.timedelta(seconds=90),
    "30m": dt.timedelta(minutes=30),
    "1h30m": dt.timedelta(hours=1, minutes=30),
    "24h": dt.timedelta(hours=24),
    "7d": dt.timedelta(days=7),
    "2w": dt.timedelta(weeks=2),
    "1.5h": dt.timedelta(minutes=90),
    "1d12h": dt.timedelta(hours=36),
}
BAD = ["24", "h", "-1h", "1y", "7D", "1h 30m", " 7d", "", "1.h", "m30"]


@pytest.mark.parametrize(("text", "span"), GOOD.items())
def test_durations_people_write_are_read(text, span):
    assert parse_duration(text) == span


@pytest.mark.parametrize("text", BAD)
def test_a_text_outside_the_grammar_is_refused_naming_it(text):
    with pytest.raises(ValueError, match=f"{text!r} is not a duration"):
        parse_duration(text)


DURATION_FIELDS = {"interval", "duration", "since", "cooldown", "labelledSince"}


def crd_patterns() -> dict[str, set[str]]:
    """The `pattern` of every duration field in the two rendered CRDs, by CRD."""
    found: dict[str, set[str]] = {}

    def walk(node, crd):
        if isinstance(node, dict):
            for name, schema in (node.get("properties") or {}).items():
                if name in DURATION_FIELDS and schema.get("type") == "string":
                    found.setdefault(crd, set()).add(schema.get("pattern", "no pattern"))
            for value in node.values():
                walk(value, crd)
        elif isinstance(node, list):
            for value in node:
                walk(value, crd)

    for crd in of_kind(render(), "CustomResourceDefinition"):
        walk(crd["spec"], crd["spec"]["names"]["kind"])
    return found


def test_both_crds_carry_the_one_grammar():
    assert crd_patterns() == {"ModelDeployment": {PATTERN}, "DriftMonitor": {PATTERN}}


def model_deployment_accepts(text: str) -> bool:
    try:
        parse_spec({"model": "m", "analysis": {"interval": text}})
        parse_spec({"model": "m", "rollout": {"steps": [{"pause": {"duration": text}}]}})
    except SpecError:
        return False
    return True


def drift_monitor_accepts(text: str) -> bool:
    try:
        MonitorConfig.model_validate(
            {"model": "m", "window": {"since": text}, "retrain": {"cooldown": text}}
        )
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("text", [*GOOD, *BAD])
def test_crds_and_both_parsers_agree(text):
    crd = re.compile(PATTERN).search(text) is not None
    assert crd == model_deployment_accepts(text) == drift_monitor_accepts(text), text
