"""Label distributions: has the target moved far from what the champion trained on?

``validate-data`` compares a run's labels with the champion's training data before anything is
trained. A classifier's class shares (:class:`ClassShares`): a positive rate moving from 11% to
89% is a file whose labels were flipped, or another question than the one the champion answers.
A forecaster's sales level per store (:class:`GroupLevels`): a unit changed, a column swapped.
A shift beyond the limit is a problem naming the column and both figures; the step stops the run
on it unless the run says the shift is expected. The limits and why: ADR 0014.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class LabelComparison:
    """One line saying how the labels compare (``summary``), and the shifts beyond the limit."""

    summary: str
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClassShares:
    """A categorical target: no class's share may move by more than ``max_change`` (absolute, as
    a fraction). With ``positive``, the figures are named as that class's rate."""

    column: str
    positive: str | None = None
    max_change: float = 0.25

    def compare(
        self, current: pd.DataFrame, reference: pd.DataFrame, against: str
    ) -> LabelComparison:
        now, then = self._shares(current, "the new data"), self._shares(reference, against)
        classes = sorted(set(now.index) | set(then.index))
        now, then = now.reindex(classes, fill_value=0.0), then.reindex(classes, fill_value=0.0)
        moved = (now - then).abs()
        shown = self.positive if self.positive in classes else None
        shown = shown or str(moved.idxmax())
        figure = self._figure(shown, now[shown], then[shown], against)
        if moved.max() <= self.max_change:
            return LabelComparison(f"{self.column}: {figure}")
        worst = shown if moved[shown] >= moved.max() - 1e-12 else str(moved.idxmax())
        problem = (
            f"target column '{self.column}': "
            f"{self._figure(worst, now[worst], then[worst], against)}, "
            f"{moved[worst] * 100:.1f} points apart (more than {self.max_change * 100:g} allowed)"
        )
        return LabelComparison(f"{self.column}: {figure}", (problem,))

    def _shares(self, frame: pd.DataFrame, table: str) -> pd.Series:
        if self.column not in frame.columns:
            raise ValueError(f"{table} has no target column '{self.column}' to compare")
        values = frame[self.column].dropna().astype(str)
        if values.empty:
            raise ValueError(f"{table} has no values in its target column '{self.column}'")
        return values.value_counts(normalize=True)

    def _figure(self, label: str, now: float, then: float, against: str) -> str:
        what = f"positive rate ('{label}')" if label == self.positive else f"share of '{label}'"
        return f"{what} {now:.1%} against {then:.1%} in {against}"


@dataclass(frozen=True)
class GroupLevels:
    """A numeric target per group (a store's sales): the mean of its positive values (sales on
    the days a store sold anything) may not move by more than a factor of ``max_ratio`` either
    way. Groups with fewer than ``min_rows`` such values on either side are not compared.
    ``reference_column`` names the target in the champion's training data."""

    column: str
    by: str
    reference_column: str
    max_ratio: float = 3.0
    min_rows: int = 28

    def compare(
        self, current: pd.DataFrame, reference: pd.DataFrame, against: str
    ) -> LabelComparison:
        now = self._levels(current, self.column, "the new data")
        then = self._levels(reference, self.reference_column, against)
        both = now.index.intersection(then.index)
        what = f"{self.column}: mean per {self.by} (positive values)"
        if both.empty:
            return LabelComparison(
                f"{what}: no {self.by} with {self.min_rows}+ values in both the new data and "
                f"{against}; not compared"
            )
        ratio = (now[both] / then[both]).sort_values()
        largest = ratio.index[int(np.argmax(np.abs(np.log(ratio.to_numpy()))))]
        summary = (
            f"{what}: {len(both):,} compared with {against}, the largest move {self.by} "
            f"{largest} {now[largest]:,.0f} against {then[largest]:,.0f} (x{ratio[largest]:.2f})"
        )
        moved = ratio[(ratio > self.max_ratio) | (ratio < 1 / self.max_ratio)]
        if moved.empty:
            return LabelComparison(summary)
        shown = ", ".join(
            f"{self.by} {group} {now[group]:,.0f} against {then[group]:,.0f} (x{ratio[group]:.2f})"
            for group in moved.index[:5]
        )
        more = f" (and {len(moved) - 5} more)" if len(moved) > 5 else ""
        problem = (
            f"column '{self.column}': the mean per {self.by} moved by more than a factor of "
            f"{self.max_ratio:g} from {against} for {len(moved):,} of {len(both):,}: "
            f"{shown}{more}"
        )
        return LabelComparison(summary, (problem,))

    def _levels(self, frame: pd.DataFrame, column: str, table: str) -> pd.Series:
        for name in (column, self.by):
            if name not in frame.columns:
                raise ValueError(f"{table} has no column '{name}' to compare sales levels with")
        values = pd.to_numeric(frame[column], errors="coerce")
        rows = frame.loc[values > 0, [self.by]].assign(value=values[values > 0])
        grouped = rows.groupby(self.by)["value"]
        counts, means = grouped.size(), grouped.mean()
        return means[counts >= self.min_rows]
