"""What the rollout decision takes and gives: an :class:`Observation` of the world in, the
actions to apply out (traffic tags, alias moves, the outcome recorded on the version, events).

The decision never applies anything itself; :mod:`modelfactory.rollout.controller` does, and a
test can read the actions as data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelfactory.rollout.measurements import PodSamples
from modelfactory.rollout.replay import ReplayResult
from modelfactory.rollout.state import RolloutState
from modelfactory.rollout.status import Status

# What a user may ask of a rollout (the modelfactory.io/action annotation, the CLI).
USER_ACTIONS = ("promote", "promote-full", "abort", "retry")


@dataclass(frozen=True)
class RegistryView:
    champion: str | None
    challenger: str | None
    traffic: RolloutState  # what the rollout.* tags say now


@dataclass(frozen=True)
class VersionOutcome:
    """Ground truth of the answers one version gave during the rollout."""

    labelled: int
    correct: int | None = None  # answered right (a classifier's), when the use case says
    realized: Mapping[str, float] = field(default_factory=dict)  # roc_auc, mape, ...


@dataclass(frozen=True)
class Observation:
    now: float  # seconds since the epoch
    registry: RegistryView | None  # None: unreachable
    registry_error: str | None = None
    metrics: PodSamples | None = None  # None: unreachable
    metrics_error: str | None = None
    action: str | None = None  # a user's promote, promote-full, abort or retry
    held_by: str | None = None  # another deployment drives this model's rollout
    # The analysis' PromQL metrics as Prometheus answered them now (None: no data), or why not.
    queried: Mapping[str, float | None] = field(default_factory=dict)
    query_error: str | None = None
    # Ground truth of each version's answers since the rollout began (None: not read now).
    outcomes: Mapping[str, VersionOutcome] | None = None
    outcomes_error: str | None = None
    replay: ReplayResult | None = None  # the challenger's replay, once one finished


@dataclass(frozen=True)
class RunReplay:
    """Replay the champion's most recent logged requests (``last_requests``, logged since
    ``since``, seconds since the epoch) with ``version``, off the serving path."""

    version: str
    champion: str | None
    last_requests: int
    since: float


@dataclass(frozen=True)
class SetTraffic:
    mode: str
    weight: float
    step: int
    budget_ms: float


@dataclass(frozen=True)
class ClearTraffic:
    pass


@dataclass(frozen=True)
class Promote:
    version: str  # becomes champion; the challenger alias and the traffic tags go


@dataclass(frozen=True)
class Rollback:
    version: str  # the challenger alias goes (if it still names this version), traffic tags too


@dataclass(frozen=True)
class SetChallenger:
    version: str


@dataclass(frozen=True)
class RecordOutcome:
    version: str
    outcome: str  # promoted | rolled-back | aborted
    reason: str
    metrics: dict[str, Any]


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


Action = (
    SetTraffic
    | ClearTraffic
    | Promote
    | Rollback
    | SetChallenger
    | RecordOutcome
    | RunReplay
    | Event
)


@dataclass(frozen=True)
class Decision:
    status: Status
    actions: list[Action]
