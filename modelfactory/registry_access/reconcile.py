"""Make MLflow's auth database hold the platform's accounts, their passwords and grants
(:mod:`.accounts`), whatever it held before; run before the server starts and before every
upgrade, so a changed Secret is a changed password (docs/adr/0016).

Each account's grants live on an MLflow role of its own (``modelfactory-<account>``, in the
``default`` workspace MLflow keeps them in when workspaces are off): the reconcile adds what is
missing and removes what is not declared, on those roles only. A person's own users, roles and
grants, and the ``MANAGE`` grants MLflow gives a resource's creator, are left as they are.

Beside the accounts, two things only the tracking database can tell: the served model names the
chart lists are created when absent (an authenticated account that created one first would hold
``MANAGE`` on it), and every ``monitoring/<model>`` experiment is granted ``EDIT`` to the drift
checks (those made before authentication was on belong to no one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa

from modelfactory.registry_access.accounts import (
    ACCOUNTS,
    EDIT,
    EXPERIMENT,
    MONITORING,
    MONITORING_EXPERIMENT_PREFIX,
    Account,
    Grant,
)

# MLflow keeps grants in this workspace when workspaces are off (mlflow.utils.workspace_utils).
WORKSPACE = "default"
# The schema of the tracking database (PostgreSQL) the auth app's tables live in.
AUTH_SCHEMA = "mlflow_auth"
MIN_PASSWORD_LENGTH = 12  # MLflow refuses shorter ones


class AccessError(ValueError):
    """An account's password or the auth database cannot be used; names which and why."""


@dataclass
class Reconciled:
    """What a reconcile changed (empty lists: the database already held it all)."""

    created_users: list[str] = field(default_factory=list)
    new_passwords: list[str] = field(default_factory=list)
    granted: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    created_models: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [
            f"{label}: {', '.join(items)}"
            for label, items in (
                ("users created", self.created_users),
                ("passwords set", self.new_passwords),
                ("granted", self.granted),
                ("revoked", self.revoked),
                ("registered models created", self.created_models),
            )
            if items
        ]
        return "; ".join(parts) or "nothing to change"


def auth_database_url(backend_store_uri: str) -> str:
    """Where the auth app keeps users and grants, beside the tracking store: the schema
    ``mlflow_auth`` of the same PostgreSQL database (its own tables and migration history, so
    neither store's migrations see the other's), or ``basic_auth.db`` beside a sqlite file."""
    url = sa.engine.make_url(backend_store_uri)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        folder = database.rsplit("/", 1)[0] if "/" in database else "."
        return url.set(database=f"{folder}/basic_auth.db").render_as_string(hide_password=False)
    return url.update_query_dict({"options": f"-csearch_path={AUTH_SCHEMA}"}).render_as_string(
        hide_password=False
    )


def check_password(account: Account, password: str | None, where: str) -> str:
    if not password:
        raise AccessError(f"{where}: no password for the MLflow account {account.name!r}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccessError(
            f"{where}: the password of the MLflow account {account.name!r} has "
            f"{len(password)} characters; MLflow needs at least {MIN_PASSWORD_LENGTH}"
        )
    return password


def reconcile(
    auth_url: str,
    passwords: Mapping[str, str],
    accounts: Iterable[Account] = ACCOUNTS,
    tracking_url: str | None = None,
    served_models: Iterable[str] = (),
) -> Reconciled:
    """Apply ``accounts`` (with ``passwords`` by account name) to the auth database at
    ``auth_url``; with ``tracking_url``, also create ``served_models`` and grant the monitoring
    experiments."""
    accounts = tuple(accounts)
    for account in accounts:
        check_password(account, passwords.get(account.name), "passwords")
    _ensure_schema(auth_url)
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(auth_url)  # creates or migrates the auth tables
    done = Reconciled()
    extra: dict[str, tuple[Grant, ...]] = {}
    if tracking_url:
        done.created_models = _create_models(tracking_url, served_models)
        extra[MONITORING.name] = tuple(
            Grant(EXPERIMENT, experiment_id, EDIT)
            for experiment_id in _monitoring_experiments(tracking_url)
        )
    for account in accounts:
        _reconcile_user(store, account, passwords[account.name], done)
        if not account.admin:
            _reconcile_role(store, account, account.grants + extra.get(account.name, ()), done)
    return done


def _ensure_schema(auth_url: str) -> None:
    url = sa.engine.make_url(auth_url)
    if url.get_backend_name() != "postgresql":
        return
    options = str(url.query.get("options", ""))
    schema = options.split("search_path=", 1)[1].split()[0] if "search_path=" in options else ""
    if not schema:
        return
    engine = sa.create_engine(url.difference_update_query(["options"]))
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        engine.dispose()


def _reconcile_user(store, account: Account, password: str, done: Reconciled) -> None:
    if not store.has_user(account.username, use_primary=True):
        store.create_user(account.username, password, is_admin=account.admin)
        done.created_users.append(account.username)
        return
    if not store.authenticate_user(account.username, password, use_primary=True):
        store.update_user(account.username, password=password)
        done.new_passwords.append(account.username)
    if store.get_user(account.username).is_admin != account.admin:
        store.update_user(account.username, is_admin=account.admin)
        done.granted.append(f"{account.username} admin={account.admin}")


def _reconcile_role(store, account: Account, grants: tuple[Grant, ...], done: Reconciled) -> None:
    from mlflow.exceptions import MlflowException

    try:
        role = store.get_role_by_name(WORKSPACE, account.role)
    except MlflowException:
        role = store.create_role(account.role, WORKSPACE, description=account.purpose)
    wanted = {(g.resource_type, g.pattern): g.permission for g in grants}
    for held in store.list_role_permissions(role.id):
        key = (held.resource_type, held.resource_pattern)
        permission = wanted.pop(key, None)
        if permission == held.permission:
            continue
        done.revoked.append(f"{account.role} {held.permission} {key[0]} {key[1]}")
        if permission is None:
            store.remove_role_permission(held.id)
        else:
            store.update_role_permission(held.id, permission)
            done.granted.append(f"{account.role} {permission} {key[0]} {key[1]}")
    for (resource_type, pattern), permission in wanted.items():
        store.add_role_permission(role.id, resource_type, pattern, permission)
        done.granted.append(f"{account.role} {permission} {resource_type} {pattern}")
    user = store.get_user(account.username)
    if role.id not in {r.id for r in store.list_user_roles(user.id)}:
        store.assign_role_to_user(user.id, role.id)
        done.granted.append(f"{account.username} in {account.role}")


def _create_models(tracking_url: str, names: Iterable[str]) -> list[str]:
    names = sorted(set(names))
    if not names:
        return []
    from mlflow.exceptions import MlflowException
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    registry = SqlAlchemyStore(tracking_url)
    created = []
    for name in names:
        try:
            registry.get_registered_model(name)
        except MlflowException:
            registry.create_registered_model(name)
            created.append(name)
    return created


def _monitoring_experiments(tracking_url: str) -> list[str]:
    """Ids of the live ``monitoring/<model>`` experiments (read from the tracking tables: MLflow's
    tracking store would create its default experiment here, with another artifact root than
    the server's)."""
    engine = sa.create_engine(tracking_url)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("experiments"):
                return []
            rows = connection.execute(
                sa.text(
                    "SELECT experiment_id FROM experiments "
                    "WHERE lifecycle_stage = 'active' AND name LIKE :prefix ORDER BY experiment_id"
                ),
                {"prefix": f"{MONITORING_EXPERIMENT_PREFIX}%"},
            )
            return [str(row[0]) for row in rows]
    finally:
        engine.dispose()
