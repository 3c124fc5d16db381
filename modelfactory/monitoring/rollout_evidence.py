"""The evidence a rollout reads from the prediction log, for one model: replays of its logged
requests and the ground truth of its versions' answers, as the rollout controller's ``replayer``
and ``outcomes`` reader (:mod:`modelfactory.rollout.controller`).

The CLI's controller uses one in its own process; on a cluster the operator reads outcomes
through one and runs each replay as a Job (``python -m modelfactory.operator.replay_job``)
that uses one in the Job's pod.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from modelfactory.config import Settings
from modelfactory.monitoring.outcomes import rollout_outcomes
from modelfactory.monitoring.replay import replay
from modelfactory.registry import Registry
from modelfactory.rollout.actions import RunReplay, VersionOutcome
from modelfactory.rollout.replay import TAG, ReplayResult
from modelfactory.use_case import UseCase


class RolloutEvidence:
    def __init__(self, case: UseCase, tracking_uri: str, settings: Settings):
        self.case = case
        self.registry = Registry(tracking_uri)
        self.settings = settings

    def replay(self, model: str, asked: RunReplay) -> ReplayResult:
        """Run the replay ``asked`` for and record its result on the challenger's version."""
        result = replay(
            self.case,
            model,
            asked.champion,
            asked.version,
            asked.last_requests,
            dt.datetime.fromtimestamp(asked.since, dt.UTC),
            store_url=self.settings.prediction_store_url,
            tracking_uri=self.registry.tracking_uri,
            settings=self.settings,
        )
        self.registry.client.set_model_version_tag(model, asked.version, TAG, result.as_tag())
        return result

    def outcomes(
        self, model: str, versions: list[str], since: float
    ) -> Mapping[str, VersionOutcome]:
        return rollout_outcomes(
            self.case,
            model,
            versions,
            dt.datetime.fromtimestamp(since, dt.UTC),
            store_url=self.settings.prediction_store_url,
            registry=self.registry,
        )
