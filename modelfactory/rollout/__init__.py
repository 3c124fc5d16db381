"""Rollouts of a model's challenger: the registry's record of one (``state``), the plan a
ModelDeployment asks for (``spec``), what serving measures (``measurements``), the pure decision
of what to do next (``decide``) and the level-based loop that applies it (``controller``).

The operator (``modelfactory.operator``, kopf) and ``modelfactory rollout run`` (one machine)
are thin adapters over the controller.
"""

from modelfactory.rollout.state import (
    DEFAULT_BUDGET_MS,
    MODES,
    ROLLOUT_TAGS,
    TAG_BUDGET,
    TAG_MODE,
    TAG_STEP,
    TAG_VERSION,
    TAG_WEIGHT,
    RolloutError,
    RolloutState,
    clear_rollout,
    read_rollout,
    set_rollout,
    validate,
)

__all__ = [
    "DEFAULT_BUDGET_MS",
    "MODES",
    "ROLLOUT_TAGS",
    "TAG_BUDGET",
    "TAG_MODE",
    "TAG_STEP",
    "TAG_VERSION",
    "TAG_WEIGHT",
    "RolloutError",
    "RolloutState",
    "clear_rollout",
    "read_rollout",
    "set_rollout",
    "validate",
]
