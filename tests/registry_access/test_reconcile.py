"""The accounts reach MLflow's auth database as declared, whatever it held before: created,
passwords rotated, undeclared grants on their roles revoked, served model names taken first,
the drift checks' experiments granted. Real MLflow stores on sqlite; no server."""

from __future__ import annotations

import pytest

from modelfactory.registry_access.accounts import (
    ACCOUNTS,
    EDIT,
    EXPERIMENT,
    MONITORING,
    SERVING,
    with_usernames,
)
from modelfactory.registry_access.reconcile import (
    AccessError,
    auth_database_url,
    reconcile,
)
from modelfactory.registry_access.server import auth_config_text

PASSWORDS = {a.name: f"{a.name}-password-0123" for a in ACCOUNTS}


@pytest.fixture
def databases(tmp_path):
    """(auth URL, tracking URL) of a fresh tracking database with MLflow's schema."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    SqlAlchemyStore(tracking, str(tmp_path / "artifacts"))  # creates the tables
    return auth_database_url(tracking), tracking


def _store(auth_url):
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(auth_url)
    return store


def _grants(store, role_name):
    role = store.get_role_by_name("default", role_name)
    return {
        (p.resource_type, p.resource_pattern, p.permission)
        for p in store.list_role_permissions(role.id)
    }


def test_every_account_is_created_with_its_role_and_grants(databases):
    auth, tracking = databases
    done = reconcile(auth, PASSWORDS, tracking_url=tracking, served_models=["bank-marketing"])
    assert sorted(done.created_users) == sorted(a.username for a in ACCOUNTS)
    assert done.created_models == ["bank-marketing"]
    store = _store(auth)
    assert store.get_user("admin").is_admin
    for account in ACCOUNTS:
        assert store.authenticate_user(account.username, PASSWORDS[account.name])
        if account.admin:
            continue
        assert not store.get_user(account.username).is_admin
        assert _grants(store, account.role) == {
            (g.resource_type, g.pattern, g.permission) for g in account.grants
        }
        (role,) = store.list_user_roles(store.get_user(account.username).id)
        assert role.name == account.role
    # Nothing to change the second time.
    assert reconcile(auth, PASSWORDS, tracking_url=tracking).summary() == "nothing to change"


def test_a_changed_secret_is_a_changed_password_and_strays_are_revoked(databases):
    auth, tracking = databases
    reconcile(auth, PASSWORDS)
    store = _store(auth)
    role = store.get_role_by_name("default", SERVING.role)
    (held,) = [
        p for p in store.list_role_permissions(role.id) if p.resource_type == "registered_model"
    ]
    store.update_role_permission(held.id, "MANAGE")  # someone widened it
    store.add_role_permission(role.id, "registered_model_version", "*", "EDIT")
    rotated = {**PASSWORDS, "serving": "a-new-serving-password"}
    done = reconcile(auth, rotated)
    assert done.new_passwords == [SERVING.username]
    assert sorted(done.revoked) == [
        "modelfactory-serving EDIT registered_model_version *",
        "modelfactory-serving MANAGE registered_model *",
    ]
    assert store.authenticate_user(SERVING.username, "a-new-serving-password")
    assert not store.authenticate_user(SERVING.username, PASSWORDS["serving"])
    assert _grants(store, SERVING.role) == {
        (g.resource_type, g.pattern, g.permission) for g in SERVING.grants
    }


def test_monitoring_experiments_are_granted_to_the_drift_checks(databases, tmp_path):
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    auth, tracking = databases
    experiments = SqlAlchemyStore(tracking, str(tmp_path / "artifacts"))
    ours = experiments.create_experiment("monitoring/bank-marketing")
    experiments.create_experiment("bank-marketing")  # a training experiment: not theirs
    reconcile(auth, PASSWORDS, tracking_url=tracking)
    store = _store(auth)
    assert (EXPERIMENT, ours, EDIT) in _grants(store, MONITORING.role)
    assert {g for g in _grants(store, MONITORING.role) if g[2] == EDIT} == {
        (EXPERIMENT, ours, EDIT)
    }


def test_passwords_mlflow_would_refuse_are_named(databases):
    auth, _ = databases
    with pytest.raises(AccessError, match="'operator' has 5 characters; MLflow needs at least 12"):
        reconcile(auth, {**PASSWORDS, "operator": "short"})
    with pytest.raises(AccessError, match="no password for the MLflow account 'replay'"):
        reconcile(auth, {k: v for k, v in PASSWORDS.items() if k != "replay"})


def test_usernames_can_be_chosen_but_not_shared():
    accounts = with_usernames({"serving": "svc-reader"})
    assert {a.name: a.username for a in accounts}["serving"] == "svc-reader"
    with pytest.raises(ValueError, match="share the username admin"):
        with_usernames({"operator": "admin"})
    with pytest.raises(ValueError, match="no such account: gate"):
        with_usernames({"gate": "x"})


def test_the_auth_database_sits_beside_the_tracking_store():
    assert auth_database_url("sqlite:////data/mlflow/mlflow.db") == (
        "sqlite:////data/mlflow/basic_auth.db"
    )
    assert auth_database_url("postgresql+psycopg://mlflow:p%40ss@db:5432/mlflow") == (
        "postgresql+psycopg://mlflow:p%40ss@db:5432/mlflow?options=-csearch_path%3Dmlflow_auth"
    )
    # configparser interpolates '%': the file doubles it, and reads back the URL as it was.
    import configparser

    text = auth_config_text(
        "postgresql+psycopg://mlflow:p%40ss@db/mlflow?options=-csearch_path%3Dx"
    )
    parser = configparser.ConfigParser()
    parser.read_string(text)
    assert parser["mlflow"]["database_uri"] == (
        "postgresql+psycopg://mlflow:p%40ss@db/mlflow?options=-csearch_path%3Dx"
    )
    assert parser["mlflow"]["default_permission"] == "NO_PERMISSIONS"
