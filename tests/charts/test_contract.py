"""The chart and the Python side agree: variable names, ports, URLs, Secret references."""

from __future__ import annotations

import re

import pytest
import yaml

from modelfactory.config import ENV_PREFIX, Settings, environment_names

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

SETTINGS_VARIABLES = environment_names()


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
    serving = defaults.serving
    assert _value(env, "MODELFACTORY_MODEL_NAME") == "bank-marketing"
    assert _value(env, "MODELFACTORY_MODEL_ALIAS") == serving.model_alias == "champion"
    assert _value(env, "MODELFACTORY_HTTP_PORT") == str(serving.http_port) == "3000"
    assert _value(env, "MODELFACTORY_GRPC_PORT") == str(serving.grpc_port) == "8001"
    assert _value(env, "MODELFACTORY_METRICS_PORT") == str(serving.metrics_port) == "8002"
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
    # The image's program picks the service per model (serving/__main__.py), as the image's
    # CMD does; a chart command naming one service would serve a forecaster as a classifier.
    assert c["command"][4:] == ["python3", "-m", "modelfactory_serving"] and "args" not in c
    # The serving Service exposes the three ports (metrics for the operator's analysis).
    svc = named(objects, "Service", f"{FULLNAME}-serving-bank-marketing")
    ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    assert ports == {"http": 3000, "grpc": 8001, "metrics": 8002}
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
                if var.startswith(ENV_PREFIX) and var not in SETTINGS_VARIABLES:
                    unknown.add(var)
    # ci/multi-model-values.yaml sets one on purpose through extraEnv.
    unknown.discard("MODELFACTORY_FEATURE_FLAG")
    assert not unknown, f"not fields of modelfactory.config.Settings: {sorted(unknown)}"


PASSWORDS_DIR = "/etc/modelfactory/db"


def _secret_volume_files(spec: dict) -> dict[str, tuple[str, str]]:
    """{file path in the container: (Secret name, key)} of the pod's db-passwords volume."""
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    secret = volumes["db-passwords"]["secret"]
    return {
        f"{PASSWORDS_DIR}/{item['path']}": (secret["secretName"], item["key"])
        for item in secret["items"]
    }


def _check_database_url(spec: dict, c: dict, url_var: str, user_host_db: tuple, secret, key):
    """The container gets the URL without its password and the password as a Secret file;
    its command prefix joins them under the name the program reads."""
    env = env_of(c)
    user, host, db = user_host_db
    assert _value(env, "DB_URL") == f"postgresql+psycopg://{user}@{host}:5432/{db}"
    password_file = _value(env, "DB_PASSWORD_FILE")
    assert _secret_volume_files(spec)[password_file] == (secret, key)
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts[PASSWORDS_DIR]["name"] == "db-passwords" and mounts[PASSWORDS_DIR]["readOnly"]
    assert c["command"][:2] == ["/bin/sh", "-ec"]
    assert f'export {url_var}="' in c["command"][2]
    assert url_var not in env, f"{url_var} must not be a pod-spec variable"


@pytest.mark.parametrize(
    "name, secret, keys",
    [
        ("defaults", f"{FULLNAME}-postgresql", ("mlflow-password", "predictions-password")),
        ("existing-secret", "my-modelfactory-db", ("mlflow", "predictions")),
    ],
)
def test_database_passwords_reach_containers_as_secret_files(helm, name, secret, keys):
    objects = render(VALUE_SETS[name])
    host = f"{FULLNAME}-postgresql"
    for d in _serving(objects):
        (c,) = pod_spec(d)["containers"]
        _check_database_url(
            pod_spec(d),
            c,
            "MODELFACTORY_PREDICTION_STORE_URL",
            ("predictions", host, "predictions"),
            secret,
            keys[1],
        )
    mlflow = named(objects, "Deployment", f"{FULLNAME}-mlflow")
    job = named(objects, "Job", f"{FULLNAME}-mlflow-db-upgrade")
    for w in (mlflow, job):
        for c in containers(pod_spec(w)):
            _check_database_url(
                pod_spec(w),
                c,
                "MLFLOW_BACKEND_STORE_URI",
                ("mlflow", host, "mlflow"),
                secret,
                keys[0],
            )


@pytest.mark.parametrize("name", VALUE_SETS)
def test_no_secret_is_an_environment_variable(helm, name):
    """Secrets are files (checkov CKV_K8S_35): an env value lands in the runtime's config."""
    for w in of_kind(render(VALUE_SETS[name]), *WORKLOAD_KINDS):
        for c in containers(pod_spec(w)):
            for e in c.get("env", []) + c.get("envFrom", []):
                assert "secretKeyRef" not in e.get("valueFrom", {}), (w["metadata"]["name"], e)
                assert "secretRef" not in e, (w["metadata"]["name"], e)


