"""The chart and the Python side agree: variable names, ports, URLs, Secret references."""

from __future__ import annotations

import re

import pytest
import yaml

from modelfactory.config import ENV_PREFIX, Settings

from .chartlib import (
    CHART,
    FULLNAME,
    REPO,
    VALUE_SETS,
    WORKLOAD_KINDS,
    containers,
    env_of,
    named,
    of_kind,
    pod_labels,
    pod_spec,
    render,
    selector_matches,
)

SETTINGS_FIELDS = set(Settings.model_fields)


def _serving(objects):
    return [
        d
        for d in of_kind(objects, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "serving"
    ]


def _value(env, name):
    assert name in env, f"{name} not set"
    assert "value" in env[name], f"{name} is not a plain value: {env[name]}"
    return env[name]["value"]


def test_serving_environment_matches_settings_and_services(helm):
    objects = render()
    (deployment,) = _serving(objects)
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    env = env_of(c)
    defaults = Settings()
    assert _value(env, "MODELFACTORY_MODEL_NAME") == "bank-marketing"
    assert _value(env, "MODELFACTORY_MODEL_ALIAS") == defaults.model_alias == "champion"
    assert _value(env, "MODELFACTORY_HTTP_PORT") == str(defaults.http_port) == "3000"
    assert _value(env, "MODELFACTORY_GRPC_PORT") == str(defaults.grpc_port) == "8001"
    assert _value(env, "MODELFACTORY_HTTP_HOST") == "0.0.0.0"
    assert int(_value(env, "MODELFACTORY_WORKERS")) >= 1
    # MLflow: the tracking URI names the chart's MLflow Service, which forwards to port 5000.
    uri = _value(env, "MLFLOW_TRACKING_URI")
    assert uri == f"http://{FULLNAME}-mlflow:5000"
    mlflow_svc = named(objects, "Service", f"{FULLNAME}-mlflow")
    assert [p["port"] for p in mlflow_svc["spec"]["ports"]] == [defaults.mlflow_port]
    mlflow = named(objects, "Deployment", f"{FULLNAME}-mlflow")
    (server,) = mlflow["spec"]["template"]["spec"]["containers"]
    assert "--port=5000" in server["args"] and "--host=0.0.0.0" in server["args"]
    assert "--serve-artifacts" in server["args"]
    # The serving Service exposes both ports.
    svc = named(objects, "Service", f"{FULLNAME}-serving-bank-marketing")
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"http": 3000, "grpc": 8001}
    # MODELFACTORY_HOME and BENTOML_HOME are on a writable emptyDir.
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    for var in ("MODELFACTORY_HOME", "BENTOML_HOME"):
        path = _value(env, var)
        mount = next((m for m in mounts if path == m or path.startswith(m.rstrip("/") + "/")), None)
        assert mount, f"{var}={path} is not under any mount (read-only root filesystem)"
        assert "emptyDir" in volumes[mounts[mount]]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_modelfactory_variable_is_a_settings_field(helm, name):
    """A MODELFACTORY_* name the Python side does not read is a typo or a drift."""
    unknown = set()
    for w in of_kind(render(VALUE_SETS[name]), *WORKLOAD_KINDS):
        for c in containers(pod_spec(w)):
            for var in env_of(c):
                if (
                    var.startswith(ENV_PREFIX)
                    and var[len(ENV_PREFIX) :].lower() not in SETTINGS_FIELDS
                ):
                    unknown.add(var)
    # ci/multi-model-values.yaml sets one on purpose through extraEnv.
    unknown.discard("MODELFACTORY_FEATURE_FLAG")
    assert not unknown, f"not fields of modelfactory.config.Settings: {sorted(unknown)}"


def _check_url_from_secret(
    env: dict, order: list[str], url_var: str, scheme_user_db: tuple, secret: str, key: str
):
    url = _value(env, url_var)
    scheme, user, host, db = scheme_user_db
    m = re.fullmatch(rf"{re.escape(scheme)}://{user}:\$\((\w+)\)@{re.escape(host)}:5432/{db}", url)
    assert m, f"{url_var}={url}"
    password_var = m[1]
    ref = env[password_var]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == (secret, key)
    # $(VAR) expands only to variables defined earlier in the list.
    assert order.index(password_var) < order.index(url_var)


