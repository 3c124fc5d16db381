"""The chart's registry access (docs/adr/0016): MLflow runs the basic-auth app over the accounts
the chart reconciles, and every workload that talks to MLflow gets its own account's password
from a Secret, as a file, and no other account's."""

from __future__ import annotations

import base64
import configparser
import os
import stat
import subprocess

import pytest
import yaml

from modelfactory.registry_access.accounts import BY_NAME

from .chartlib import (
    CHART,
    FULLNAME,
    VALUE_SETS,
    WORKLOAD_KINDS,
    containers,
    env_of,
    named,
    of_kind,
    pod_labels,
    pod_spec,
    render,
    run_helm,
)

ACCOUNTS_SECRET = f"{FULLNAME}-mlflow-accounts"
# Which account each part's pods use, by their app.kubernetes.io/component.
ACCOUNT_OF = {
    "serving": "serving",
    "drift-monitor": "monitoring",
    "rollout-replay": "replay",
    "operator": "operator",
    "tests": "serving",
}
WITH_AUTH = [name for name in VALUE_SETS if name != "mlflow-auth-off"]


def _values(name: str) -> dict:
    values = yaml.safe_load((CHART / "values.yaml").read_text())["mlflow"]["auth"]
    for f in VALUE_SETS[name]:
        override = (yaml.safe_load(f.read_text()) or {}).get("mlflow", {}).get("auth", {})
        values = {**values, **{k: v for k, v in override.items() if not isinstance(v, dict)}}
    return values


def _volumes(spec: dict) -> dict[str, dict]:
    return {v["name"]: v for v in spec.get("volumes", [])}


def _mounted_secret_file(spec: dict, container: dict, path: str) -> tuple[str, str]:
    """(Secret name, key) of the file at ``path`` in ``container``."""
    for mount in container.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(prefix):
            secret = _volumes(spec)[mount["name"]]["secret"]
            (item,) = [i for i in secret["items"] if i["path"] == path[len(prefix) :]]
            return secret["secretName"], item["key"]
    raise AssertionError(f"{container['name']}: nothing mounted at {path}")


def _mlflow_clients(objects):
    """(workload, container) of every container that talks to MLflow's API."""
    for w in of_kind(objects, *WORKLOAD_KINDS):
        for c in containers(pod_spec(w)):
            env = env_of(c)
            if "MLFLOW_TRACKING_URI" in env or "MLFLOW_TRACKING_USERNAME" in env:
                yield w, c


@pytest.mark.parametrize("name", WITH_AUTH)
def test_each_workload_gets_its_own_account_from_a_secret(helm, name):
    objects = render(VALUE_SETS[name])
    auth = _values(name)
    secret_name = auth["existingSecret"] or ACCOUNTS_SECRET
    seen = set()
    for w, c in _mlflow_clients(objects):
        component = pod_labels(w)["app.kubernetes.io/component"]
        account = ACCOUNT_OF[component]
        env = env_of(c)
        where = f"{name}: {w['metadata']['name']}/{c['name']}"
        assert env["MLFLOW_TRACKING_USERNAME"]["value"] == auth["usernames"][account], where
        assert "MLFLOW_TRACKING_PASSWORD" not in env, where  # never an env value
        password_file = env["MLFLOW_TRACKING_PASSWORD_FILE"]["value"]
        assert _mounted_secret_file(pod_spec(w), c, password_file) == (
            secret_name,
            auth["secretKeys"][account],
        ), where
        # That volume holds this account's password and nothing else.
        for volume in _volumes(pod_spec(w)).values():
            if volume.get("secret", {}).get("secretName") == secret_name:
                assert [i["key"] for i in volume["secret"]["items"]] == [
                    auth["secretKeys"][account]
                ], where
        seen.add(component)
    assert seen, name
    if name == "multi-model":  # every part: a DriftMonitor there, a replay of each model
        assert seen == set(ACCOUNT_OF)


