"""The chart's whole life on the real node: the project's images imported into the node's
containerd (never pulled), ``helm install --wait`` of charts/modelfactory with
tests/node/values-node.yaml in a namespace that enforces Pod Security ``restricted``
(PostgreSQL on a local-path PVC, MLflow on it behind its basic-auth app, the operator in its
pod on the chart's RBAC, the serving Deployment it makes), a champion registered from the host
as the MLflow admin, the served model answering JSON, v2 REST and v2 gRPC through its Service on
127.0.0.1, ``helm test``, pods deleted, upgraded and rolled back under steady traffic, the
operator promoting a good challenger and rolling a bad one back from the pods' /metrics, the
PostgreSQL pod restarted under traffic with every answered request's rows in the prediction log
(the serving pods' spools), a DriftMonitor's check run as a Job from its CronJob, and
``helm uninstall``.

The tests share one release (a module fixture installs it once) and run in file order; the last
one uninstalls it. Not covered here: NetworkPolicy enforcement. The chart's ten policies
(postgresql, mlflow, mlflow-accounts, mlflow-db-upgrade, serving, operator, operator-cleanup,
drift-monitor, rollout-replay, tests) are rendered and admitted and their selectors checked
offline (tests/charts/test_objects.py, test_contract.py), but no engine on this node enforces
them (kube-router v2.1.0, the only one served that runs here, has reported security flaws;
docs/adr/0010-real-node.md), so none is verified to let its own traffic through or refuse
the rest.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelfactory import __version__
from modelfactory.data.bank_marketing import FEATURES, generate_bank_marketing
from modelfactory.local.traffic import Load
from tests.cluster.helmrelease import eventually, uninstall_problems
from tests.support.real_node import NODE_BUILD, REPO, RealNode
from tests.support.serving import MODEL, train_version, triton_inputs

CHART = REPO / "charts" / "modelfactory"
VALUES = Path(__file__).with_name("values-node.yaml")
RELEASE = "mf"
FULLNAME = f"{RELEASE}-modelfactory"
COMPONENTS_IMAGE = f"modelfactory-components:{__version__}"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
INSTANCE = f"app.kubernetes.io/instance={RELEASE}"
SERVING = f"{INSTANCE},app.kubernetes.io/component=serving"
MLFLOW = f"{INSTANCE},app.kubernetes.io/component=mlflow"
SERVING_NAME = f"{FULLNAME}-serving-{MODEL}"
RATE = 20  # requests/s of the steady traffic while pods go


@dataclass
class Release:
    namespace: str
    mlflow_url: str  # MLflow's NodePort on 127.0.0.1
    admin: tuple[str, str]  # the admin account from the chart's generated Secret
    install_seconds: float


@dataclass
class Served:
    version: str  # the champion
    http_url: str  # the model's Service: its NodePorts on 127.0.0.1
    grpc_target: str
    ready_seconds: float  # from the alias set to every serving pod Ready


def _helm(node: RealNode, *args: str, timeout: float = 900, check: bool = True):
    return node.cluster.helm(*args, timeout=timeout, check=check)


def _install_args(namespace: str, *sets: str) -> list[str]:
    args = [RELEASE, str(CHART), "--namespace", namespace, "-f", str(VALUES)]
    for s in sets:
        args += ["--set", s]
    return [*args, "--wait", "--timeout", "10m"]


@pytest.fixture(scope="module")
def release(real_node: RealNode, serving_image: str) -> Iterator[Release]:
    """The chart installed once, with every image imported first."""
    real_node.import_images(COMPONENTS_IMAGE, serving_image)
    out = subprocess.run(
        ["bash", str(NODE_BUILD), "--out-dir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    real_node.node("import", str(Path(out) / "images" / "postgres.tar"))
    namespace = real_node.cluster.create_namespace("chart", labels=RESTRICTED)

    started = time.monotonic()
    installed = _helm(real_node, "install", *_install_args(namespace), check=False)
    seconds = time.monotonic() - started
    if installed.returncode != 0:
        raise AssertionError(
            f"helm install failed after {seconds:.0f}s: {installed.stderr[-2000:]}\n"
            + real_node.describe(namespace, INSTANCE)
        )
    real_node.timings["helm install --wait (PostgreSQL, MLflow, operator Ready)"] = seconds
    secret = real_node.cluster.get("secret", f"{FULLNAME}-mlflow-accounts", "-n", namespace)
    admin = ("admin", base64.b64decode(secret["data"]["admin-password"]).decode())
    url = real_node.node_port_url(f"{FULLNAME}-mlflow", namespace)
    yield Release(namespace, url, admin, seconds)


@pytest.fixture(scope="module")
def as_admin(release: Release) -> Iterator[None]:
    """MLflow calls of this process as the chart's admin (its password from the Secret)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_USERNAME", release.admin[0])
        patch.setenv("MLFLOW_TRACKING_PASSWORD", release.admin[1])
        yield


