"""What one look at a challenger gives each metric, and each metric's verdict on it: the one
judgement the live analysis and the replay share.

:class:`Evidence` holds rates as counts (``agreement``: records that agreed of those compared),
so they are judged by their anytime-valid bounds (:mod:`modelfactory.rollout.bounds`), and other
figures as values (the p99 latency, a realized ROC-AUC, a PromQL answer), judged as they are,
against an absolute threshold or a ratio to the champion's figure of the same look.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from modelfactory.rollout.bounds import Verdict, judge, rate_bounds
from modelfactory.rollout.spec import MetricSpec


@dataclass(frozen=True)
class Rate:
    count: float  # the records that erred, fell back, agreed or were right
    trials: float


@dataclass(frozen=True)
class Evidence:
    rates: Mapping[str, Rate] = field(default_factory=dict)
    values: Mapping[str, float | None] = field(default_factory=dict)  # the challenger's
    champion: Mapping[str, float | None] = field(default_factory=dict)  # the same, champion's
    # Why a metric has no data this time (realized-*: too few labels), by metric name.
    missing: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Judgement:
    value: float | None  # None: no data
    verdict: Verdict | None  # None: no data
    lower: float | None = None  # a rate's bounds
    upper: float | None = None
    trials: float | None = None
    note: str = ""  # why there is no data


def judge_metric(metric: MetricSpec, evidence: Evidence, alpha: float) -> Judgement:
    rate = evidence.rates.get(metric.name) if metric.is_rate else None
    if rate is not None:
        if rate.trials <= 0:
            return Judgement(None, None, note=evidence.missing.get(metric.name, "no records"))
        bounds = rate_bounds(rate.count, rate.trials, alpha, centre=metric.max or metric.min)
        verdict = judge(bounds, at_most=metric.max, at_least=metric.min)
        return Judgement(bounds.estimate, verdict, bounds.lower, bounds.upper, bounds.trials)
    value = evidence.values.get(metric.name)
    if value is None:
        return Judgement(None, None, note=evidence.missing.get(metric.name, ""))
    ratio_max, ratio_min = metric.max_ratio_to_champion, metric.min_ratio_to_champion
    if ratio_max is not None or ratio_min is not None:
        theirs = evidence.champion.get(metric.name)
        if not theirs:
            return Judgement(value, None, note="no champion figure to compare with")
        ratio = value / theirs
        passed = ratio <= ratio_max if ratio_max is not None else ratio >= (ratio_min or 0)
    elif metric.max is not None:
        passed = value <= metric.max
    else:
        assert metric.min is not None
        passed = value >= metric.min
    return Judgement(value, "pass" if passed else "fail")
