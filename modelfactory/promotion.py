"""The promotion gate: may a new model version become the champion?

A pure decision on numbers measured on one holdout: the candidate must beat
its own simple baseline (otherwise the model learned nothing worth serving),
and beat the current champion by more than ``margin``. Every decision carries
the reason, which the registry stores beside the version.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GateMetric:
    name: str
    higher_is_better: bool = True

    def gain(self, new: float, old: float) -> float:
        """How much better ``new`` is than ``old`` (positive = better), whatever the direction."""
        return new - old if self.higher_is_better else old - new


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    metric: str
    candidate: float
    champion: float | None = None
    baseline: float | None = None

    def as_tags(self) -> dict[str, str]:
        tags = {
            "promotion.decision": "promoted" if self.promote else "rejected",
            "promotion.reason": self.reason,
            "promotion.metric": self.metric,
            "promotion.candidate": f"{self.candidate:.6g}",
        }
        if self.champion is not None:
            tags["promotion.champion"] = f"{self.champion:.6g}"
        if self.baseline is not None:
            tags["promotion.baseline"] = f"{self.baseline:.6g}"
        return tags


def promotion_gate(
    metric: GateMetric,
    candidate: float,
    *,
    champion: float | None,
    baseline: float | None,
    margin: float = 0.0,
    champion_version: str | None = None,
) -> PromotionDecision:
    """Decide on one metric measured on the same holdout for candidate, champion and baseline."""
    if margin < 0:
        raise ValueError(f"promotion margin must be >= 0, got {margin}")
    decide = lambda promote, reason: PromotionDecision(  # noqa: E731
        promote, reason, metric.name, candidate, champion, baseline
    )
    if baseline is not None and metric.gain(candidate, baseline) <= 0:
        return decide(
            False, f"{metric.name} {candidate:.4f} does not beat the baseline's {baseline:.4f}"
        )
    if champion is None:
        return decide(True, f"no champion yet; {metric.name} {candidate:.4f} beats the baseline")
    gain = metric.gain(candidate, champion)
    who = f"champion v{champion_version}" if champion_version else "the champion"
    if gain > margin:
        return decide(
            True,
            f"{metric.name} {candidate:.4f} beats {who}'s {champion:.4f} "
            f"by {gain:.4f} (margin {margin:g})",
        )
    return decide(
        False,
        f"{metric.name} {candidate:.4f} vs {who}'s {champion:.4f}: "
        f"gain {gain:+.4f} does not exceed the margin {margin:g}",
    )
