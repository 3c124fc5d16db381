"""The configuration of a forecasting model factory run, as one small dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

#: Regressor names the factory knows, and the Rossmann columns they come from.
REGRESSOR_COLUMNS = {
    "promo": "Promo",
    "state_holiday": "StateHoliday",  # any of a/b/c -> 1
    "school_holiday": "SchoolHoliday",
}


@dataclass(frozen=True)
class ForecastConfig:
    """Everything that decides how each store's Prophet model is trained and evaluated.

    regressors: which of ``promo``, ``state_holiday``, ``school_holiday`` may be used.
    regressor_policy: ``"auto"`` adds a regressor for a store only when it varies in that
        store's training data (a constant column cannot be estimated, and e.g. a state
        holiday never seen on an open day has nothing to teach); ``"always"`` adds every
        listed one (constant ones are still skipped, Prophet would fail on them);
        ``"never"`` fits seasonality and trend only.
    min_regressor_days: under ``"auto"``, the fewest training days on which a regressor
        must be "on" (and "off") to be used.
    seasonality_mode: "additive" (default) or "multiplicative" (why additive:
        docs/adr/0007-sharded-factory-and-batch-scoring.md).
    holdout_weeks: the last N weeks of every store are held out for evaluation.
    min_train_days: stores with fewer open training days are reported in the split
        warnings and skipped (counted as failures, with the reason).
    max_failure_share: if more than this share of stores fail to fit, the run raises
        naming them; below it, failures are reported and the other stores carry on.
    refit_full_history: after evaluation, refit each store on all its history (train +
        holdout) so the served model forecasts from the latest date. Doubles fit time.
    """

    yearly_seasonality: bool = True
    weekly_seasonality: bool = True
    interval_width: float = 0.95
    seasonality_mode: Literal["additive", "multiplicative"] = "additive"
    changepoint_prior_scale: float = 0.05
    regressors: tuple[str, ...] = ("promo", "state_holiday", "school_holiday")
    regressor_policy: Literal["auto", "always", "never"] = "auto"
    min_regressor_days: int = 5
    holdout_weeks: int = 6
    min_train_days: int = 180
    max_failure_share: float = 0.05
    refit_full_history: bool = True
    uncertainty_samples: int = 1000
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        unknown = [r for r in self.regressors if r not in REGRESSOR_COLUMNS]
        if unknown:
            raise ValueError(
                f"ForecastConfig.regressors: unknown {unknown}; "
                f"choose from {list(REGRESSOR_COLUMNS)}"
            )
        if not 0 < self.interval_width < 1:
            raise ValueError(
                f"ForecastConfig.interval_width must be in (0, 1), got {self.interval_width}"
            )
        if self.holdout_weeks < 1:
            raise ValueError(f"ForecastConfig.holdout_weeks must be >= 1, got {self.holdout_weeks}")
        if not 0 <= self.max_failure_share <= 1:
            raise ValueError(
                f"ForecastConfig.max_failure_share must be in [0, 1], got {self.max_failure_share}"
            )
        object.__setattr__(self, "regressors", tuple(self.regressors))

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["regressors"] = list(self.regressors)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ForecastConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"ForecastConfig: unknown field(s) {unknown}; known: {sorted(names)}")
        return cls(**data)