@pytest.fixture(scope="module")
def served(real_node: RealNode, release: Release, as_admin, tmp_path_factory) -> Served:
    """A champion trained on the host and registered through MLflow's Service; then every
    serving pod Ready with it loaded."""
    from modelfactory.registry import Registry

    version = train_version(release.mlflow_url, tmp_path_factory.mktemp("chart-train"), seed=1)
    started = time.monotonic()
    Registry(release.mlflow_url).set_alias(MODEL, "champion", version)
    _wait_serving(real_node, release.namespace, replicas=2)
    ready = time.monotonic() - started
    real_node.timings["serving pods Ready after the champion's alias was set"] = ready
    http = real_node.node_port_url(SERVING_NAME, release.namespace, "http")
    grpc = real_node.node_port_url(SERVING_NAME, release.namespace, "grpc")
    return Served(version, http, grpc.removeprefix("http://"), ready)


def _wait_serving(node: RealNode, namespace: str, replicas: int, timeout: float = 600) -> None:
    """Until the serving Deployment has ``replicas`` pods of its current template, all Ready,
    and no other pod."""
    deadline = time.monotonic() + timeout
    while True:
        deployment = node.cluster.get("deployment", SERVING_NAME, "-n", namespace)
        status = deployment.get("status", {})
        pods = node.cluster.get("pods", "-n", namespace, "-l", SERVING)["items"]
        if (
            status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]
            and status.get("updatedReplicas") == replicas
            and status.get("readyReplicas") == replicas
            and len(pods) == replicas
        ):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"serving not rolled out in {timeout:.0f}s: {status}\n"
                + node.describe(namespace, SERVING)
            )
        time.sleep(1)


def _records(n: int, seed: int = 5) -> list[dict]:
    return generate_bank_marketing(n, seed=seed)[list(FEATURES)].to_dict(orient="records")


def _pods(node: RealNode, namespace: str, selector: str) -> list[dict]:
    return node.cluster.get("pods", "-n", namespace, "-l", selector)["items"]


def test_helm_install_runs_every_pod_ready_under_pod_security_restricted(
    real_node: RealNode, release: Release
):
    """Every pod of the release runs on the node, Ready by its own probes, as the restricted
    profile demands; PostgreSQL's data is on a provisioned volume, written as uid 999.
    Not covered: more than one node (spread, anti-affinity), StorageClasses but local-path."""
    namespace = release.namespace
    labels = real_node.cluster.get("namespace", namespace)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = _pods(real_node, namespace, INSTANCE)
    components = {p["metadata"]["labels"]["app.kubernetes.io/component"] for p in pods}
    assert {"postgresql", "mlflow", "operator"} <= components, components
    for pod in pods:
        name = pod["metadata"]["name"]
        if pod["metadata"]["labels"]["app.kubernetes.io/component"] == "serving":
            continue  # not Ready until a champion exists (the next tests)
        assert pod["spec"]["nodeName"] == real_node.name
        conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert conditions["Ready"] == "True", (name, pod["status"])
        for container in pod["status"]["containerStatuses"]:
            assert container["ready"] and container["restartCount"] == 0, (name, container)
        for container in pod["status"].get("initContainerStatuses", []):
            assert container["state"]["terminated"]["exitCode"] == 0, (name, container)
    # The serving Deployment exists: the operator, in its pod, made it from the ModelDeployment.
    assert real_node.cluster.get("deployment", SERVING_NAME, "-n", namespace)

    claim = real_node.cluster.get("pvc", f"data-{FULLNAME}-postgresql-0", "-n", namespace)
    assert claim["status"]["phase"] == "Bound"
    volume = real_node.cluster.get("pv", claim["spec"]["volumeName"])
    path = Path((volume["spec"].get("hostPath") or volume["spec"].get("local"))["path"])
    assert path.is_relative_to(real_node.state_dir / "node" / "local-path"), volume["spec"]
    assert (path / "pgdata" / "PG_VERSION").read_text().strip() == "15"
    assert (path / "pgdata").stat().st_uid == 999