def _run_command_prefix(
    c: dict, tmp_path, password: str | None, program: list[str], mlflow_password: str | None = ""
):
    """Runs the container's /bin/sh prefix for real, with `program` in place of its own; the
    files its variables name are in ``tmp_path`` (``mlflow_password`` "": a valid one)."""
    import subprocess

    env = {k: v["value"] for k, v in env_of(c).items() if "value" in v}
    password_file = tmp_path / "password"
    if password is not None:
        password_file.write_text(password)
    env["DB_PASSWORD_FILE"] = str(password_file)
    if "MLFLOW_TRACKING_PASSWORD_FILE" in env:
        mlflow_file = tmp_path / "mlflow-password"
        mlflow_file.unlink(missing_ok=True)
        if mlflow_password is not None:
            mlflow_file.write_text(mlflow_password or "mlflow-account-password\n")
        env["MLFLOW_TRACKING_PASSWORD_FILE"] = str(mlflow_file)
    env["PATH"] = "/usr/bin:/bin"
    sh, flags, script, name = c["command"][:4]
    return subprocess.run(
        [sh, flags, script, name, *program], env=env, capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize(
    "workload, url_var, user",
    [
        ("mlflow", "MLFLOW_BACKEND_STORE_URI", "mlflow"),
        ("serving-bank-marketing", "MODELFACTORY_PREDICTION_STORE_URL", "predictions"),
    ],
)
def test_command_prefix_puts_the_password_file_into_the_url(
    helm, tmp_path, workload, url_var, user
):
    (deployment,) = [
        d
        for d in of_kind(render(), "Deployment")
        if d["metadata"]["name"] == f"{FULLNAME}-{workload}"
    ]
    c = pod_spec(deployment)["containers"][-1]
    show = [
        "/bin/sh",
        "-c",
        f'echo "${url_var}"; echo "args: $*"; env | grep -c s3cr3t || true',
        "program",
        "--flag",
    ]
    done = _run_command_prefix(c, tmp_path, "s3cr3t\n", show)
    assert done.returncode == 0, done.stderr
    url, args, env_hits = done.stdout.splitlines()
    assert url == f"postgresql+psycopg://{user}:s3cr3t@{FULLNAME}-postgresql:5432/{user}"
    assert args == "args: --flag"
    assert env_hits == "1", "the password is in the program's environment only inside the URL"
    # No trailing newline in the file (a user's Secret made with printf) reads the same.
    done = _run_command_prefix(c, tmp_path, "s3cr3t", show)
    assert done.stdout.splitlines()[0] == url
    # An empty or missing file stops the container with a message naming the file.
    for password in ("", None):
        (tmp_path / "password").unlink(missing_ok=True)
        done = _run_command_prefix(c, tmp_path, password, show)
        assert done.returncode != 0 and "password" in done.stderr, (password, done)


def test_generated_secret_is_kept_on_upgrade_and_uninstall(helm):
    objects = render()
    secret = named(objects, "Secret", f"{FULLNAME}-postgresql")
    assert secret["metadata"]["name"] == f"{FULLNAME}-postgresql"
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert set(secret["data"]) == {"postgres-password", "mlflow-password", "predictions-password"}
    assert all(len(v) >= 40 for v in secret["data"].values())  # base64 of 32 random characters
    # No cluster here, so lookup cannot be exercised: check that the template reuses what
    # lookup finds for every key, and only generates a value when there is none.
    source = (CHART / "templates" / "postgresql" / "secret.yaml").read_text()
    assert re.search(r'lookup "v1" "Secret" \.Release\.Namespace \$name', source)
    assert re.search(r"get \$previous \$key \| default \(randAlphaNum \d+ \| b64enc\)", source)


def _secret_references(w: dict) -> list[tuple[str, str]]:
    """(Secret name, key) of every Secret a workload's pods read (volumes and env)."""
    spec = pod_spec(w)
    refs = [
        (v["secret"]["secretName"], item["key"])
        for v in spec.get("volumes", [])
        if "secret" in v
        for item in v["secret"].get("items", [])
    ]
    for c in containers(spec):
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.append((ref["name"], ref["key"]))
    return refs


def test_every_secret_reference_resolves(helm):
    """Each Secret a pod reads is the chart's Secret with that key (or the user's Secret)."""
    for name in VALUE_SETS:
        objects = render(VALUE_SETS[name])
        secrets = {
            s["metadata"]["name"]: set(s.get("data", {})) for s in of_kind(objects, "Secret")
        }
        values = yaml.safe_load((CHART / "values.yaml").read_text())
        for f in VALUE_SETS[name]:
            override = yaml.safe_load(f.read_text()) or {}
            for part in ("postgresql", "mlflow"):
                auth = override.get(part, {}).get("auth", {})
                if auth.get("existingSecret"):
                    keys = {**values[part]["auth"]["secretKeys"], **auth.get("secretKeys", {})}
                    secrets[auth["existingSecret"]] = set(keys.values())
        for w in of_kind(objects, *WORKLOAD_KINDS):
            for secret, key in _secret_references(w):
                assert secret in secrets, f"{name}: {w['metadata']['name']} -> {secret}"
                assert key in secrets[secret], f"{name}: {w['metadata']['name']} -> {secret}/{key}"


def test_existing_secret_means_no_generated_secret(helm):
    objects = render(VALUE_SETS["existing-secret"])
    assert of_kind(objects, "Secret") == []
    workloads = of_kind(objects, *WORKLOAD_KINDS)
    refs = {secret for w in workloads for secret, _ in _secret_references(w)}
    assert refs == {"my-modelfactory-db", "my-modelfactory-mlflow"}


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
    # The superuser's password file for the image's entrypoint, the users' for the script.
    files = _secret_volume_files(pod_spec(sts))
    secret = f"{FULLNAME}-postgresql"
    assert files[_value(env, "POSTGRES_PASSWORD_FILE")] == (secret, "postgres-password")
    variables = re.findall(r'"\$(\w+_PASSWORD_FILE)"', script)
    assert sorted(files[_value(env, var)][1] for var in variables) == [
        "mlflow-password",
        "predictions-password",
    ]
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
        if any(e["name"] == "DB_URL" for c in containers(pod_spec(w)) for e in c.get("env", []))
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
    urls = [u for _, u, _, _ in checks]
    assert f"http://{FULLNAME}-mlflow:5000/health" in urls
    # The registry API refuses the test's anonymous call and answers the serving account's.
    api = f"http://{FULLNAME}-mlflow:5000/api/2.0/mlflow/registered-models/search?max_results=1"
    assert [(status, account) for _, u, status, account in checks if u == api] == [
        (401, False),
        (200, True),
    ]
    for model in ("bank-marketing", "store-sales"):
        # requireServingReady: each model answers through its Service.
        for route in ("healthz", "readyz"):
            url = f"http://{FULLNAME}-serving-{model}:3000/{route}"
            assert [(status, account) for _, u, status, account in checks if u == url] == [
                (200, False)
            ]
    # Every URL names a Service of the chart, on a port it exposes.
    services = {
        s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]}
        for s in of_kind(objects, "Service")
    }
    for url in urls:
        host, port = re.match(r"http://([^:/]+):(\d+)/", url).groups()
        assert int(port) in services[host], url


