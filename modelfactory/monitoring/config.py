"""What a monitor checks and does: a DriftMonitor's spec, field for field (its camelCase
names as aliases), or the CLI's options.

Every duration is read with the one grammar of :mod:`modelfactory.durations` (``24h``, ``7d``,
``1h30m``), as the CRD's pattern reads it.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelfactory.durations import parse_duration
from modelfactory.monitoring.drift import DriftSettings
from modelfactory.monitoring.performance import PerformanceSettings
from modelfactory.monitoring.policy import DriftPolicy
from modelfactory.monitoring.retrain import RetrainSettings
from modelfactory.monitoring.window import Window


class WindowSettings(BaseModel):
    """The rows a check reads: the last ``since`` (a duration, e.g. 24h), or the newest
    ``last_rows``; of one ``version`` when given."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    since: str | None = "24h"
    last_rows: int | None = Field(default=None, ge=1, alias="lastRows")
    version: str | None = None


class MonitorConfig(BaseModel):
    """A monitor's settings: the model, its window, the least rows judged, how drift and
    performance are measured and when a retrain starts."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    model: str
    use_case: str | None = Field(default=None, alias="useCase")
    window: WindowSettings = WindowSettings()
    min_rows: int = Field(default=500, ge=1, alias="minRows")
    drift: DriftSettings = DriftSettings()
    performance: PerformanceSettings = PerformanceSettings()
    retrain: RetrainSettings = RetrainSettings()

    @model_validator(mode="after")
    def _durations(self) -> MonitorConfig:
        for name, text in (
            ("window.since", self.window.since),
            ("performance.since", self.performance.since),
            ("retrain.cooldown", self.retrain.cooldown),
            ("retrain.labelledSince", self.retrain.labelled_since),
        ):
            if text is None:
                continue
            try:
                span = parse_duration(text)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
            if name != "retrain.cooldown" and not span:
                raise ValueError(f"{name}: {text!r} is an empty window; e.g. 24h")
        return self

    def policy(self) -> DriftPolicy:
        return DriftPolicy(
            min_rows=self.min_rows,
            drifted_share=self.drift.drifted_share,
            decisive=self.drift.decisive,
            prediction_drift_decides=self.drift.prediction_drift_decides,
            consecutive_checks=self.drift.consecutive_checks,
            cooldown=parse_duration(self.retrain.cooldown),
            max_performance_drop=self.performance.max_drop,
            min_labelled_rows=self.performance.min_labelled_rows,
        )

    def window_at(self, now: dt.datetime) -> Window:
        settings = self.window
        if settings.last_rows:
            return Window(self.model, settings.version, last_rows=settings.last_rows)
        if settings.since is None:
            return Window(self.model, settings.version, until=now)
        return Window.recent(self.model, settings.since, now, settings.version)