def _helm_test(node: RealNode, namespace: str, what: str) -> None:
    started = time.monotonic()
    done = _helm(node, "test", RELEASE, "-n", namespace, "--timeout", "5m", check=False)
    node.timings[f"helm test {what}"] = time.monotonic() - started
    assert done.returncode == 0, (
        done.stdout[-2000:]
        + done.stderr[-2000:]
        + node.describe(namespace, f"{INSTANCE},app.kubernetes.io/component=tests")
    )
    assert "Phase:          Succeeded" in done.stdout, done.stdout


def test_helm_test_passes_before_any_model_is_registered(real_node: RealNode, release: Release):
    """`helm test` right after the install, as NOTES tell a user: its pod, as the serving
    account, finds MLflow healthy and refusing anonymous callers, and the model's Service made.
    Not covered: what the test pod prints (Helm deletes it on success)."""
    _helm_test(real_node, release.namespace, "before a model")


def test_mlflow_asks_for_an_account_and_lets_the_admin_in(release: Release):
    """Through MLflow's Service on 127.0.0.1: 401 without an account, 200 as the admin whose
    password the chart generated, 403 for the serving account's write.
    Not covered: rotating a password (a changed Secret and `helm upgrade`)."""
    api = f"{release.mlflow_url}/api/2.0/mlflow/registered-models/search"
    assert httpx.get(f"{release.mlflow_url}/health", timeout=10).status_code == 200
    assert httpx.get(api, params={"max_results": 1}, timeout=10).status_code == 401
    admin = httpx.get(api, params={"max_results": 1}, auth=release.admin, timeout=10)
    assert admin.status_code == 200, admin.text