@pytest.mark.parametrize(
    "name, secret, keys",
    [
        ("defaults", f"{FULLNAME}-postgresql", ("mlflow-password", "predictions-password")),
        ("existing-secret", "my-modelfactory-db", ("mlflow", "predictions")),
    ],
)
def test_database_urls_keep_passwords_in_the_secret(helm, name, secret, keys):
    objects = render(VALUE_SETS[name])
    host = f"{FULLNAME}-postgresql"
    for d in _serving(objects):
        (c,) = d["spec"]["template"]["spec"]["containers"]
        order = [e["name"] for e in c["env"]]
        _check_url_from_secret(
            env_of(c),
            order,
            "MODELFACTORY_PREDICTION_STORE_URL",
            ("postgresql+psycopg", "predictions", host, "predictions"),
            secret,
            keys[1],
        )
    mlflow = named(objects, "Deployment", f"{FULLNAME}-mlflow")
    job = named(objects, "Job", f"{FULLNAME}-mlflow-db-upgrade")
    for c in containers(pod_spec(mlflow)) + containers(pod_spec(job)):
        order = [e["name"] for e in c["env"]]
        _check_url_from_secret(
            env_of(c),
            order,
            "MLFLOW_BACKEND_STORE_URI",
            ("postgresql+psycopg", "mlflow", host, "mlflow"),
            secret,
            keys[0],
        )


def test_generated_secret_is_kept_on_upgrade_and_uninstall(helm):
    objects = render()
    (secret,) = of_kind(objects, "Secret")
    assert secret["metadata"]["name"] == f"{FULLNAME}-postgresql"
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert set(secret["data"]) == {"postgres-password", "mlflow-password", "predictions-password"}
    assert all(len(v) >= 40 for v in secret["data"].values())  # base64 of 32 random characters
    # No cluster here, so lookup cannot be exercised: check that the template reuses what
    # lookup finds for every key, and only generates a value when there is none.
    source = (CHART / "templates" / "postgresql" / "secret.yaml").read_text()
    assert re.search(r'lookup "v1" "Secret" \.Release\.Namespace \$name', source)
    assert re.search(r"get \$previous \$key \| default \(randAlphaNum \d+ \| b64enc\)", source)


def test_every_secret_reference_resolves(helm):
    """Each secretKeyRef names the chart's Secret and one of its keys (or the user's Secret)."""
    for name in VALUE_SETS:
        objects = render(VALUE_SETS[name])
        secrets = {
            s["metadata"]["name"]: set(s.get("data", {})) for s in of_kind(objects, "Secret")
        }
        values = yaml.safe_load((CHART / "values.yaml").read_text())
        for f in VALUE_SETS[name]:
            override = yaml.safe_load(f.read_text()) or {}
            existing = override.get("postgresql", {}).get("auth", {}).get("existingSecret")
            if existing:
                keys = {
                    **values["postgresql"]["auth"]["secretKeys"],
                    **override["postgresql"]["auth"].get("secretKeys", {}),
                }
                secrets[existing] = set(keys.values())
        for w in of_kind(objects, *WORKLOAD_KINDS):
            for c in containers(pod_spec(w)):
                for e in c.get("env", []):
                    ref = e.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        assert ref["name"] in secrets, f"{name}: {w['metadata']['name']} -> {ref}"
                        assert ref["key"] in secrets[ref["name"]], (
                            f"{name}: {w['metadata']['name']} -> {ref}"
                        )


def test_existing_secret_means_no_generated_secret(helm):
    objects = render(VALUE_SETS["existing-secret"])
    assert of_kind(objects, "Secret") == []
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for w in of_kind(objects, *WORKLOAD_KINDS)
        for c in containers(pod_spec(w))
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs == {"my-modelfactory-db"}


def test_database_init_creates_the_users_the_urls_use(helm):
    objects = render()
    script = named(objects, "ConfigMap", f"{FULLNAME}-postgresql-init")["data"][
        "10-modelfactory-databases.sh"
    ]
    for user, db in (("mlflow", "mlflow"), ("predictions", "predictions")):
        assert f'CREATE ROLE "{user}" LOGIN' in script
        assert f'CREATE DATABASE "{db}" OWNER "{user}"' in script
    sts = named(objects, "StatefulSet", f"{FULLNAME}-postgresql")
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    env = env_of(c)
    for var in re.findall(r'"\$(\w+_PASSWORD)"', script):
        assert "secretKeyRef" in env[var]["valueFrom"], var
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert "/docker-entrypoint-initdb.d" in mounts
    assert env["PGDATA"]["value"].startswith("/var/lib/postgresql/data/")


