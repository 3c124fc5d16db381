"""What a rollout remembers between decisions: a ModelDeployment's ``status`` (or the local
rollout's JSON file), as dataclasses written in the CRD's camelCase by
:mod:`modelfactory.status`.

A restarted operator resumes from it alone: the phase, the challenger, the step and when it
started, the replay, the analysis interval in progress (its start, the counters at its start
and their growth since the rollout began) and each metric's tally and bounds, and the last
rollouts' outcomes. Times are kept as seconds since the epoch (the
decision computes with them) and written as RFC 3339.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelfactory.rollout.measurements import PodSamples, Samples
from modelfactory.status import EpochTime, camel_case

HEALTHY, PROGRESSING, PAUSED, DEGRADED = "Healthy", "Progressing", "Paused", "Degraded"
HISTORY_KEPT = 10


@camel_case
@dataclass
class MetricStatus:
    """One analysis metric's last value and its tally of intervals."""

    value: float | None = None
    threshold: str = ""
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    dry_run: bool = False
    last: str = ""  # Successful | Failed | Inconclusive | NoData
    # A rate's anytime-valid bounds and the records behind them (since the rollout began).
    lower: float | None = None
    upper: float | None = None
    samples: float | None = None

    def summary(self) -> dict[str, Any]:
        """What the outcome of a rollout records of this metric."""
        kept = {
            "value": self.value,
            "threshold": self.threshold,
            "successful": self.successful,
            "failed": self.failed,
            "inconclusive": self.inconclusive,
        }
        if self.lower is not None:
            kept.update(lower=self.lower, upper=self.upper, samples=self.samples)
        return kept


@camel_case
@dataclass
class AnalysisStatus:
    """The analysis interval in progress: when it began, the pods' counters then, the counters'
    growth summed since the rollout began (the rates' evidence), the tallies."""

    interval_started_at: EpochTime | None = None
    baseline: PodSamples | None = None
    totals: Samples = field(default_factory=dict)
    intervals: int = 0
    successful_in_a_row: int = 0
    inconclusive_in_a_row: int = 0
    last_reason: str = ""
    metrics: dict[str, MetricStatus] = field(default_factory=dict)
    labelled: dict[str, int] = field(default_factory=dict)  # answers with ground truth, by version
    realized: dict[str, dict[str, float]] = field(default_factory=dict)  # their figures, by version


@camel_case
@dataclass
class ReplayStatus:
    """The replay of the champion's logged requests by the challenger, before live traffic."""

    version: str
    requested_at: EpochTime
    rows: int = 0
    verdict: str = ""  # Passed | Failed | Inconclusive ("" while it runs)
    reason: str = ""
    metrics: dict[str, MetricStatus] = field(default_factory=dict)


@camel_case
@dataclass
class FinishedRollout:
    """One entry of the history: a rollout that ended, how and why, with its metrics' tallies."""

    version: str
    outcome: str  # promoted | rolled-back | aborted | superseded
    reason: str
    started_at: EpochTime | None = None
    finished_at: EpochTime | None = None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    replay: dict[str, Any] | None = None  # the replay's verdict, rows and metrics


@camel_case
@dataclass
class Status:
    phase: str = HEALTHY
    message: str = ""
    champion: str | None = None
    challenger: str | None = None
    step: int = 0
    step_started_at: EpochTime | None = None
    weight: float = 0.0
    mode: str | None = None
    rollout_started_at: EpochTime | None = None
    awaiting_promotion: bool = False
    last_finished: str | None = None  # version of the last rollout that ended
    last_outcome: str | None = None
    analysis: AnalysisStatus = field(default_factory=AnalysisStatus)
    replay: ReplayStatus | None = None
    history: list[FinishedRollout] = field(default_factory=list)

    @property
    def in_flight(self) -> bool:
        return self.phase in (PROGRESSING, PAUSED) and self.challenger is not None
