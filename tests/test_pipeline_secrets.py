"""Secrets never in pipeline parameters: every compiled pipeline names the Secrets its tasks read
(the pipelines' MLflow account, database passwords) and holds no password; a task joins a
database password from its environment into a URL that names the user and no password; a
retraining run is submitted with Secret names only."""

from __future__ import annotations

import re

import pytest
import yaml
from modelfactory_pipelines.compile import HERE, PIPELINES

from modelfactory.pipeline_secrets import (
    DESTINATION_PASSWORD,
    MLFLOW_SECRET,
    SECRET_KEYS,
    SOURCE_PASSWORD,
    STAGING_PASSWORD,
    url_with_password,
)
from modelfactory.sql import shown_url


def test_the_secrets_password_joins_a_url_that_names_its_user(monkeypatch):
    monkeypatch.setenv(DESTINATION_PASSWORD, "s3cr/t@pass")
    url = url_with_password("postgresql+psycopg://scorer@crm-db:5432/crm", DESTINATION_PASSWORD)
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    assert (parsed.username, parsed.password, parsed.host, parsed.database) == (
        "scorer",
        "s3cr/t@pass",
        "crm-db",
        "crm",
    )
    assert shown_url(url) == "postgresql+psycopg://scorer:***@crm-db:5432/crm"


def test_other_urls_are_used_as_they_are(monkeypatch):
    monkeypatch.setenv(DESTINATION_PASSWORD, "from-the-secret")
    for url in (
        "postgresql+psycopg://scorer:given@crm-db/crm",  # a password of its own (the CLI's)
        "sqlite:////tmp/scores.db",  # no user
        "scores.parquet",
        "https://example.com/customers.csv",
        "",
    ):
        assert url_with_password(url, DESTINATION_PASSWORD) == url
    monkeypatch.delenv(DESTINATION_PASSWORD)
    assert url_with_password("postgresql+psycopg://scorer@db/crm", DESTINATION_PASSWORD) == (
        "postgresql+psycopg://scorer@db/crm"
    )


# user:password@ in any URL, with or without a scheme prefix like postgresql+psycopg.
CREDENTIALS_IN_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s/@:'\"]+:[^\s/@'\"]+@", re.IGNORECASE)
# Which tasks read which database password (task name: the variable, keyed in the Secret).
DATABASE_PASSWORDS = {
    "batch_scoring": {
        "plan-batch": SOURCE_PASSWORD,
        "score-partition": SOURCE_PASSWORD,
        "publish-batch": DESTINATION_PASSWORD,
    },
    "anomaly": {"write-outlier-flags": STAGING_PASSWORD},
}


def _tasks(spec: dict):
    """(task name, component name, the parameters it is given) of every task, those inside a
    ParallelFor included."""
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    for dag in dags:
        for name, task in dag["tasks"].items():
            given = set(task.get("inputs", {}).get("parameters", {}))
            yield name, task["componentRef"]["name"], given


def _secret_env(spec: dict, component: str) -> dict[str, tuple[str, str]]:
    """{variable: (pipeline parameter naming the Secret, key)} the task's executor reads."""
    executor = spec["components"][component].get("executorLabel")
    platform = spec.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
    found = {}
    for secret in platform.get("executors", {}).get(executor, {}).get("secretAsEnv", []):
        parameter = secret["secretNameParameter"]["componentInputParameter"]
        assert secret["optional"] is True  # an open MLflow, a URL with no password: nothing to read
        for pair in secret["keyToEnv"]:
            found[pair["envVar"]] = (parameter.removeprefix("pipelinechannel--"), pair["secretKey"])
    return found


@pytest.mark.parametrize("name", PIPELINES)
def test_a_compiled_pipeline_holds_no_password_and_names_the_secrets_its_tasks_read(name):
    text = (HERE / f"{name}.yaml").read_text()
    documents = [d for d in yaml.safe_load_all(text) if d]
    spec = {**documents[0], "platforms": next((d["platforms"] for d in documents[1:]), {})}
    assert not CREDENTIALS_IN_URL.search(text), f"{name}.yaml holds a URL with its password"
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert not [p for p in parameters if "password" in p.lower()]
    assert parameters["mlflow_credentials_secret"]["defaultValue"] == MLFLOW_SECRET
    mlflow_tasks = 0
    for task, component, given in _tasks(spec):
        env = _secret_env(spec, component)
        if "mlflow_tracking_uri" in given:  # it talks to MLflow: with the pipelines' account
            mlflow_tasks += 1
            assert env["MLFLOW_TRACKING_USERNAME"] == ("mlflow_credentials_secret", "username")
            assert env["MLFLOW_TRACKING_PASSWORD"] == ("mlflow_credentials_secret", "password")
        else:
            assert "MLFLOW_TRACKING_PASSWORD" not in env, task
        variable = DATABASE_PASSWORDS.get(name, {}).get(task)
        if variable:
            assert env[variable] == ("database_secret", SECRET_KEYS[variable]), task
        assert set(env) <= {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", variable}
    assert mlflow_tasks >= 2
    if name in DATABASE_PASSWORDS:
        assert parameters["database_secret"]["parameterType"] == "STRING"


def test_a_retraining_run_is_submitted_with_secret_names_only(kfp_api):
    from modelfactory.monitoring.retrain import KfpRetrainer, RetrainRequest

    retrainer = KfpRetrainer(kfp_api.url, mlflow_secret="team-a-mlflow-account")
    source = "http://mf-modelfactory-mlflow:5000/get-artifact?path=retrain.csv&run_uuid=abc"
    retrainer.submit(RetrainRequest("classification", "bank-marketing", "drifted", source))
    [submitted] = kfp_api.runs
    parameters = submitted["runtime_config"]["parameters"]
    assert parameters["mlflow_credentials_secret"] == "team-a-mlflow-account"
    assert not CREDENTIALS_IN_URL.search(str(submitted))
    # The compiled file as sent: the pipeline spec and its tasks' Kubernetes settings.
    platform = submitted["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]
    executors = platform["deploymentSpec"]["executors"]
    assert executors["exec-register-model"]["secretAsEnv"][0]["secretNameParameter"] == {
        "componentInputParameter": "mlflow_credentials_secret"
    }
