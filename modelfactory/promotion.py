"""The promotion gate: may a new model version become the champion?

A pure decision on numbers measured on named rows. The candidate must beat its own simple
baseline on its holdout (otherwise the model learned nothing worth serving). Against a champion
it is judged on two pieces of evidence, each measured on rows neither version trained on:

- **fresh rows**: the new run's holdout less the rows the champion trained on. The candidate
  must beat the champion there by more than ``margin``; with fewer rows than the metric's
  ``min_rows`` (or no score, e.g. one class only) the gate refuses to judge.
- **the champion's holdout**: the rows and labels the champion was accepted on, less the rows
  either version trained on. The candidate may not be worse there by more than ``margin`` plus
  the comparison's noise: the larger of the metric's ``tolerance`` and twice the standard error
  of the difference measured on those rows. Labels that were corrupted in the new data cannot
  pass both. When the champion logged no holdout, or too few of its rows are left, the reason
  says that this evidence was not checked.

Every decision carries its reason, naming the rows and the numbers; the registry stores it, and
each number, beside the version. Why these rows and minimums: ADR 0014.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NOISE_Z = 2.0  # a loss on the champion's holdout within this many standard errors is noise


@dataclass(frozen=True)
class GateMetric:
    """The metric a use case is gated on, the fewest rows it is judged on, and how much worse on
    the champion's holdout is always taken for noise rather than a loss."""

    name: str
    higher_is_better: bool = True
    min_rows: int = 1
    tolerance: float = 0.0

    def gain(self, new: float, old: float) -> float:
        """How much better ``new`` is than ``old`` (positive = better), whatever the direction."""
        return new - old if self.higher_is_better else old - new


@dataclass(frozen=True)
class Comparison:
    """Candidate and champion scored on the same ``rows``: what remained of ``of_rows`` once the
    rows one of them trained on (``left_out``, saying whose) were left out. ``noise`` is the
    standard error of the candidate's score minus the champion's on these rows (0: unknown);
    ``note`` says why there is no score (no such data logged, a single class among the rows)."""

    rows: int
    of_rows: int
    candidate: float | None = None
    champion: float | None = None
    left_out: str = ""
    note: str = ""
    noise: float = 0.0

    @property
    def scored(self) -> bool:
        return _finite(self.candidate) and _finite(self.champion)

    def as_tags(self, prefix: str) -> dict[str, str]:
        tags = {f"{prefix}_rows": str(self.rows), f"{prefix}_of_rows": str(self.of_rows)}
        for name, value in (
            ("candidate", self.candidate),
            ("champion", self.champion),
            ("noise", self.noise or None),
        ):
            if _finite(value):
                tags[f"{prefix}_{name}"] = f"{value:.6g}"
        if self.note:
            tags[f"{prefix}_note"] = self.note
        return tags


@dataclass(frozen=True)
class GateEvidence:
    """What the gate weighs against a champion: ``fresh`` (the new run's holdout less the
    champion's training rows) and ``champion_holdout`` (the champion's holdout less the
    candidate's training rows)."""

    champion_version: str
    fresh: Comparison
    champion_holdout: Comparison


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    metric: str
    candidate: float
    champion: float | None = None  # the champion on the fresh rows
    baseline: float | None = None
    evidence: GateEvidence | None = None
    margin: float = 0.0

    def as_tags(self) -> dict[str, str]:
        tags = {
            "promotion.decision": "promoted" if self.promote else "rejected",
            "promotion.reason": self.reason,
            "promotion.metric": self.metric,
            "promotion.candidate": f"{self.candidate:.6g}",
            "promotion.margin": f"{self.margin:g}",
        }
        if _finite(self.champion):
            tags["promotion.champion"] = f"{self.champion:.6g}"
        if self.baseline is not None:
            tags["promotion.baseline"] = f"{self.baseline:.6g}"
        if self.evidence is not None:
            tags["promotion.champion_version"] = self.evidence.champion_version
            tags.update(self.evidence.fresh.as_tags("promotion.fresh"))
            tags.update(self.evidence.champion_holdout.as_tags("promotion.champion_holdout"))
        return tags