def test_helm_test_passes_before_any_model_is_registered(helm):
    """By default the test asks only that each model's Service exists: it routes to Ready pods
    only, and serving pods are Ready once a version holds the alias (after the first pipeline
    run), so a /healthz through it is refused on every fresh install."""
    (pod,) = of_kind(render(), "Pod")
    checks = yaml.safe_load(pod["spec"]["containers"][0]["command"][-1])
    serving = [(u, status) for _, u, status, _ in checks if "-serving-" in u]
    assert serving == [(f"http://{FULLNAME}-serving-bank-marketing:3000/healthz", "resolves")]


def test_schema_migration_runs_before_upgrades_and_before_the_server(helm):
    objects = render()
    job = named(objects, "Job", f"{FULLNAME}-mlflow-db-upgrade")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
    mlflow = named(objects, "Deployment", f"{FULLNAME}-mlflow")
    init, accounts = pod_spec(mlflow)["initContainers"]  # the schema, then the accounts in it
    assert 'commands.main(args=["upgrade", url]' in init["command"][-1]
    assert accounts["command"][4:8] == [
        "python3",
        "-m",
        "modelfactory.registry_access",
        "reconcile",
    ]
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


def test_serving_pods_drain_before_their_server_stops(helm):
    """A deleted or replaced serving pod answers on for serving.drainSeconds (a preStop sleep)
    while the Service takes it out of its endpoints; without it the real node's tier counted
    refused and reset requests during a pod deletion and a rolling update (docs/adr/0010)."""
    for sets, drain in (((), 10), (("serving.drainSeconds=0",), 0)):
        objects = render(sets=sets)
        model = named(objects, "ModelDeployment", f"{FULLNAME}-serving-bank-marketing")
        spec = model["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert spec["terminationGracePeriodSeconds"] == drain + 30
        if drain:
            assert container["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", "10"]}}}
        else:
            assert "lifecycle" not in container
