"""The registry's accounts and what each may do (pure data; docs/adr/0016).

MLflow's auth app grants a permission (``READ`` < ``USE`` < ``EDIT`` < ``MANAGE``) on a
resource type and a pattern: one registered model's name or one experiment's id, or ``*`` for
every resource of that type, those created later included. The server's
``default_permission`` is ``NO_PERMISSIONS``: an account holds nothing it is not granted here.
What each permission allows on a registered model, as MLflow 3.17 checks it:

- ``READ``: the model, its versions, aliases and tags, its artifacts;
- ``EDIT``: also new versions, setting an alias, registered-model and version tags;
- ``MANAGE``: also deleting an alias, a version tag, a version or the model, and granting others
  permissions on it.

A ``registered_model_version`` grant overrides the model's own for its versions only: ``EDIT``
there writes version tags and nothing else (no alias, no registered-model tag).

Any authenticated account may create an experiment or a registered model and then holds
``MANAGE`` on it (MLflow grants its creator that). The reconcile therefore creates the chart's
served model names itself, so no other account can take one first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

READ, EDIT, MANAGE = "READ", "EDIT", "MANAGE"
REGISTERED_MODEL = "registered_model"
MODEL_VERSION = "registered_model_version"
EXPERIMENT = "experiment"
ANY = "*"
# The drift checks record each check as a run in the experiment "monitoring/<model>".
MONITORING_EXPERIMENT_PREFIX = "monitoring/"


@dataclass(frozen=True)
class Grant:
    resource_type: str
    pattern: str
    permission: str


@dataclass(frozen=True)
class Account:
    """One part's identity: ``name`` keys its password (the Secret's ``<name>-password``) and its
    username; ``role`` is the MLflow role holding ``grants`` (none for the admin, who holds every
    permission)."""

    name: str
    username: str
    purpose: str
    grants: tuple[Grant, ...] = ()
    admin: bool = False

    @property
    def role(self) -> str:
        return f"modelfactory-{self.name}"


ADMIN = Account("admin", "admin", "a person: every permission, manages users", admin=True)
SERVING = Account(
    "serving",
    "modelfactory-serving",
    "serving pods: read models, their aliases and rollout tags, load their artifacts",
    (
        Grant(REGISTERED_MODEL, ANY, READ),
        Grant(EXPERIMENT, ANY, READ),  # a version's artifacts belong to its run's experiment
    ),
)
MONITORING = Account(
    "monitoring",
    "modelfactory-monitoring",
    "drift checks: read models and champions' training data; write their check runs in "
    f"{MONITORING_EXPERIMENT_PREFIX}<model> (EDIT on each, granted by the reconcile, or MANAGE "
    "as its creator)",
    (Grant(REGISTERED_MODEL, ANY, READ), Grant(EXPERIMENT, ANY, READ)),
)
PIPELINES = Account(
    "pipelines",
    "modelfactory-pipelines",
    "pipeline runs: log training runs, register versions; the promotion gate (in the register "
    "step) moves champion and challenger",
    (Grant(REGISTERED_MODEL, ANY, EDIT), Grant(EXPERIMENT, ANY, EDIT)),
)
OPERATOR = Account(
    "operator",
    "modelfactory-operator",
    "the rollout operator: moves champion and challenger, removes challenger (MLflow asks MANAGE "
    "to delete an alias), writes rollout tags and version tags, reads replay results",
    (Grant(REGISTERED_MODEL, ANY, MANAGE), Grant(EXPERIMENT, ANY, READ)),
)
REPLAY = Account(
    "replay",
    "modelfactory-rollout-replay",
    "rollout replay Jobs: load two versions, write the result as a version tag (no alias, no "
    "rollout tag)",
    (
        Grant(REGISTERED_MODEL, ANY, READ),
        Grant(MODEL_VERSION, ANY, EDIT),
        Grant(EXPERIMENT, ANY, READ),
    ),
)
ACCOUNTS: tuple[Account, ...] = (ADMIN, SERVING, MONITORING, PIPELINES, OPERATOR, REPLAY)
BY_NAME: dict[str, Account] = {a.name: a for a in ACCOUNTS}


def with_usernames(usernames: Mapping[str, str]) -> tuple[Account, ...]:
    """The accounts with the usernames a deployment chose (``{account name: username}``)."""
    unknown = sorted(set(usernames) - set(BY_NAME))
    if unknown:
        raise ValueError(f"no such account: {', '.join(unknown)} (known: {', '.join(BY_NAME)})")
    accounts = tuple(replace(a, username=usernames.get(a.name, a.username)) for a in ACCOUNTS)
    taken = [a.username for a in accounts]
    doubled = sorted({u for u in taken if taken.count(u) > 1})
    if doubled:
        raise ValueError(f"two accounts share the username {', '.join(doubled)}")
    return accounts
