"""Time-based train/holdout split: the last N weeks of every store are held out.

The cut is per store (its own last date minus N weeks), so stores with gaps (e.g.
closed for refurbishment) still get a holdout at the end of their own history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class StoreSplit:
    train: pd.DataFrame
    holdout: pd.DataFrame
    cutoff: pd.Timestamp  # first holdout day


@dataclass
class SplitResult:
    """Per-store splits; ``warnings`` name stores with too little history (they are left out)."""

    stores: dict[int, StoreSplit]
    warnings: list[str] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)


def time_split(
    frames: dict[int, pd.DataFrame], holdout_weeks: int, min_train_days: int
) -> SplitResult:
    """Hold out each store's last ``holdout_weeks`` weeks.

    ``frames`` maps store id to a frame with a ``ds`` column (see
    :func:`modelfactory.forecasting.features.split_by_store`). A store with fewer than
    ``min_train_days`` training rows, or an empty holdout, is skipped with a warning
    saying how much history it has.
    """
    result = SplitResult(stores={})
    for store, frame in frames.items():
        if frame.empty:
            reason = "no open days with sales"
            result.skipped[store] = reason
            result.warnings.append(f"store {store}: {reason}; skipped")
            continue
        last = frame["ds"].max()
        cutoff = last - pd.Timedelta(weeks=holdout_weeks) + pd.Timedelta(days=1)
        in_train = frame["ds"] < cutoff
        train, holdout = frame[in_train], frame[~in_train]
        if len(train) < min_train_days or holdout.empty:
            reason = (
                f"too little history: {len(train)} open training days before "
                f"{cutoff:%Y-%m-%d} (need {min_train_days}) and {len(holdout)} holdout days"
            )
            result.skipped[store] = reason
            result.warnings.append(f"store {store}: {reason}; skipped")
            continue
        gap = (frame["ds"].diff().dt.days.fillna(1) > 60).any()
        if gap:
            result.warnings.append(
                f"store {store}: history has a gap of more than 60 days "
                f"(store closed?); its trend may be unreliable"
            )
        result.stores[store] = StoreSplit(
            train.reset_index(drop=True), holdout.reset_index(drop=True), cutoff
        )
    return result
