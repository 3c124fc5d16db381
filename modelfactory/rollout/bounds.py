"""Anytime-valid confidence bounds for a rate (errors per request, agreement, correct answers),
so a rollout may look at its counters after every interval without inflating false rollbacks.

:func:`rate_bounds` is the beta-binomial mixture confidence sequence (Robbins 1970; Howard,
Ramdas, McAuliffe and Sekhon 2021, "Time-uniform, nonparametric, nonasymptotic confidence
sequences", Annals of Statistics 49(2), section 3): with ``k`` successes in ``n`` Bernoulli
trials and a Beta(a, b) mixing prior, the likelihood ratio

    M_n(p) = B(a + k, b + n - k) / B(a, b) / (p^k (1 - p)^(n - k))

is a nonnegative martingale under the true rate p for any prior fixed in advance (here centred
on the metric's threshold), so by Ville's inequality the probability
that it ever reaches 1/alpha, at any n, is at most alpha. The set {p : M_n(p) < 1/alpha} is
therefore a confidence interval that holds at every n at once: the analysis may close an
interval, look, and go on, as often as it likes. The interval holds the estimate k/n (M is
convex in p and at most 1 there), and its ends are found by bisection. Why this bound, its
prior and the split of alpha across metrics: docs/adr/0015-rollouts-judged-on-evidence.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

JEFFREYS = (0.5, 0.5)  # the mixing prior when no threshold says where to look
CONCENTRATION = 10.0  # of the prior centred on a threshold: Beta(10 t, 10 (1 - t))
Verdict = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Bounds:
    estimate: float
    lower: float
    upper: float
    trials: float


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def rate_bounds(
    successes: float, trials: float, alpha: float, centre: float | None = None
) -> Bounds:
    """The (1 - alpha) anytime-valid interval of a rate after ``successes`` in ``trials``.

    ``centre`` (the metric's threshold, fixed before any record is seen) centres the mixing
    prior there, which narrows the interval where the decision is made; without it, Jeffreys'
    prior. Any prior fixed in advance keeps the guarantee."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if trials <= 0:
        return Bounds(math.nan, 0.0, 1.0, 0.0)
    k = min(max(successes, 0.0), trials)
    f = trials - k
    a, b = (
        (CONCENTRATION * centre, CONCENTRATION * (1 - centre))
        if centre is not None and 0 < centre < 1
        else JEFFREYS
    )
    mixture = _log_beta(a + k, b + f) - _log_beta(a, b)
    threshold = math.log(1 / alpha)

    def outside(p: float) -> bool:  # log M(p) >= log(1/alpha)
        if p <= 0.0:
            return k > 0
        if p >= 1.0:
            return f > 0
        return mixture - k * math.log(p) - f * math.log1p(-p) >= threshold

    estimate = k / trials

    def edge(inside: float, beyond: float) -> float:
        if not outside(beyond):
            return beyond
        for _ in range(60):
            middle = (inside + beyond) / 2
            if outside(middle):
                beyond = middle
            else:
                inside = middle
        return inside

    return Bounds(estimate, edge(estimate, 0.0), edge(estimate, 1.0), trials)


def judge(bounds: Bounds, at_most: float | None = None, at_least: float | None = None) -> Verdict:
    """``fail`` when the interval lies wholly on the wrong side of the threshold, ``pass`` when
    wholly on the right side, ``inconclusive`` while it holds the threshold."""
    if at_most is not None:
        if bounds.lower > at_most:
            return "fail"
        return "pass" if bounds.upper <= at_most else "inconclusive"
    assert at_least is not None
    if bounds.upper < at_least:
        return "fail"
    return "pass" if bounds.lower >= at_least else "inconclusive"
