"""The chart's whole life on the real node: the project's images imported into the node's
containerd (never pulled), ``helm install --wait`` of charts/modelfactory with
tests/node/values-node.yaml in a namespace that enforces Pod Security ``restricted``
(PostgreSQL on a local-path PVC, MLflow on it behind its basic-auth app, the operator in its
pod on the chart's RBAC, the serving Deployment it makes), a champion registered from the host
as the MLflow admin, the served model answering JSON, v2 REST and v2 gRPC through its Service on
127.0.0.1, ``helm test``, pods deleted, upgraded and rolled back under steady traffic, the
operator promoting a good challenger and rolling a bad one back from the pods' /metrics, and
``helm uninstall``.

The tests share one release (a module fixture installs it once) and run in file order; the last
one uninstalls it. Not covered here yet: NetworkPolicy enforcement (rendered and admitted; no
policy engine runs on this node, docs/adr/0010-real-node.md), a DriftMonitor's CronJob and its
Job, a PostgreSQL restart under logged predictions.
"""

from __future__ import annotations

import base64
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
    """Steady traffic through the Service while one of the two serving pods is deleted and its
    replacement starts: no request fails.
    Not covered: a node lost (one node), eviction through the PodDisruptionBudget's API."""
    namespace = release.namespace
    victim = _pods(real_node, namespace, SERVING)[0]["metadata"]["name"]

    def delete_one():
        real_node.cluster.kubectl("delete", "pod", victim, "-n", namespace, "--wait=true")
        _wait_serving(real_node, namespace, replicas=2)

    load = _under_load(served, "a serving pod was deleted", real_node, delete_one)
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