def test_drift_checks_and_replays_run_with_their_own_accounts(helm):
    """The operator builds both from the serving pod; the chart gives it the templates with the
    drift checks' and the replays' accounts in place of serving's."""
    objects = render(VALUE_SETS["multi-model"])
    accounts = {
        pod_labels(w)["app.kubernetes.io/component"]: env_of(c)["MLFLOW_TRACKING_USERNAME"]["value"]
        for w, c in _mlflow_clients(objects)
    }
    assert accounts == {
        "serving": "modelfactory-serving",
        "drift-monitor": "modelfactory-monitoring",
        "rollout-replay": "modelfactory-rollout-replay",
        "operator": "modelfactory-operator",
        "tests": "modelfactory-serving",  # the helm test reads as serving does
    }


def test_mlflow_refuses_anonymous_callers_by_its_rendered_configuration(
    helm, tmp_path, monkeypatch
):
    """The server's rendered command, run up to the moment it would exec MLflow: `mlflow server
    --app-name basic-auth` over an auth configuration that grants an account nothing by default
    (tests/registry_access/test_real_server.py shows such a server answering 401)."""
    from mlflow.server.auth.config import read_auth_config

    from modelfactory.registry_access import __main__ as program

    objects = render()
    mlflow = named(objects, "Deployment", f"{FULLNAME}-mlflow")
    spec = pod_spec(mlflow)
    (server,) = spec["containers"]
    start = server["command"].index("modelfactory.registry_access")
    arguments = server["command"][start + 1 :] + server["args"]
    assert arguments[0] == "serve"
    key_file = next(a.split("=", 1)[1] for a in arguments if a.startswith("--secret-key-file="))
    assert _mounted_secret_file(spec, server, key_file) == (ACCOUNTS_SECRET, "flask-secret-key")
    # The server holds the Flask key only, never an account's password.
    server_mounts = {m["name"] for m in server["volumeMounts"]}
    held = [
        item["key"]
        for name, volume in _volumes(spec).items()
        if name in server_mounts and volume.get("secret", {}).get("secretName") == ACCOUNTS_SECRET
        for item in volume["secret"]["items"]
    ]
    assert held == ["flask-secret-key"]

    (tmp_path / "key").write_text("a-static-flask-key\n")
    rewritten = [
        f"--secret-key-file={tmp_path / 'key'}"
        if a.startswith("--secret-key-file=")
        else f"--config={tmp_path / 'auth' / 'basic_auth.ini'}"
        if a.startswith("--config=")
        else a
        for a in arguments
    ]
    backend = "postgresql+psycopg://mlflow:pass%25word@mf-modelfactory-postgresql:5432/mlflow"
    monkeypatch.setenv("MLFLOW_BACKEND_STORE_URI", backend)
    started = {}
    monkeypatch.setattr(os, "execv", lambda path, argv: started.update(argv=argv))
    program.main(rewritten)
    argv = started["argv"]
    assert argv[1:6] == ["-m", "mlflow", "server", "--app-name", "basic-auth"]
    assert "--host=0.0.0.0" in argv and "--serve-artifacts" in argv
    config = tmp_path / "auth" / "basic_auth.ini"
    assert os.environ["MLFLOW_AUTH_CONFIG_PATH"] == str(config)
    assert os.environ["MLFLOW_FLASK_SERVER_SECRET_KEY"] == "a-static-flask-key"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600  # it holds the database password
    read = read_auth_config()  # as MLflow's auth app reads it
    assert read.default_permission == "NO_PERMISSIONS"
    assert read.admin_username == "admin" and read.admin_password is None
    assert read.auth_cache_ttl_seconds == 60
    assert read.database_uri == f"{backend}?options=-csearch_path%3Dmlflow_auth"
    parser = configparser.ConfigParser()
    parser.read(config)
    assert parser["mlflow"]["authorization_function"].endswith("authenticate_request_basic_auth")


