"""Train/holdout split strategies, and the warnings a split deserves.

A strategy is a small object with ``split(frame) -> Split``; pipelines choose one
by name (:func:`split_strategy`), so a new strategy is one class and one entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd


@dataclass
class Split:
    train: pd.DataFrame
    holdout: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


class SplitStrategy(Protocol):
    @property
    def name(self) -> str: ...

    def split(self, frame: pd.DataFrame) -> Split: ...


@dataclass(frozen=True)
class RandomSplit:
    """Shuffle with a seed; stratified on the target when one is given, so both parts keep its
    balance."""

    holdout_fraction: float = 0.2
    seed: int = 42
    stratify_on: str | None = None
    name: str = "random"

    def split(self, frame: pd.DataFrame) -> Split:
        _check_fraction(self.holdout_fraction, len(frame))
        rng = np.random.default_rng(self.seed)
        if self.stratify_on is None:
            order = rng.permutation(len(frame))
            n_holdout = round(len(frame) * self.holdout_fraction)
            holdout_pos = order[:n_holdout]
        else:
            chosen: list[int] = []
            for _, positions in frame.groupby(self.stratify_on, sort=True).indices.items():
                shuffled = rng.permutation(positions)
                chosen.extend(shuffled[: round(len(positions) * self.holdout_fraction)])
            holdout_pos = np.sort(np.asarray(chosen, dtype=int))
        is_holdout = np.zeros(len(frame), dtype=bool)
        is_holdout[holdout_pos] = True
        return Split(frame[~is_holdout], frame[is_holdout])


@dataclass(frozen=True)
class SequentialSplit:
    """The last rows (in file order, e.g. time) are the holdout: what a model meets after
    deployment."""

    holdout_fraction: float = 0.2
    name: str = "sequential"

    def split(self, frame: pd.DataFrame) -> Split:
        _check_fraction(self.holdout_fraction, len(frame))
        cut = len(frame) - round(len(frame) * self.holdout_fraction)
        return Split(frame.iloc[:cut], frame.iloc[cut:])


def _check_fraction(fraction: float, n_rows: int) -> None:
    if not 0 < fraction < 1:
        raise ValueError(f"holdout fraction must be between 0 and 1, got {fraction}")
    if round(n_rows * fraction) < 1 or round(n_rows * fraction) >= n_rows:
        raise ValueError(f"a holdout fraction of {fraction} leaves an empty part of {n_rows} rows")


def split_strategy(
    name: str, holdout_fraction: float = 0.2, seed: int = 42, stratify_on: str | None = None
) -> SplitStrategy:
    """The strategy called ``name`` ('random' or 'sequential')."""
    if name == "random":
        return RandomSplit(holdout_fraction, seed, stratify_on)
    if name == "sequential":
        return SequentialSplit(holdout_fraction)
    raise ValueError(f"unknown split strategy {name!r}; choose 'random' or 'sequential'")


def class_balance_warnings(
    split: Split,
    positive: np.ndarray,
    holdout_positive: np.ndarray,
    min_positives: int = 30,
    min_share_ratio: float = 0.5,
) -> list[str]:
    """Warn when a part holds too few positives, or a share far below the other part's.

    ``positive`` and ``holdout_positive`` are 0/1 target vectors of the train and holdout parts.
    """
    warnings = []
    parts = {"train": positive, "holdout": holdout_positive}
    shares = {name: (float(v.mean()) if len(v) else 0.0) for name, v in parts.items()}
    overall = float(np.concatenate([positive, holdout_positive]).mean())
    for name, values in parts.items():
        count = int(values.sum())
        if count < min_positives:
            warnings.append(
                f"{name} part has only {count} positive rows (fewer than {min_positives}): "
                "its metrics will be unreliable"
            )
        elif overall > 0 and shares[name] < min_share_ratio * overall:
            warnings.append(
                f"{name} part has {shares[name]:.1%} positive rows against {overall:.1%} overall: "
                "the positive class is badly under-represented there"
            )
    return warnings
