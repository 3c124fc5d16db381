"""The rollout a ModelDeployment asks for: its steps and how each interval of traffic is judged.

Parsed from the resource's ``spec.rollout`` and ``spec.analysis`` (the CRD documents and
defaults the same fields; this module fills the same defaults so the local controller, which has
no API server, reads a spec the same way). A field that makes no sense is refused naming it.

Steps (each a mapping with one key, as Argo Rollouts writes them):

- ``setWeight: N``: the challenger answers N percent of requests (canary);
- ``shadow: {weight: N}``: the challenger predicts N percent of requests beside the champion,
  its answers recorded, never returned;
- ``analysis: {intervals: K}``: wait for K successful analysis intervals in a row;
- ``pause: {duration: 2m}``: wait that long; ``pause: {}``: wait for ``promote``;
- ``replay: {lastRequests: N, since: 24h, minRows: M}``: before any live traffic, the challenger
  predicts the champion's N most recent logged requests offline and is judged on them
  (refusals and errors, agreement with the champion's logged answers, its own latency per row,
  and its realized metrics against the champion's on the rows with ground truth);
- ``awaitOutcomes: {minLabelled: N, timeout: 6h}``: hold the weight until N of the challenger's
  answers have ground truth (none by the timeout: the rollout pauses and says why).

Analysis runs for as long as the challenger gets traffic; every interval is judged on the
counters serving keeps per challenger version (error rate, fallback rate, its own p99 latency,
agreement with the champion on the same inputs) summed since the rollout began, and on
``realized-*`` metrics from the ground truth of the requests each version answered. Rates are
judged by anytime-valid bounds (:mod:`modelfactory.rollout.bounds`): a metric fails only when
its bound excludes the threshold, passes only when it excludes failure. Fewer challenger
requests than ``minRequests`` in an interval make it inconclusive, never a pass.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelfactory import durations
from modelfactory.errors import ModelFactoryError
from modelfactory.rollout.state import DEFAULT_BUDGET_MS


class SpecError(ModelFactoryError):
    """A rollout or analysis field that cannot be honoured; names the field."""


METRICS = ("error-rate", "fallback-rate", "latency-p99-ms", "agreement")
# Metrics of ground truth: realized-accuracy (a rate) and realized-<any figure the use case's
# monitoring realizes>, e.g. realized-roc-auc or realized-mape.
REALIZED = "realized-"
# Rates, judged by anytime-valid bounds (the others by their value).
RATES = ("error-rate", "fallback-rate", "agreement", "realized-accuracy")


def parse_duration(text: str | int | float, where: str) -> float:
    """A duration (``90s``, ``2m``, ``1h30m``, ``7d``: :mod:`modelfactory.durations`) or a number of
    seconds, as seconds."""
    try:
        return durations.seconds(text)
    except ValueError as exc:
        raise SpecError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class Step:
    kind: str  # setWeight | shadow | analysis | pause | replay | awaitOutcomes
    weight: float = 0.0  # setWeight, shadow
    intervals: int = 1  # analysis
    duration: float | None = None  # pause: seconds, None = until promoted; awaitOutcomes: timeout
    last_requests: int = 10_000  # replay
    since: float = 86_400.0  # replay: seconds back from now
    min_rows: int = 200  # replay: fewer logged requests make it inconclusive
    min_labelled: int = 100  # awaitOutcomes

    def describe(self) -> str:
        if self.kind == "setWeight":
            return f"canary {self.weight:g}%"
        if self.kind == "shadow":
            return f"shadow {self.weight:g}%"
        if self.kind == "analysis":
            return f"analysis ({self.intervals} interval{'s' if self.intervals != 1 else ''})"
        if self.kind == "replay":
            return f"replay of the last {self.last_requests} requests"
        if self.kind == "awaitOutcomes":
            return f"await {self.min_labelled} labelled answers"
        if self.duration is None:
            return "pause until promoted"
        return f"pause {self.duration:g}s"


@dataclass(frozen=True)
class MetricSpec:
    name: str
    max: float | None = None
    min: float | None = None
    max_ratio_to_champion: float | None = None  # latency-p99-ms and realized-*
    min_ratio_to_champion: float | None = None  # realized-* (higher is better)
    # PromQL evaluated on the analysis' Prometheus when the interval closes, instead of the
    # serving pods' own counters; {{model}}, {{challenger}}, {{champion}}, {{interval}} filled in.
    query: str | None = None
    min_labelled: int = 100  # realized-*: labelled answers of each version before it is judged

    def threshold(self) -> str:
        if self.max_ratio_to_champion is not None:
            return f"<= {self.max_ratio_to_champion:g}x champion"
        if self.min_ratio_to_champion is not None:
            return f">= {self.min_ratio_to_champion:g}x champion"
        if self.max is not None:
            return f"<= {self.max:g}"
        return f">= {self.min:g}"

    @property
    def realized(self) -> str | None:
        """The realized figure this metric reads (``roc_auc`` of realized-roc-auc), if any."""
        if self.query is None and self.name.startswith(REALIZED):
            return self.name.removeprefix(REALIZED).replace("-", "_")
        return None

    @property
    def is_rate(self) -> bool:
        return self.query is None and self.name in RATES


DEFAULT_STEPS = (
    Step("shadow", weight=10),
    Step("analysis"),
    Step("setWeight", weight=10),
    Step("analysis"),
    Step("setWeight", weight=50),
    Step("analysis"),
    Step("setWeight", weight=100),
    Step("analysis"),
)
DEFAULT_METRICS = (
    MetricSpec("error-rate", max=0.01),
    MetricSpec("fallback-rate", max=0.02),
    MetricSpec("latency-p99-ms", max=50),
    MetricSpec("agreement", min=0.9),
)


@dataclass(frozen=True)
class AnalysisSpec:
    interval: float = 60.0
    min_requests: int = 200
    confidence: float = 0.95  # of the rates' bounds, shared by them: each gets alpha / count
    failure_limit: int = 0
    inconclusive_limit: int = 3
    metrics: tuple[MetricSpec, ...] = DEFAULT_METRICS
    dry_run: frozenset[str] = frozenset()
    prometheus: str | None = None  # the address query metrics are evaluated on

    @property
    def queries(self) -> dict[str, str]:
        """The metrics read from Prometheus: name -> PromQL template."""
        return {m.name: m.query for m in self.metrics if m.query}

    @property
    def alpha(self) -> float:
        """Each enforced rate's share of 1 - confidence (Bonferroni), so the chance that any of
        them fails a challenger as good as its thresholds stays within 1 - confidence."""
        rates = [m for m in self.metrics if m.is_rate and m.name not in self.dry_run]
        return (1 - self.confidence) / max(len(rates), 1)

    @property
    def needs_outcomes(self) -> bool:
        return any(m.realized for m in self.metrics)


@dataclass(frozen=True)
class RolloutSpec:
    model: str
    trigger: str = "auto"  # auto: a new challenger starts a rollout; manual: promote starts it
    steps: tuple[Step, ...] = DEFAULT_STEPS
    budget_ms: float = DEFAULT_BUDGET_MS
    progress_deadline: float = 1800.0
    analysis: AnalysisSpec = field(default_factory=AnalysisSpec)


def _number(value: Any, where: str, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"{where}: expected a number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"{low:g} to {high:g}" if high is not None else f"at least {low:g}"
        raise SpecError(f"{where}: {value:g} is outside {bounds}")
    return float(value)


STEPS = ("setWeight", "shadow", "analysis", "pause", "replay", "awaitOutcomes")


def parse_step(raw: Any, where: str) -> Step:
    """One step as a ModelDeployment writes it (``{"setWeight": 10}``)."""
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise SpecError(f"{where}: a step is one of {', '.join(STEPS)} (got {raw!r})")
    ((kind, value),) = raw.items()
    if kind == "setWeight":
        return Step(kind, weight=_number(value, f"{where}.setWeight", 0, 100))
    if kind == "shadow":
        body = value or {}
        return Step(kind, weight=_number(body.get("weight", 100), f"{where}.shadow.weight", 0, 100))
    if kind == "analysis":
        intervals = (value or {}).get("intervals", 1)
        return Step(kind, intervals=int(_number(intervals, f"{where}.analysis.intervals", 1)))
    if kind == "pause":
        duration = (value or {}).get("duration")
        seconds = None if duration is None else parse_duration(duration, f"{where}.pause.duration")
        return Step(kind, duration=seconds)
    body = value or {}

    def count(key: str, default: int) -> int:
        return int(_number(body.get(key, default), f"{where}.{kind}.{key}", 1))

    if kind == "replay":
        return Step(
            kind,
            last_requests=count("lastRequests", 10_000),
            since=_positive(body.get("since", "24h"), f"{where}.replay.since"),
            min_rows=count("minRows", 200),
        )
    if kind == "awaitOutcomes":
        return Step(
            kind,
            min_labelled=count("minLabelled", 100),
            duration=_positive(body.get("timeout", "6h"), f"{where}.awaitOutcomes.timeout"),
        )
    raise SpecError(f"{where}: unknown step {kind!r}; use one of {', '.join(STEPS)}")


def _positive(value: Any, where: str) -> float:
    seconds = parse_duration(value, where)
    if seconds <= 0:
        raise SpecError(f"{where}: {value!r} is no time at all")
    return seconds


_METRIC_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


_HIGHER_IS_BETTER = ("agreement", "realized-accuracy")
_BOUNDS = ("max", "min", "maxRatioToChampion", "minRatioToChampion")


def _metric(raw: Any, where: str) -> MetricSpec:
    if not isinstance(raw, Mapping) or not _METRIC_NAME.match(str(raw.get("name", ""))):
        raise SpecError(f"{where}.name: a metric name such as {METRICS[0]} (got {raw!r})")
    name = raw["name"]
    query = raw.get("query")
    if query is not None and (not isinstance(query, str) or not query.strip()):
        raise SpecError(f"{where}.query: a PromQL expression")
    realized = query is None and name.startswith(REALIZED) and len(name) > len(REALIZED)
    if name not in METRICS and not realized and query is None:
        raise SpecError(
            f"{where}: {name} is not built in ({', '.join(METRICS)}, realized-<figure>); give "
            "it a query (PromQL on spec.analysis.prometheus.address)"
        )
    bounds = {
        key: _number(raw[key], f"{where}.{key}", 0) for key in _BOUNDS if raw.get(key) is not None
    }
    if len(bounds) != 1:
        raise SpecError(f"{where}: give exactly one of {', '.join(_BOUNDS)} for {name}")
    (bound,) = bounds
    if bound.endswith("ToChampion") and not (
        realized or (name == "latency-p99-ms" and query is None and bound == "maxRatioToChampion")
    ):
        raise SpecError(
            f"{where}.{bound}: only latency-p99-ms (maxRatioToChampion) and realized-* metrics "
            "compare to the champion"
        )
    if query is None and name in _HIGHER_IS_BETTER and bound != "min":
        raise SpecError(f"{where}: {name} takes a min (the share that is right)")
    if query is None and name in METRICS and name not in _HIGHER_IS_BETTER and bound == "min":
        raise SpecError(f"{where}: {name} takes a max")
    if raw.get("minLabelled") is not None and not realized:
        raise SpecError(f"{where}.minLabelled: only realized-* metrics wait for labels")
    return MetricSpec(
        name,
        max=bounds.get("max"),
        min=bounds.get("min"),
        max_ratio_to_champion=bounds.get("maxRatioToChampion"),
        min_ratio_to_champion=bounds.get("minRatioToChampion"),
        query=query,
        min_labelled=int(_number(raw.get("minLabelled", 100), f"{where}.minLabelled", 1)),
    )


def _interval(value: Any) -> float:
    return _positive(value, "spec.analysis.interval")


def parse_spec(spec: Mapping[str, Any]) -> RolloutSpec:
    """A ModelDeployment's ``spec`` (model, rollout, analysis) as a RolloutSpec, defaults filled."""
    model = spec.get("model")
    if not isinstance(model, str) or not model:
        raise SpecError("spec.model: the registered model to roll out is required")
    rollout = spec.get("rollout") or {}
    trigger = rollout.get("trigger", "auto")
    if trigger not in ("auto", "manual"):
        raise SpecError(f"spec.rollout.trigger: auto or manual, got {trigger!r}")
    raw_steps = rollout.get("steps")
    steps = (
        DEFAULT_STEPS
        if raw_steps is None
        else tuple(parse_step(s, f"spec.rollout.steps[{i}]") for i, s in enumerate(raw_steps))
    )
    if not steps:
        raise SpecError("spec.rollout.steps: at least one step (or leave it out for the default)")
    analysis = spec.get("analysis") or {}
    metrics = (
        DEFAULT_METRICS
        if analysis.get("metrics") is None
        else tuple(
            _metric(m, f"spec.analysis.metrics[{i}]") for i, m in enumerate(analysis["metrics"])
        )
    )
    names = [m.name for m in metrics]
    if len(set(names)) != len(names):
        raise SpecError("spec.analysis.metrics: each metric once")
    dry_run = frozenset(analysis.get("dryRun") or ())
    unknown = dry_run - set(names)
    if unknown:
        raise SpecError(f"spec.analysis.dryRun: {sorted(unknown)} are not among the metrics")
    prometheus = (analysis.get("prometheus") or {}).get("address")
    if prometheus is not None and not str(prometheus).startswith(("http://", "https://")):
        raise SpecError(f"spec.analysis.prometheus.address: an http(s) URL (got {prometheus!r})")
    if prometheus is None and any(m.query for m in metrics):
        raise SpecError(
            "spec.analysis.prometheus.address: the metrics with a query need the Prometheus to ask"
        )
    return RolloutSpec(
        model=model,
        trigger=trigger,
        steps=steps,
        budget_ms=_number(
            rollout.get("budgetMs", DEFAULT_BUDGET_MS), "spec.rollout.budgetMs", 0.001
        ),
        progress_deadline=parse_duration(
            rollout.get("progressDeadlineSeconds", 1800), "spec.rollout.progressDeadlineSeconds"
        ),
        analysis=AnalysisSpec(
            interval=_interval(analysis.get("interval", "1m")),
            min_requests=int(
                _number(analysis.get("minRequests", 200), "spec.analysis.minRequests", 1)
            ),
            failure_limit=int(
                _number(analysis.get("failureLimit", 0), "spec.analysis.failureLimit", 0)
            ),
            inconclusive_limit=int(
                _number(analysis.get("inconclusiveLimit", 3), "spec.analysis.inconclusiveLimit", 0)
            ),
            confidence=_number(
                analysis.get("confidence", 0.95), "spec.analysis.confidence", 0.5, 0.9999
            ),
            metrics=metrics,
            dry_run=dry_run,
            prometheus=prometheus,
        ),
    )