def test_the_champion_answers_json_v2_rest_and_v2_grpc_through_its_service(served: Served):
    """The serving pods loaded the champion registered from the host; the Service answers the
    JSON route, v2 REST and v2 gRPC (tritonclient) on its NodePorts, and they agree.
    Not covered: TLS, a client outside this machine, the serving token (not set by the chart)."""
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    records = _records(4)
    answer = httpx.post(f"{served.http_url}/predict", json={"records": records}, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == MODEL and body["model_version"] == str(served.version)
    expected = np.array([p["probability"] for p in body["predictions"]])

    http = httpclient.InferenceServerClient(served.http_url.removeprefix("http://"))
    assert http.is_server_ready() and http.is_model_ready(MODEL)
    result = http.infer(MODEL, triton_inputs(httpclient, records))
    np.testing.assert_allclose(result.as_numpy("probability"), expected)

    grpc = grpcclient.InferenceServerClient(served.grpc_target)
    assert grpc.is_server_ready() and grpc.is_model_ready(MODEL)
    result = grpc.infer(MODEL, triton_inputs(grpcclient, records))
    np.testing.assert_allclose(result.as_numpy("probability"), expected)
    assert result.get_response().model_version == str(served.version)


def _under_load(served: Served, what: str, node: RealNode, action) -> Load:
    started = time.monotonic()
    with Load(served.http_url, rate=RATE) as load:
        time.sleep(3)  # traffic flows before the disruption
        action()
        time.sleep(3)
    node.timings[
        f"{what} ({load.answers} requests through the Service, {load.failures} failed)"
    ] = time.monotonic() - started
    return load


def test_a_deleted_serving_pod_loses_no_request(
    real_node: RealNode, release: Release, served: Served
):
    """Steady traffic through the Service while each of the two serving pods in turn is deleted
    and its replacement starts: no request fails. Both go, one after the other, because the
    client's one keep-alive connection carries all its requests to one of them.
    Not covered: a node lost (one node), eviction through the PodDisruptionBudget's API."""
    namespace = release.namespace
    victims = [p["metadata"]["name"] for p in _pods(real_node, namespace, SERVING)]

    def delete_each():
        for victim in victims:
            real_node.cluster.kubectl("delete", "pod", victim, "-n", namespace, "--wait=true")
            _wait_serving(real_node, namespace, replicas=2)

    load = _under_load(served, "each serving pod deleted in turn", real_node, delete_each)
    assert load.answers > RATE * 5
    assert load.failures == 0, f"{load.failures} of {load.answers} requests failed: {load.errors}"


def test_a_rolling_upgrade_of_serving_loses_no_request(
    real_node: RealNode, release: Release, served: Served
):
    """`helm upgrade` changing the serving pods' annotations (the operator rolls the Deployment
    out, one new pod Ready before an old one goes) under steady traffic: no request fails, and
    the upgrade's hook Jobs (schema migration, accounts) run.
    Not covered: an upgrade to a new image (one image per run), `helm rollback`."""
    namespace = release.namespace
    before = {p["metadata"]["name"] for p in _pods(real_node, namespace, SERVING)}

    def upgrade():
        _helm(
            real_node,
            "upgrade",
            *_install_args(
                namespace,
                f"serving.podAnnotations.modelfactory\\.io/rolled={time.time()}",
                "tests.requireServingReady=true",  # for the next test
            ),
        )
        _wait_serving(real_node, namespace, replicas=2)

    load = _under_load(served, "helm upgrade rolled serving", real_node, upgrade)
    after = {p["metadata"]["name"] for p in _pods(real_node, namespace, SERVING)}
    assert not before & after, "the serving pods were not replaced"
    assert load.answers > RATE * 5
    assert load.failures == 0, f"{load.failures} of {load.answers} requests failed: {load.errors}"


def test_helm_test_finds_the_model_ready_through_its_service(
    real_node: RealNode, release: Release, served: Served
):
    """`helm test` with tests.requireServingReady (set by the upgrade): the model answers
    /healthz and /readyz through its Service's DNS name from the test pod.
    Not covered: what the test pod prints (Helm deletes it on success)."""
    _helm_test(real_node, release.namespace, "with the model Ready")


def test_helm_rollback_to_the_install_loses_no_request(
    real_node: RealNode, release: Release, served: Served
):
    """`helm rollback` to the install's revision under steady traffic: the ModelDeployment gets
    its first template back, the operator rolls the serving pods to it, no request fails.
    Not covered: a rollback across an MLflow schema migration (one image per run)."""
    namespace = release.namespace
    before = {p["metadata"]["name"] for p in _pods(real_node, namespace, SERVING)}

    def rollback():
        _helm(real_node, "rollback", RELEASE, "1", "-n", namespace, "--wait", "--timeout", "10m")
        _wait_serving(real_node, namespace, replicas=2)

    load = _under_load(served, "helm rollback rolled serving back", real_node, rollback)
    pods = _pods(real_node, namespace, SERVING)
    assert not before & {p["metadata"]["name"] for p in pods}, "the serving pods were not replaced"
    for pod in pods:
        assert "modelfactory.io/rolled" not in (pod["metadata"].get("annotations") or {})
    assert load.failures == 0, f"{load.failures} of {load.answers} requests failed: {load.errors}"


def test_serving_keeps_answering_while_mlflow_is_gone(
    real_node: RealNode, release: Release, served: Served
):
    """The MLflow pod deleted under steady traffic: serving answers from what it loaded; the new
    MLflow pod (its init containers migrate and reconcile again) serves the same registry.
    Not covered: a new champion picked up while MLflow was down (nothing can be registered)."""
    namespace = release.namespace
    victim = _pods(real_node, namespace, MLFLOW)[0]["metadata"]["name"]

    def restart_mlflow():
        real_node.cluster.kubectl("delete", "pod", victim, "-n", namespace, "--wait=true")
        real_node.wait_ready(namespace, MLFLOW, timeout=300)

    load = _under_load(served, "the MLflow pod was replaced", real_node, restart_mlflow)
    assert load.failures == 0, f"{load.failures} of {load.answers} requests failed: {load.errors}"
    from modelfactory.registry import Registry

    champion = Registry(release.mlflow_url).client.get_model_version_by_alias(MODEL, "champion")
    assert champion.version == str(served.version)


def _rollout_of(node: RealNode, namespace: str, version: str, timeout: float = 300) -> dict:
    """The ModelDeployment's status once the rollout of ``version`` ended (its history entry)."""
    deadline = time.monotonic() + timeout
    while True:
        status = node.cluster.get("mdep", SERVING_NAME, "-n", namespace).get("status", {})
        ended = [h for h in status.get("history") or [] if h["version"] == version]
        if ended:
            return {**status, "ended": ended[0]}
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the rollout of v{version} did not end in {timeout:.0f}s: {status}"
            )
        time.sleep(1)


