"""A real `mlflow server --app-name basic-auth` with the platform's accounts reconciled into its
auth database (sqlite, as on a cluster but beside a sqlite tracking store): who may do what, as
each part of the platform does it, through the platform's own code."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

import httpx
import pytest
from mlflow.exceptions import MlflowException

from modelfactory.registry import CHALLENGER, CHAMPION, Registry
from modelfactory.registry_access.accounts import ACCOUNTS
from modelfactory.registry_access.reconcile import auth_database_url, reconcile
from modelfactory.registry_access.server import write_auth_config
from tests.support.serving import MODEL, train_version

pytestmark = pytest.mark.integration
PASSWORDS = {a.name: f"{a.name}-secret-0123456789" for a in ACCOUNTS}
USERNAMES = {a.name: a.username for a in ACCOUNTS}
CACHE_SECONDS = 3  # how long a worker trusts a verified password (60 on a cluster)


@contextmanager
def as_account(name: str, password: str | None = None):
    """MLflow calls of this process made with an account's credentials (MLflow's client reads
    them from the environment on every request)."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"] = USERNAMES[name]
    os.environ["MLFLOW_TRACKING_PASSWORD"] = password or PASSWORDS[name]
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def refused(call) -> int:
    """The HTTP status MLflow refused ``call`` with (it must be refused)."""
    with pytest.raises(MlflowException) as refusal:
        call()
    return {"PERMISSION_DENIED": 403, "UNAUTHENTICATED": 401}.get(refusal.value.error_code, 0)


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """(URL, auth database URL) of a basic-auth MLflow server whose accounts are reconciled."""
    from modelfactory.local.mlflow_server import EmbeddedMlflow
    from modelfactory.local.ports import free_port

    home = tmp_path_factory.mktemp("secured-mlflow")
    auth_url = auth_database_url(f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    (home / "mlflow").mkdir()
    reconcile(auth_url, PASSWORDS)  # the admin exists before the server starts, as on a cluster
    config = write_auth_config(home / "auth.ini", auth_url, cache_seconds=CACHE_SECONDS)
    server = EmbeddedMlflow(home, port=free_port(), auth_config=config)
    server.start()
    yield server.url, auth_url
    server.stop()


@pytest.fixture(scope="module")
def registered(secured, tmp_path_factory):
    """The pipeline's registration of a small classifier (version 1, the first: champion), and
    a second version of the same model, both made with the pipelines' account."""
    uri, _ = secured
    with as_account("pipelines"):
        first = train_version(uri, tmp_path_factory.mktemp("train"), seed=1)
        registry = Registry(uri)
        run_id = registry.client.get_model_version(MODEL, first).run_id
        source = registry.client.get_model_version(MODEL, first).source
        second = registry.register(MODEL, source, run_id, "classification").version
    return uri, first, str(second)


def test_without_credentials_the_registry_answers_401(secured):
    uri, _ = secured
    api = f"{uri}/api/2.0/mlflow"
    assert httpx.get(f"{uri}/health").status_code == 200  # probes need no account
    assert httpx.get(f"{api}/registered-models/search").status_code == 401
    create = httpx.post(f"{api}/registered-models/create", json={"name": "anonymous-model"})
    assert create.status_code == 401
    wrong = httpx.get(f"{api}/registered-models/search", auth=("modelfactory-operator", "guess"))
    assert wrong.status_code == 401
    right = httpx.get(
        f"{api}/registered-models/search", auth=("modelfactory-serving", PASSWORDS["serving"])
    )
    assert right.status_code == 200


def test_serving_reads_the_champion_and_may_move_nothing(registered):
    from modelfactory.rollout.state import read_rollout, set_rollout

    uri, first, second = registered
    with as_account("serving"):
        registry = Registry(uri)
        assert registry.version_by_alias(MODEL, CHAMPION).version == first
        assert read_rollout(registry, MODEL).champion == first
        import mlflow.pyfunc

        model = mlflow.pyfunc.load_model(f"models:/{MODEL}@{CHAMPION}")
        assert model.metadata.get_input_schema() is not None
        assert refused(lambda: registry.set_alias(MODEL, CHAMPION, second)) == 403
        assert refused(lambda: registry.set_alias(MODEL, CHALLENGER, second)) == 403
        assert refused(lambda: set_rollout(registry, MODEL, "canary", 100)) == 403
        assert (
            refused(lambda: registry.client.set_model_version_tag(MODEL, second, "x", "y")) == 403
        )
        assert refused(lambda: registry.client.delete_registered_model(MODEL)) == 403
    with as_account("operator"):
        assert Registry(uri).version_by_alias(MODEL, CHAMPION).version == first  # unchanged


def test_a_replay_records_its_result_on_the_version_and_nothing_else(registered):
    from modelfactory.rollout.controller import MlflowRegistry
    from modelfactory.rollout.replay import TAG, ReplayResult
    from modelfactory.rollout.state import set_rollout

    uri, first, second = registered
    result = ReplayResult(second, first, requested=500, rows=480, compared=480, agreed=470)
    with as_account("replay"):  # as python -m modelfactory.operator.replay_job records it
        registry = Registry(uri)
        registry.client.set_model_version_tag(MODEL, second, TAG, result.as_tag())
        assert refused(lambda: registry.set_alias(MODEL, CHAMPION, second)) == 403
        assert refused(lambda: set_rollout(registry, MODEL, "canary", 100)) == 403
    with as_account("operator"):  # where the operator's next reconcile reads it
        read = MlflowRegistry(Registry(uri), "ml/bank-marketing").replay_result(MODEL, second)
        assert (read.version, read.rows, read.agreed) == (second, 480, 470)


def test_drift_checks_record_their_runs_and_read_the_champions_training_data(registered, tmp_path):
    from modelfactory.monitoring.recording import CheckRun

    uri, first, second = registered
    with as_account("monitoring"):
        registry = Registry(uri)
        check = CheckRun(registry, MODEL, "check")  # creates monitoring/bank-marketing
        check.log({"monitoring.decision": "no_drift"}, {"drift.age": 0.01}, int(time.time() * 1000))
        run = registry.client.get_run(check.run_id)
        assert run.data.tags["monitoring.decision"] == "no_drift"
        training_run = registry.client.get_model_version(MODEL, first).run_id
        registry.client.download_artifacts(training_run, "reference_data", str(tmp_path))
        assert list((tmp_path / "reference_data").iterdir())
        training = registry.client.get_run(training_run).info.experiment_id
        assert refused(lambda: registry.client.create_run(training)) == 403
        assert refused(lambda: registry.set_alias(MODEL, CHAMPION, second)) == 403


def test_the_operator_moves_the_aliases_and_tags_of_a_model_registered_after_it(registered):
    """The model did not exist when the accounts were reconciled: the operator's grant on every
    registered model covers it."""
    from modelfactory.rollout.actions import Promote, RecordOutcome, SetChallenger, SetTraffic
    from modelfactory.rollout.controller import MlflowRegistry
    from modelfactory.rollout.state import read_rollout

    uri, first, second = registered
    with as_account("operator"):
        registry = Registry(uri)
        rollouts = MlflowRegistry(registry, "ml/bank-marketing")
        assert rollouts.claim(MODEL) == "ml/bank-marketing"  # a registered-model tag
        rollouts.apply(MODEL, SetChallenger(second))
        rollouts.apply(MODEL, SetTraffic("canary", 10, 1, 50))
        traffic = read_rollout(registry, MODEL)
        assert (traffic.challenger, traffic.mode, traffic.weight) == (second, "canary", 10)
        rollouts.apply(MODEL, Promote(second))  # champion moves, challenger alias removed
        rollouts.apply(MODEL, RecordOutcome(second, "promoted", "every step passed", {}))
        after = read_rollout(registry, MODEL)
        assert (after.champion, after.challenger, after.mode) == (second, None, None)
        tags = registry.client.get_model_version(MODEL, second).tags
        assert tags["rollout.outcome"] == "promoted"
        rollouts.release(MODEL)


def test_a_rotated_password_replaces_the_old_one_within_the_cache_time(secured):
    uri, auth_url = secured
    search = f"{uri}/api/2.0/mlflow/registered-models/search"
    old, new = PASSWORDS["serving"], "a-rotated-serving-password"
    assert httpx.get(search, auth=("modelfactory-serving", old)).status_code == 200
    reconcile(auth_url, {**PASSWORDS, "serving": new})
    try:
        assert httpx.get(search, auth=("modelfactory-serving", new)).status_code == 200
        time.sleep(CACHE_SECONDS + 1)
        assert httpx.get(search, auth=("modelfactory-serving", old)).status_code == 401
    finally:
        reconcile(auth_url, PASSWORDS)


def test_a_retraining_run_fetches_the_checks_training_file_with_its_own_account(
    registered, tmp_path
):
    """A drift check's retrain hands the pipeline an artifact URL of its run (the champion's
    data and the labelled predictions); the pipeline's ingest fetches it as the pipelines'
    account, and sends that account to the tracking server only."""
    from modelfactory.errors import DataSourceError
    from modelfactory.monitoring.recording import CheckRun
    from modelfactory.registry import tracking_server_auth
    from modelfactory.steps.data import ingest

    uri, _, _ = registered
    training = tmp_path / "retrain.csv"
    training.write_text("age;y\n41;yes\n")
    with as_account("monitoring"):
        check = CheckRun(Registry(uri), MODEL, "retrain")
        check.log_files({"retrain_bank.csv": training})
        url = check.artifact_url("retrain_bank.csv")
    with as_account("pipelines"):
        ingest("classification", url, str(tmp_path / "raw.csv"), tracking_uri=uri)
        assert (tmp_path / "raw.csv").read_bytes() == training.read_bytes()
        assert tracking_server_auth("https://data.example.com/rides.csv", uri) is None
    with pytest.raises(DataSourceError, match="401"):
        ingest("classification", url, str(tmp_path / "anonymous.csv"), tracking_uri=uri)