def promotion_gate(
    metric: GateMetric,
    candidate: float,
    *,
    baseline: float | None,
    evidence: GateEvidence | None,
    margin: float = 0.0,
    min_rows: int | None = None,
) -> PromotionDecision:
    """Decide on the candidate's holdout score against its baseline, and on ``evidence`` against
    the champion (None: there is no champion yet). ``min_rows`` overrides the metric's."""
    if margin < 0:
        raise ValueError(f"promotion margin must be >= 0, got {margin}")
    least = metric.min_rows if min_rows is None else min_rows
    if least < 1:
        raise ValueError(f"the gate's minimum rows must be >= 1, got {least}")
    fresh = evidence.fresh if evidence else None

    def decide(promote: bool, reason: str) -> PromotionDecision:
        champion = fresh.champion if fresh is not None and fresh.scored else None
        return PromotionDecision(
            promote, reason, metric.name, candidate, champion, baseline, evidence, margin
        )

    name = metric.name
    if baseline is not None and metric.gain(candidate, baseline) <= 0:
        return decide(False, f"{name} {candidate:.4f} does not beat the baseline's {baseline:.4f}")
    if evidence is None or fresh is None:
        return decide(True, f"no champion yet; {name} {candidate:.4f} beats the baseline")
    who = f"champion v{evidence.champion_version}"
    on_fresh = _fresh_rows(fresh)
    own = evidence.champion_holdout
    allowed = max(metric.tolerance, NOISE_Z * own.noise)
    checked = own.rows >= least and own.scored
    on_own = _own_holdout(own, who, name, least, checked, metric, margin + allowed)
    if checked:
        assert own.candidate is not None and own.champion is not None
        loss = -metric.gain(own.candidate, own.champion)
        if loss > margin + allowed:
            scored = (
                f" it scored {fresh.candidate:.4f} vs {fresh.champion:.4f}" if fresh.scored else ""
            )
            return decide(
                False,
                f"{name} {own.candidate:.4f} vs {who}'s {own.champion:.4f} on {who}'s holdout "
                f"({own.rows:,} rows neither version trained on, with the labels {who} was "
                f"accepted on): {loss:.4f} worse, beyond the margin {margin:g} + "
                f"{_noise(allowed, metric.tolerance, own.noise)}; on {on_fresh}{scored}",
            )
    if fresh.rows < least or not fresh.scored:
        why = fresh.note or f"fewer than the {least:,} needed"
        return decide(
            False,
            f"cannot judge against {who}: {on_fresh}, {why}; hold out rows {who} never trained "
            f"on (newer data), or lower the minimum (promotion_min_rows)",
        )
    assert fresh.candidate is not None and fresh.champion is not None
    gain = metric.gain(fresh.candidate, fresh.champion)
    error = f"; standard error {fresh.noise:.4f}" if fresh.noise else ""
    if gain > margin:
        return decide(
            True,
            f"{name} {fresh.candidate:.4f} beats {who}'s {fresh.champion:.4f} by {gain:.4f} "
            f"(margin {margin:g}{error}) on {on_fresh}; {on_own}",
        )
    return decide(
        False,
        f"{name} {fresh.candidate:.4f} vs {who}'s {fresh.champion:.4f} on {on_fresh}: gain "
        f"{gain:+.4f} does not exceed the margin {margin:g}{error}; {on_own}",
    )


def _fresh_rows(fresh: Comparison) -> str:
    left_out = f"; {fresh.of_rows - fresh.rows:,} {fresh.left_out}" if fresh.left_out else ""
    return (
        f"{fresh.rows:,} rows neither version trained on "
        f"(of {fresh.of_rows:,} holdout rows{left_out})"
    )


def _own_holdout(
    own: Comparison,
    who: str,
    name: str,
    least: int,
    checked: bool,
    metric: GateMetric,
    limit: float,
) -> str:
    if checked:
        assert own.candidate is not None and own.champion is not None
        loss = -metric.gain(own.candidate, own.champion)
        within = f", {loss:.4f} worse, within {limit:.4f}" if loss > 0 else ""
        return (
            f"on {who}'s holdout ({own.rows:,} of its {own.of_rows:,} rows neither version "
            f"trained on) {name} {own.candidate:.4f} vs {own.champion:.4f}{within}"
        )
    if own.note and not own.rows:
        return f"{who}'s holdout not checked: {own.note}"
    why = own.note or f"fewer than the {least:,} needed"
    return (
        f"{who}'s holdout not checked: {own.rows:,} of its {own.of_rows:,} rows are outside "
        f"both versions' training data, {why}"
    )


def _noise(allowed: float, tolerance: float, error: float) -> str:
    if error and NOISE_Z * error > tolerance:
        return f"{allowed:.4f} (twice the difference's standard error {error:.4f})"
    return f"{allowed:.4f} (the tolerance)"


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