def test_database_is_reachable_through_the_network_policy(helm):
    """Every pod that holds a database URL is admitted by PostgreSQL's NetworkPolicy."""
    objects = render()
    policy = named(objects, "NetworkPolicy", f"{FULLNAME}-postgresql")
    peers = [p["podSelector"] for rule in policy["spec"]["ingress"] for p in rule["from"]]
    clients = [
        w
        for w in of_kind(objects, *WORKLOAD_KINDS)
        if any(
            e["name"] in ("MLFLOW_BACKEND_STORE_URI", "MODELFACTORY_PREDICTION_STORE_URL")
            for c in containers(pod_spec(w))
            for e in c.get("env", [])
        )
    ]
    assert len(clients) >= 3  # MLflow, its migration Job, serving
    for w in clients:
        assert any(selector_matches(p, pod_labels(w)) for p in peers), w["metadata"]["name"]
    # ...and nothing else is: the test Pod must not reach the database.
    test_pod = of_kind(objects, "Pod")[0]
    assert not any(selector_matches(p, pod_labels(test_pod)) for p in peers)


def test_helm_test_pod_checks_mlflow_and_every_model(helm):
    objects = render(VALUE_SETS["multi-model"])
    (pod,) = of_kind(objects, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    checks = yaml.safe_load(pod["spec"]["containers"][0]["command"][-1])
    urls = [u for _, u in checks]
    assert f"http://{FULLNAME}-mlflow:5000/health" in urls
    for model in ("bank-marketing", "store-sales"):
        assert f"http://{FULLNAME}-serving-{model}:3000/healthz" in urls
        assert f"http://{FULLNAME}-serving-{model}:3000/readyz" in urls  # requireServingReady
    # Every URL names a Service of the chart, on a port it exposes.
    services = {
        s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]}
        for s in of_kind(objects, "Service")
    }
    for url in urls:
        host, port = re.match(r"http://([^:/]+):(\d+)/", url).groups()
        assert int(port) in services[host], url


def test_schema_migration_runs_before_upgrades_and_before_the_server(helm):
    objects = render()
    job = named(objects, "Job", f"{FULLNAME}-mlflow-db-upgrade")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
    mlflow = named(objects, "Deployment", f"{FULLNAME}-mlflow")
    (init,) = pod_spec(mlflow)["initContainers"]
    assert '["mlflow", "db", "upgrade", url]' in init["command"][-1]
    assert mlflow["spec"]["strategy"]["type"] == "Recreate"  # RWO artifacts volume


def test_mlflow_accepts_its_service_names_as_host(helm):
    import fnmatch

    objects = render()
    mlflow = named(objects, "Deployment", f"{FULLNAME}-mlflow")
    allowed = _value(
        env_of(pod_spec(mlflow)["containers"][0]), "MLFLOW_SERVER_ALLOWED_HOSTS"
    ).split(",")
    for host in (
        f"{FULLNAME}-mlflow:5000",
        f"{FULLNAME}-mlflow.ml.svc.cluster.local:5000",
        "localhost:30500",
        "10.244.0.7:5000",
    ):
        assert any(fnmatch.fnmatch(host, pattern) for pattern in allowed), host
    assert "*" not in allowed
    assert not any(fnmatch.fnmatch("evil.example.com", pattern) for pattern in allowed)


def test_kind_node_ports_are_mapped_by_kind_config(helm):
    kind_config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    mapped = {
        m["containerPort"] for n in kind_config["nodes"] for m in n.get("extraPortMappings", [])
    }
    objects = render(VALUE_SETS["kind"])
    node_ports = {
        p["nodePort"]
        for s in of_kind(objects, "Service")
        for p in s["spec"]["ports"]
        if "nodePort" in p
    }
    assert node_ports == {30500, 30300, 30801}
    assert node_ports <= mapped, node_ports - mapped
    # The remaining mapping is the KFP UI, which kind-up.sh sets on KFP's own Service.
    (kfp_port,) = mapped - node_ports
    assert f'nodePort":{kfp_port}' in (REPO / "tools" / "kind-up.sh").read_text().replace(" ", "")