def test_the_accounts_are_reconciled_before_the_server_and_after_every_upgrade(helm):
    objects = render()
    mlflow = named(objects, "Deployment", f"{FULLNAME}-mlflow")
    job = named(objects, "Job", f"{FULLNAME}-mlflow-accounts")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-upgrade"
    reconciles = [pod_spec(mlflow)["initContainers"][-1], pod_spec(job)["containers"][0]]
    for workload, c in zip((mlflow, job), reconciles, strict=True):
        assert c["name"] == "registry-accounts"
        arguments = c["command"][4:]
        assert arguments[:4] == ["python3", "-m", "modelfactory.registry_access", "reconcile"]
        usernames = dict(
            a.removeprefix("--username=").split("=", 1)
            for a in arguments
            if a.startswith("--username=")
        )
        assert usernames == {name: account.username for name, account in BY_NAME.items()}
        assert "--model=bank-marketing" in arguments  # served names are taken first
        # Every account's password, each as the file the program reads for it.
        folder = next(a.split("=", 1)[1] for a in arguments if a.startswith("--passwords="))
        for account in BY_NAME:
            assert _mounted_secret_file(pod_spec(workload), c, f"{folder}/{account}") == (
                ACCOUNTS_SECRET,
                f"{account}-password",
            )


def test_the_accounts_secret_is_generated_once_and_kept(helm):
    secret = named(render(), "Secret", ACCOUNTS_SECRET)
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    keys = {f"{a}-password" for a in BY_NAME} | {"flask-secret-key"}
    assert set(secret["data"]) == keys
    passwords = [base64.b64decode(v).decode() for v in secret["data"].values()]
    assert all(len(p) >= 32 for p in passwords) and len(set(passwords)) == len(passwords)
    source = (CHART / "templates" / "mlflow" / "secret-accounts.yaml").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace $name' in source
    assert "get $previous $key | default (randAlphaNum 32 | b64enc)" in source


def test_the_pipelines_account_is_copied_to_the_kubeflow_namespace(helm):
    objects = render(sets=("mlflow.auth.pipelines.namespace=kubeflow",))
    accounts = named(objects, "Secret", ACCOUNTS_SECRET)
    copy = named(objects, "Secret", "modelfactory-mlflow-pipelines")
    assert copy["metadata"]["namespace"] == "kubeflow"
    assert base64.b64decode(copy["data"]["username"]).decode() == "modelfactory-pipelines"
    assert copy["data"]["password"] == accounts["data"]["pipelines-password"]
    # A Secret the user manages cannot be copied by the chart: say so.
    refused = run_helm(
        "template",
        "mf",
        str(CHART),
        "--set",
        "mlflow.auth.existingSecret=mine",
        "--set",
        "mlflow.auth.pipelines.namespace=kubeflow",
    )
    assert refused.returncode != 0
    assert "create the pipelines' Secret in the Kubeflow Pipelines namespace" in refused.stderr


def test_without_authentication_no_pod_holds_a_registry_credential(helm):
    objects = render(VALUE_SETS["mlflow-auth-off"])
    assert ACCOUNTS_SECRET not in {s["metadata"]["name"] for s in of_kind(objects, "Secret")}
    for w in of_kind(objects, *WORKLOAD_KINDS):
        for c in containers(pod_spec(w)):
            assert not {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD_FILE"} & set(
                env_of(c)
            )
    (server,) = pod_spec(named(objects, "Deployment", f"{FULLNAME}-mlflow"))["containers"]
    assert server["command"][4:] == ["mlflow", "server"]


def test_the_command_prefix_puts_the_accounts_password_where_mlflow_reads_it(helm, tmp_path):
    objects = render()
    operator = named(objects, "Deployment", f"{FULLNAME}-operator")  # as every serving pod's
    (c,) = pod_spec(operator)["containers"]
    env = {k: v["value"] for k, v in env_of(c).items() if "value" in v}
    (tmp_path / "db").write_text("db-password\n")
    (tmp_path / "mlflow").write_text("operator-secret-password\n")
    env.update(
        DB_PASSWORD_FILE=str(tmp_path / "db"),
        MLFLOW_TRACKING_PASSWORD_FILE=str(tmp_path / "mlflow"),
        PATH="/usr/bin:/bin",
    )
    show = ["/bin/sh", "-c", 'echo "$MLFLOW_TRACKING_USERNAME:$MLFLOW_TRACKING_PASSWORD"']
    done = subprocess.run(
        [*c["command"][:4], *show], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.stdout.strip() == "modelfactory-operator:operator-secret-password"
    (tmp_path / "mlflow").write_text("")
    done = subprocess.run(
        [*c["command"][:4], *show], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0 and "holds no password" in done.stderr
