"""A replay before live traffic: what the challenger did with the champion's most recent logged
requests, and the verdict of the analysis' metrics on it.

The replay itself runs off the serving path (:mod:`modelfactory.monitoring.replay`, in the
CLI's process or a Job the operator starts) and records a :class:`ReplayResult` on the
challenger's version (tag ``rollout.replay``); the decision reads it back and
:func:`judge_replay` turns it into a verdict with the same metrics and thresholds the live
analysis uses: ``error-rate`` (records refused or failed), ``agreement`` with the champion's
logged answers, ``latency-p99-ms`` (one record per call, beside the champion's on the same
records), ``realized-*`` on the records with ground truth (the champion's logged answers and
the challenger's, on the same records). ``fallback-rate`` and PromQL metrics have no data here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

from modelfactory.rollout.evidence import Evidence, Judgement, Rate, judge_metric
from modelfactory.rollout.spec import RolloutSpec, Step
from modelfactory.rollout.status import MetricStatus
from modelfactory.status import EpochTime, camel_case, from_status, to_status

TAG = "rollout.replay"  # on the challenger's version: the ReplayResult as JSON
ReplayVerdict = Literal["Passed", "Failed", "Inconclusive"]


@camel_case
@dataclass
class ReplayResult:
    version: str  # the challenger that replayed
    champion: str | None  # whose logged requests it replayed
    requested: int  # lastRequests
    rows: int  # logged records replayed
    refused: int = 0  # records it refused (bad input to it)
    errors: int = 0  # records it failed on
    compared: int = 0  # records both answered
    agreed: int = 0
    latency_p99_ms: float | None = None  # one record per call
    champion_latency_p99_ms: float | None = None
    labelled: int = 0  # records with ground truth
    correct: int | None = None  # of the labelled, answered right (a classifier's)
    realized: dict[str, float] = field(default_factory=dict)  # on the labelled records
    champion_realized: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    finished_at: EpochTime = 0.0
    problem: str | None = None  # the replay could not run, and why

    def as_tag(self) -> str:
        return json.dumps(to_status(self), separators=(",", ":"))

    @classmethod
    def from_tag(cls, text: str) -> ReplayResult:
        return from_status(cls, json.loads(text))


@dataclass(frozen=True)
class ReplayJudgement:
    verdict: ReplayVerdict
    reason: str
    metrics: dict[str, MetricStatus]


def evidence(result: ReplayResult, min_labelled: dict[str, int]) -> Evidence:
    """The replay's figures as each metric reads them; realized-* figures only from
    ``min_labelled`` labelled records on."""
    values: dict[str, float | None] = {"latency-p99-ms": result.latency_p99_ms}
    champion: dict[str, float | None] = {"latency-p99-ms": result.champion_latency_p99_ms}
    missing: dict[str, str] = {}
    for name, enough in min_labelled.items():
        figure = name.removeprefix("realized-").replace("-", "_")
        if result.labelled < enough:
            missing[name] = f"{result.labelled} labelled records < minLabelled {enough}"
            continue
        values[name] = _finite(result.realized.get(figure))
        champion[name] = _finite(result.champion_realized.get(figure))
    rates = {
        "error-rate": Rate(result.refused + result.errors, result.rows),
        "agreement": Rate(result.agreed, result.compared),
    }
    if result.correct is not None and "realized-accuracy" not in missing:
        rates["realized-accuracy"] = Rate(result.correct, result.labelled)
    return Evidence(rates=rates, values=values, champion=champion, missing=missing)


def judge_replay(spec: RolloutSpec, step: Step, result: ReplayResult) -> ReplayJudgement:
    analysis = spec.analysis
    if result.problem:
        return ReplayJudgement("Failed", f"replay failed: {result.problem}", {})
    if result.rows < step.min_rows:
        return ReplayJudgement(
            "Inconclusive",
            f"replay inconclusive: {result.rows} logged records of champion v{result.champion} "
            f"< minRows {step.min_rows}; promote to go on without it, abort to roll back",
            {},
        )
    seen = evidence(result, {m.name: m.min_labelled for m in analysis.metrics if m.realized})
    metrics: dict[str, MetricStatus] = {}
    failed: list[str] = []
    undecided: list[str] = []
    for metric in analysis.metrics:
        if metric.query:
            continue
        judged = judge_metric(metric, seen, analysis.alpha)
        status = metric_status(metric.threshold(), metric.name in analysis.dry_run, judged)
        metrics[metric.name] = status
        if status.dry_run or judged.verdict in (None, "pass"):
            continue
        (failed if judged.verdict == "fail" else undecided).append(describe(metric.name, status))
    figures = (
        f"{result.rows} records of champion v{result.champion} replayed in {result.seconds:.1f} s"
    )
    if failed:
        return ReplayJudgement("Failed", f"replay: {'; '.join(failed)} ({figures})", metrics)
    if undecided:
        return ReplayJudgement(
            "Inconclusive",
            f"replay inconclusive: {'; '.join(undecided)} ({figures}); promote to go on, abort "
            "to roll back",
            metrics,
        )
    return ReplayJudgement("Passed", f"replay passed: every metric passed ({figures})", metrics)


def metric_status(threshold: str, dry_run: bool, judged: Judgement) -> MetricStatus:
    """One look's judgement as a metric's status (its tallies start at this look)."""
    last = {None: "NoData", "pass": "Successful", "fail": "Failed"}.get(
        judged.verdict, "Inconclusive"
    )
    return MetricStatus(
        value=judged.value,
        threshold=threshold,
        successful=int(judged.verdict == "pass"),
        failed=int(judged.verdict == "fail"),
        inconclusive=int(judged.verdict == "inconclusive"),
        dry_run=dry_run,
        last=last,
        lower=judged.lower,
        upper=judged.upper,
        samples=judged.trials,
    )


def describe(name: str, status: MetricStatus) -> str:
    """``agreement 0.41 [0.37, 0.45] of 900 violates >= 0.9``, as reasons say it."""
    shown = f"{name} {_fmt(status.value)}"
    if status.lower is not None:
        shown += f" [{_fmt(status.lower)}, {_fmt(status.upper)}] of {status.samples:g}"
    verb = {"Failed": "violates", "Inconclusive": "cannot yet tell against"}.get(
        status.last, "meets"
    )
    return f"{shown} {verb} {status.threshold}"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _finite(value: float | None) -> float | None:
    return value if value is not None and value == value else None