def test_the_operator_promotes_a_good_challenger_judged_from_the_pods_metrics(
    real_node: RealNode, release: Release, served: Served, tmp_path
):
    """A better version registered for a rollout (the gate leaves the champion alone) under
    steady traffic: the operator, in its pod on the chart's RBAC, reads both serving pods'
    /metrics, moves the weight 50 -> 100 and promotes it; no request fails on the way.
    Not covered: shadow steps and Prometheus analyses (the node's values use neither)."""
    from modelfactory.registry import CHAMPION, Registry

    registry = Registry(release.mlflow_url)
    champion = str(registry.version_by_alias(MODEL, CHAMPION).version)
    with Load(served.http_url, rate=RATE) as load:
        started = time.monotonic()
        challenger = train_version(release.mlflow_url, tmp_path, seed=2, promotion="rollout")
        assert str(registry.version_by_alias(MODEL, CHAMPION).version) == champion
        status = _rollout_of(real_node, release.namespace, challenger)
    real_node.timings[
        f"a challenger trained, registered, rolled out in 2 judged steps and promoted "
        f"({load.answers} requests through the Service, {load.failures} failed)"
    ] = time.monotonic() - started
    assert status["ended"]["outcome"] == "promoted", status["ended"]
    assert status["phase"] == "Healthy"
    assert status["champion"] == challenger
    assert str(registry.version_by_alias(MODEL, CHAMPION).version) == challenger
    assert load.failures == 0, f"{load.failures} of {load.answers} requests failed: {load.errors}"
    answer = httpx.post(f"{served.http_url}/predict", json={"records": _records(2)}, timeout=30)
    assert answer.json()["model_version"] == challenger


def test_the_operator_rolls_a_disagreeing_challenger_back(
    real_node: RealNode, release: Release, served: Served, tmp_path
):
    """A challenger trained on flipped labels, set as challenger by hand: the first analysis
    finds its answers disagree with the champion's, the operator rolls it back (alias removed,
    weight 0) and the champion keeps answering; no request fails.
    Not covered: a rollback on latency or errors (this challenger is only wrong)."""
    from modelfactory.registry import CHALLENGER, CHAMPION, Registry

    registry = Registry(release.mlflow_url)
    champion = str(registry.version_by_alias(MODEL, CHAMPION).version)
    bad = train_version(release.mlflow_url, tmp_path, seed=3, flip_labels=True, promotion="rollout")
    assert registry.version_by_alias(MODEL, CHALLENGER) is None  # the gate refused it
    with Load(served.http_url, rate=RATE) as load:
        started = time.monotonic()
        registry.set_alias(MODEL, CHALLENGER, bad)  # as a person forcing it out would
        status = _rollout_of(real_node, release.namespace, bad)
    real_node.timings[
        f"a disagreeing challenger rolled back ({load.answers} requests, {load.failures} failed)"
    ] = time.monotonic() - started
    assert status["ended"]["outcome"] == "rolled-back", status["ended"]
    assert status["phase"] == "Degraded" and "agreement" in status["ended"]["reason"]
    assert status["champion"] == champion
    assert str(registry.version_by_alias(MODEL, CHAMPION).version) == champion
    assert registry.version_by_alias(MODEL, CHALLENGER) is None
    assert load.failures == 0, f"{load.failures} of {load.answers} requests failed: {load.errors}"


POSTGRESQL = f"{INSTANCE},app.kubernetes.io/component=postgresql"
POSTGRESQL_POD = f"{FULLNAME}-postgresql-0"
ROWS_PER_REQUEST = 2  # Load posts two records; the prediction log keeps a row per record


def _predictions_sql(node: RealNode, namespace: str, query: str) -> str:
    """``query`` in the prediction store, run by psql in the PostgreSQL pod as the chart's
    predictions user (its password from the file the pod mounts)."""
    done = node.exec(
        namespace,
        POSTGRESQL_POD,
        "sh",
        "-c",
        'PGPASSWORD="$(cat "$PREDICTIONS_DB_PASSWORD_FILE")" exec psql -h 127.0.0.1 '
        '-U predictions -d predictions -v ON_ERROR_STOP=1 -tAc "$0"',
        query,
        check=False,
    )
    assert done.returncode == 0, f"psql {query!r}: {done.stderr[-1000:]}"
    return done.stdout.strip()


def _logged_rows(node: RealNode, namespace: str, since: dt.datetime | None = None) -> int:
    """Rows of the served model in the prediction log (created at or after ``since``)."""
    query = f"select count(*) from predictions where model_name = '{MODEL}' and role = 'served'"
    if since is not None:
        query += f" and created_at >= '{since.isoformat()}'"
    return int(_predictions_sql(node, namespace, query))


def _log_metrics(node: RealNode, namespace: str) -> dict[str, float]:
    """The prediction log's counters and spool gauges, summed over the serving pods' /metrics
    (read in each pod: the metrics port is not on the Service)."""
    read = (
        "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
        "'http://127.0.0.1:8002/metrics', timeout=10).read().decode())"
    )
    totals: dict[str, float] = {}
    for pod in _pods(node, namespace, SERVING):
        text = node.exec(namespace, pod["metadata"]["name"], "python3", "-c", read).stdout
        for line in text.splitlines():
            if line.startswith("modelfactory_prediction_log_") and not line.startswith("#"):
                sample, value = line.rsplit(" ", 1)
                if sample.endswith("_created") or "_created{" in sample:
                    continue
                totals[sample] = totals.get(sample, 0.0) + float(value)
    return totals


