"""A model's rollout as the registry records it: who takes part, how, and the tags that say so.

The registry is the source of truth. Aliases ``champion`` and ``challenger`` say
which versions take part; registered-model tags say how:

- ``rollout.mode``: ``canary`` (the challenger answers ``rollout.weight`` percent of
  requests) or ``shadow`` (the challenger also predicts ``rollout.weight`` percent
  of requests; its answers are recorded, never returned);
- ``rollout.weight``: percent, 0-100; ``rollout.step``: the operator's step index;
- ``rollout.budget_ms``: the challenger's latency budget; past it the champion answers;
- ``rollout.version``: the challenger version the other tags were written for. Tags of another
  version mean champion only: a new challenger (a version just registered, or one waiting for
  its rollout) never inherits the traffic of a rollout that was left behind.

The operator (cluster) or ``modelfactory rollout`` (by hand) writes them with
:func:`set_rollout` / :func:`clear_rollout`; every serving process reads them
(:func:`read_rollout`, polled by :class:`~modelfactory.inference.router.ModelRouter`)
and keeps the last known state when the registry does not answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from modelfactory.errors import ModelFactoryError
from modelfactory.registry import CHALLENGER, CHAMPION, Registry

TAG_MODE, TAG_WEIGHT, TAG_STEP, TAG_BUDGET, TAG_VERSION = (
    "rollout.mode",
    "rollout.weight",
    "rollout.step",
    "rollout.budget_ms",
    "rollout.version",
)
ROLLOUT_TAGS = (TAG_MODE, TAG_WEIGHT, TAG_STEP, TAG_BUDGET, TAG_VERSION)
MODES = ("canary", "shadow")
DEFAULT_BUDGET_MS = 50.0


class RolloutError(ModelFactoryError):
    """A rollout request that cannot be honoured (bad mode or weight, no challenger)."""


@dataclass(frozen=True)
class RolloutState:
    champion: str | None = None
    challenger: str | None = None
    mode: str | None = None  # canary | shadow | None (champion only)
    weight: float = 0.0
    step: int = 0
    budget_ms: float = DEFAULT_BUDGET_MS
    problem: str | None = None  # why tags were ignored, if they were

    @property
    def active(self) -> bool:
        return (
            self.mode in MODES
            and self.weight > 0
            and self.challenger is not None
            and self.challenger != self.champion
        )

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(v for v in (self.champion, self.challenger if self.active else None) if v)

    @classmethod
    def from_registry(cls, aliases: Mapping[str, str], tags: Mapping[str, str]) -> RolloutState:
        """The state the aliases and tags describe; malformed tags mean champion only, with the
        reason."""
        champion = aliases.get(CHAMPION)
        challenger = aliases.get(CHALLENGER)
        base = cls(
            champion=str(champion) if champion else None,
            challenger=str(challenger) if challenger else None,
        )
        mode = tags.get(TAG_MODE)
        if not mode or mode == "off":
            return base
        try:
            state = replace(
                base,
                mode=mode,
                weight=float(tags.get(TAG_WEIGHT, 0)),
                step=int(tags.get(TAG_STEP, 0)),
                budget_ms=float(tags.get(TAG_BUDGET, DEFAULT_BUDGET_MS)),
            )
        except ValueError as exc:
            return replace(
                base, problem=f"unreadable rollout tags ({exc}); serving the champion only"
            )
        problem = validate(state.mode, state.weight, state.budget_ms)
        written_for = tags.get(TAG_VERSION)
        if not problem and written_for != base.challenger:
            problem = (
                f"the rollout tags were written for v{written_for}, the challenger is "
                f"v{base.challenger}; serving the champion only until a rollout moves it"
            )
        return replace(base, problem=problem) if problem else state

    def describe(self) -> str:
        if not self.active:
            return f"champion v{self.champion} only" + (
                f" ({self.problem})" if self.problem else ""
            )
        return (
            f"{self.mode} v{self.challenger} at {self.weight:g}% (step {self.step}, budget "
            f"{self.budget_ms:g} ms) beside champion v{self.champion}"
        )


def validate(mode: str | None, weight: float, budget_ms: float = DEFAULT_BUDGET_MS) -> str | None:
    if mode not in MODES:
        return f"rollout mode {mode!r} unknown; use one of {', '.join(MODES)}"
    if not 0 <= weight <= 100:
        return f"rollout weight {weight:g} outside 0-100 (percent)"
    if not budget_ms > 0:
        return f"latency budget {budget_ms:g} ms must be positive"
    return None


def read_rollout(registry: Registry, name: str) -> RolloutState:
    """The rollout state of registered model ``name`` (``registry``: a modelfactory Registry)."""
    model = registry.client.get_registered_model(name)
    return RolloutState.from_registry(dict(model.aliases or {}), dict(model.tags or {}))


def set_rollout(
    registry: Registry,
    name: str,
    mode: str,
    weight: float,
    step: int | None = None,
    budget_ms: float | None = None,
) -> RolloutState:
    """Start or move a rollout of the current challenger; refuses what serving would ignore."""
    problem = validate(mode, weight, budget_ms if budget_ms is not None else DEFAULT_BUDGET_MS)
    if problem:
        raise RolloutError(problem)
    current = read_rollout(registry, name)
    if current.challenger is None:
        raise RolloutError(
            f"{name} has no challenger version; register one first (`modelfactory run`)"
        )
    if current.challenger == current.champion:
        raise RolloutError(
            f"{name}: challenger and champion are the same version ({current.champion})"
        )
    tags = {
        TAG_MODE: mode,
        TAG_WEIGHT: f"{weight:g}",
        TAG_STEP: str(step if step is not None else current.step + (1 if current.active else 0)),
    }
    if budget_ms is not None:
        tags[TAG_BUDGET] = f"{budget_ms:g}"
    # Last: until it is written, tags of another version leave this one without traffic.
    tags[TAG_VERSION] = current.challenger
    for key, value in tags.items():
        registry.client.set_registered_model_tag(name, key, value)
    return read_rollout(registry, name)


def clear_rollout(registry: Registry, name: str) -> RolloutState:
    """Stop the rollout: champion only. The challenger alias stays (rollback is the operator's
    call)."""
    model = registry.client.get_registered_model(name)
    for key in ROLLOUT_TAGS:
        if key in (model.tags or {}):
            registry.client.delete_registered_model_tag(name, key)
    return read_rollout(registry, name)