def _spooled(metrics: dict[str, float]) -> float:
    return metrics.get("modelfactory_prediction_log_spool_rows", 0.0)


def _dropped(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Rows dropped between two readings, by reason (``modelfactory_prediction_log_dropped``)."""
    prefix = "modelfactory_prediction_log_dropped_total"
    return {
        sample.removeprefix(prefix): value - before.get(sample, 0.0)
        for sample, value in after.items()
        if sample.startswith(prefix) and value - before.get(sample, 0.0)
    }


STORE_FAILING = re.compile(r"prediction store \S+ does not take rows \((.*?)\); \d+ rows")
STORE_BACK = re.compile(r"prediction store \S+ is back after (\d+) s; draining (\d+) spooled rows")


def _writers_said(node: RealNode, namespace: str, since: dt.datetime) -> tuple[list, list[str]]:
    """What the serving pods' prediction log writers logged since ``since``: when the store took
    rows again, (seconds it failed, rows then waiting on the spool) per writer, and why it did
    not take them before (each writer's first warnings)."""
    back, failing = [], []
    for pod in _pods(node, namespace, SERVING):
        logs = node.cluster.kubectl(
            "logs",
            "-n",
            namespace,
            pod["metadata"]["name"],
            f"--since-time={since.strftime('%Y-%m-%dT%H:%M:%SZ')}",
        ).stdout
        back += [(int(a), int(b)) for a, b in STORE_BACK.findall(logs)]
        failing += [why[:200] for why in STORE_FAILING.findall(logs)]
    return back, failing


def test_postgresql_restarted_under_traffic_loses_no_logged_prediction(
    real_node: RealNode, release: Release, served: Served
):
    """The PostgreSQL pod deleted under steady traffic (the StatefulSet starts it again on its
    volume): no request fails, and every answered request's rows reach the prediction log once
    PostgreSQL is back, through each serving worker's spool (docs/adr/0013); none twice.
    Not covered: the serving pods replaced while PostgreSQL is down (their emptyDir spools go
    with them), a spool reaching its bound."""
    namespace = release.namespace
    old = real_node.cluster.get("pod", POSTGRESQL_POD, "-n", namespace)["metadata"]["uid"]
    before = _log_metrics(real_node, namespace)
    window_start = dt.datetime.now(dt.UTC)
    outage: dict[str, float] = {}

    def restart_postgresql():
        started = time.monotonic()
        real_node.cluster.kubectl("delete", "pod", POSTGRESQL_POD, "-n", namespace, "--wait=true")
        outage["gone"] = time.monotonic() - started
        real_node.wait_ready(namespace, POSTGRESQL, timeout=300)
        outage["back"] = time.monotonic() - started

    with Load(served.http_url, rate=RATE) as load:
        time.sleep(3)  # rows flow into the store before it goes
        restart_postgresql()
        time.sleep(5)  # and after it is back, beside the spooled ones draining
    answered = load.answers - load.failures
    expected = answered * ROWS_PER_REQUEST
    assert real_node.cluster.get("pod", POSTGRESQL_POD, "-n", namespace)["metadata"]["uid"] != old
    assert load.failures == 0, f"{load.failures} of {load.answers} requests failed: {load.errors}"

    drained = time.monotonic()
    deadline = drained + 90
    while True:  # the spools drain at the writers' pace (retries back off to 5 s)
        logged = _logged_rows(real_node, namespace, since=window_start)
        after = _log_metrics(real_node, namespace)
        if logged >= expected and not _spooled(after) or time.monotonic() > deadline:
            break
        time.sleep(2)
    drained = time.monotonic() - drained
    real_node.wait_ready(namespace, MLFLOW, timeout=300)  # MLflow's database was gone too
    dropped = _dropped(before, after)
    back, failing = _writers_said(real_node, namespace, window_start)
    real_node.timings[
        f"the PostgreSQL pod deleted under traffic, until Ready again ({load.answers} requests, "
        f"{load.failures} failed; {logged} of {expected} rows logged, {drained:.0f}s after the "
        f"traffic stopped; dropped: {dropped or 'none'}; the old pod gone in "
        f"{outage['gone']:.0f}s; the writers failing {[b[0] for b in back]}s ({failing}), then "
        f"draining {[b[1] for b in back]} spooled rows)"
    ] = outage["back"]
    assert logged == expected, (
        f"{logged} rows in the prediction log for {answered} answered requests "
        f"({expected} rows): "
        + (f"{expected - logged} lost" if logged < expected else f"{logged - expected} twice")
        + "; the serving pods counted as dropped "
        f"{dropped or 'none'}, still spooled {_spooled(after):.0f} "
        f"(PostgreSQL was Ready again {outage['back']:.0f}s after its deletion)\n"
        + real_node.describe(namespace, SERVING)
    )
    assert not dropped, f"rows dropped by reason: {dropped}"
    # The outage reached the prediction log: its writers failed, spooled, and drained.
    assert back, "no serving pod's writer logged the store back\n" + real_node.describe(
        namespace, SERVING
    )


def _drift_monitor(name: str) -> dict:
    return {
        "apiVersion": "modelfactory.io/v1alpha1",
        "kind": "DriftMonitor",
        "metadata": {"name": name},
        "spec": {
            "model": MODEL,
            # Never on its own during the test: the test starts its Job from the CronJob.
            "schedule": "0 0 1 1 *",
            "window": {"since": "6h"},  # every row this run logged
            "minRows": 50,
            "retrain": {"enabled": False},  # a drifted window is an alert, not a training run
            "activeDeadlineSeconds": 600,
        },
    }


def _finished_job(node: RealNode, namespace: str, job: str, timeout: float) -> dict:
    """The Job once it completed; its pod's events and logs when it failed or ran too long."""
    selector = f"job-name={job}"
    deadline = time.monotonic() + timeout
    while True:
        found = node.cluster.get("job", job, "-n", namespace)
        conditions = {c["type"]: c for c in found.get("status", {}).get("conditions", []) or []}
        if conditions.get("Complete", {}).get("status") == "True":
            return found
        failed = conditions.get("Failed", {}).get("status") == "True"
        if failed or time.monotonic() > deadline:
            raise AssertionError(
                f"Job {job} {'failed' if failed else f'not complete in {timeout:.0f}s'}: "
                f"{found.get('status')}\n" + node.describe(namespace, selector)
            )
        time.sleep(1)


def _printed_result(logs: str) -> dict:
    """The result a check prints as its last line of stdout (its logs also hold stderr)."""
    for line in reversed(logs.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise AssertionError(f"the check printed no result:\n{logs[-3000:]}")


def _check_in_a_pod(real_node: RealNode, release: Release, name: str, cron: str) -> None:
    """The DriftMonitor ``name``'s CronJob made; a Job from it runs one check; what it wrote."""
    from modelfactory.registry import CHAMPION, Registry

    namespace = release.namespace

    def cron_job_made() -> list[str]:
        found = real_node.cluster.kubectl("get", "cronjob", cron, "-n", namespace, check=False)
        return [] if found.returncode == 0 else [found.stderr.strip()]

    eventually(cron_job_made, 60, f"the operator's CronJob {cron}")

    # Every row logged so far is in the store: nothing waits on a spool.
    def spooled() -> list[str]:
        rows = _spooled(_log_metrics(real_node, namespace))
        return [f"{rows:.0f} rows still spooled"] if rows else []

    eventually(spooled, 90, "the prediction log drained")
    logged = _logged_rows(real_node, namespace)
    champion = str(Registry(release.mlflow_url).version_by_alias(MODEL, CHAMPION).version)

    job = f"{name}-now"
    started = time.monotonic()
    real_node.cluster.kubectl("create", "job", job, f"--from=cronjob/{cron}", "-n", namespace)
    _finished_job(real_node, namespace, job, timeout=300)
    seconds = time.monotonic() - started
    pods = real_node.cluster.get("pods", "-n", namespace, "-l", f"job-name={job}")["items"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    pod = pods[0]
    assert pod["spec"]["nodeName"] == real_node.name
    assert pod["spec"]["serviceAccountName"] == f"{name}-drift-monitor"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    (check,) = pod["status"]["containerStatuses"]
    assert check["image"].endswith(COMPONENTS_IMAGE), check["image"]
    assert check["state"]["terminated"]["exitCode"] == 0, check

    status = real_node.cluster.get("dmon", name, "-n", namespace)["status"]
    result = status["lastResult"]
    real_node.timings[
        f"a DriftMonitor's check Job ({result['rows']} rows, decision {result['decision']}, "
        f"drifted share {result.get('driftedShare')}) from creation to Complete"
    ] = seconds
    problem = f"{status}\n" + real_node.describe(namespace, f"job-name={job}")
    assert status["model"] == MODEL, problem
    assert result["rows"] == logged, problem  # the check read every logged row
    assert result["championVersion"] == champion, problem
    # Rows enough to compare, no retrain: no drift, or drift waiting for a second check.
    assert result["decision"] in ("no_drift", "drift_pending"), problem
    assert isinstance(result["driftedShare"], float | int), problem
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Checked"]["status"] == "True", problem
    assert conditions["Scheduled"]["status"] == "True", problem  # the operator's stays
    assert status["lastCheck"], problem

    # The check's MLflow run, as the admin sees it: what it read and decided, and its report.
    printed = real_node.cluster.kubectl("logs", "-n", namespace, f"job/{job}").stdout
    said = _printed_result(printed)
    client = Registry(release.mlflow_url).client
    experiment = client.get_experiment_by_name(f"monitoring/{MODEL}")
    assert experiment is not None, "no monitoring experiment in MLflow"
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [said["mlflowRunId"]], (said, runs)
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["monitoring.rows"] == str(logged)
    assert run.data.tags["monitoring.decision"] == result["decision"]
    assert run.data.tags["monitoring.champion_version"] == champion
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"check.json", "drift_report.html"} <= artifacts, artifacts
    assert f"run_uuid={run.info.run_id}" in result["reportUrl"]


def test_a_driftmonitors_cronjob_runs_a_check_of_the_prediction_log_in_a_pod(
    real_node: RealNode, release: Release, served: Served, as_admin
):
    """A DriftMonitor applied by hand: the operator makes its CronJob, a Job started from it
    (as `kubectl create job --from=cronjob/...` does) runs the check in a pod on the node, as the
    monitor's ServiceAccount under Pod Security restricted; the check reads every row this run
    logged from the chart's PostgreSQL, compares them with the champion's training data from
    MLflow, writes its decision into the monitor's status and records itself as an MLflow run.
    Not covered: the schedule firing on its own (the kwok tier's controller manager starts it),
    a retraining run (no KFP here; retrain is off), NetworkPolicy enforcement."""
    namespace, name = release.namespace, "bank-drift"
    real_node.cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=json.dumps(_drift_monitor(name))
    )
    cron = f"{name}-drift"
    try:
        _check_in_a_pod(real_node, release, name, cron)
    finally:  # the uninstall test after this one expects only the release's objects
        real_node.cluster.kubectl("delete", "dmon", name, "-n", namespace, "--ignore-not-found")

    def collected() -> list[str]:
        left = real_node.cluster.get(
            "cronjobs,jobs,pods,serviceaccounts,roles,rolebindings",
            "-n",
            namespace,
            "-l",
            f"modelfactory.io/driftmonitor={name}",
        )["items"]
        return [f"{o['kind']} {o['metadata']['name']}" for o in left]

    # Its CronJob, Jobs, pods and identity are the monitor's: they go with it.
    eventually(collected, 120, "the DriftMonitor's objects collected")


def test_helm_uninstall_leaves_only_what_is_kept_on_purpose(real_node: RealNode, release: Release):
    """`helm uninstall --wait`: the pre-delete hook's Job runs for real and the operator
    finalizes the ModelDeployment; every pod goes; what stays is the two kept Secrets, the
    artifacts PVC (resource-policy keep) and the database's PVC (StatefulSets keep their claims),
    with the data on its volume, and the CRDs (Helm never deletes crds/).
    Not covered: reinstalling onto the kept volumes."""
    namespace = release.namespace
    started = time.monotonic()
    _helm(real_node, "uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "5m")
    real_node.timings["helm uninstall --wait"] = time.monotonic() - started
    eventually(
        lambda: uninstall_problems(real_node.cluster, namespace, FULLNAME),
        180,
        "an uninstalled release",
    )
    # The database's files are still on the node's disk, under the kept claim's volume.
    claim = real_node.cluster.get("pvc", f"data-{FULLNAME}-postgresql-0", "-n", namespace)
    volume = real_node.cluster.get("pv", claim["spec"]["volumeName"])
    path = Path((volume["spec"].get("hostPath") or volume["spec"].get("local"))["path"])
    assert (path / "pgdata" / "PG_VERSION").read_text().strip() == "15"
    for crd in ("modeldeployments.modelfactory.io", "driftmonitors.modelfactory.io"):
        assert real_node.cluster.get("crd", crd)
