"""Fixtures of the cluster suite: a Kubernetes API to test against, and the tools to drive it.

Which cluster the suite uses:

* ``MODELFACTORY_KUBECONFIG`` unset (``make test``, CI): a local control plane started for
  the session by ``tools/control-plane.sh`` (etcd, kube-apiserver, kube-controller-manager,
  kube-scheduler and two kwok nodes; binaries from ``make k8s-tools``) and stopped at its
  end. Its API, admission, RBAC and controllers are real; kwok stands in for the kubelet, so
  no container ever runs.
* ``MODELFACTORY_KUBECONFIG=<path>``: the cluster that kubeconfig names (its current
  context), e.g. kind after ``make kind-up`` (``make kind-e2e`` sets it), or a control plane
  left running by ``make control-plane-up``. It is used as it is and never torn down.

``KUBECONFIG`` alone is not enough on purpose: ``make test`` must not install charts into
whatever cluster a shell happens to point at. Nothing here skips for want of a cluster: a
control plane that does not start, or a named cluster that does not answer, is an error.

kind-only settings (defaults from tools/kind-up.sh), read by test_kind_e2e.py:
  MODELFACTORY_E2E_NAMESPACE  (modelfactory)   namespace of the chart's release
  MODELFACTORY_E2E_RELEASE    (modelfactory)   Helm release name
  MODELFACTORY_E2E_KFP_HOST   (http://localhost:30080, else a port-forward to
                               kubeflow/ml-pipeline-ui)  Kubeflow Pipelines UI/API
  MODELFACTORY_E2E_MODEL      (bank-marketing) the served model
Services are reached on their kind NodePorts (kind-config.yaml maps them to
127.0.0.1) when those answer, else through ``kubectl port-forward``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
CONTROL_PLANE = REPO / "tools" / "control-plane.sh"
KUBECONFIG_ENV = "MODELFACTORY_KUBECONFIG"
NAMESPACE = os.environ.get("MODELFACTORY_E2E_NAMESPACE", "modelfactory")
RELEASE = os.environ.get("MODELFACTORY_E2E_RELEASE", "modelfactory")
# The chart's object prefix: the release name alone when it contains "modelfactory".
FULLNAME = RELEASE if "modelfactory" in RELEASE else f"{RELEASE}-modelfactory"
MODEL = os.environ.get("MODELFACTORY_E2E_MODEL", "bank-marketing")
KFP_NAMESPACE = "kubeflow"
KFP_HOST = os.environ.get("MODELFACTORY_E2E_KFP_HOST", "")
KFP_NODE_URL = "http://localhost:30080"

# What the local control plane cannot show; every test on it names the part it touches.
NOT_COVERED_LOCALLY = (
    "images are never pulled or run (kwok marks pods Running/Ready), so probes, networking, "
    "DNS, NetworkPolicy enforcement and volume contents are not exercised"
)


def tool(name: str) -> str:
    """A CLI from .tools/bin (tools/install-tools.sh) or PATH."""
    local = REPO / ".tools" / "bin" / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found in .tools/bin or on PATH: run `make tools`", pytrace=False)
    return found


def k8s_bin_dir() -> Path:
    """Where tools/k8s/build.sh puts (or would put) the control plane's binaries."""
    out = subprocess.run(
        ["bash", str(REPO / "tools" / "k8s" / "build.sh"), "--bin-dir"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return Path(out.stdout.strip())


@dataclass
class Cluster:
    """The cluster under test and the CLIs pointed at it."""

    kubeconfig: Path
    local: bool  # the control plane this session started
    kubectl_path: str
    helm_path: str
    server_version: str = ""
    fake_nodes: bool = False  # every node is kwok's: pods turn Ready, no container ever runs
    start_seconds: float | None = None  # how long the local control plane took to come up
    state_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return "local control plane" if self.local else f"the cluster in {self.kubeconfig}"

    def run(
        self,
        command: list[str],
        *,
        input: str | None = None,
        timeout: float = 300,
        check: bool = True,
    ) -> subprocess.CompletedProcess:
        done = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, env=self.env
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(command[:6])} ... exited {done.returncode}:\n{done.stderr[-3000:]}"
            )
        return done

    def kubectl(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run([self.kubectl_path, "--kubeconfig", str(self.kubeconfig), *args], **kw)

    def helm(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run([self.helm_path, "--kubeconfig", str(self.kubeconfig), *args], **kw)

    def get(self, *args: str) -> dict:
        """``kubectl get ... -o json`` as a dict."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def create_namespace(self, prefix: str, labels: dict[str, str] | None = None) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        manifest = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {"modelfactory.io/test": "cluster", **(labels or {})},
            },
        }
        self.kubectl("create", "-f", "-", input=json.dumps(manifest))
        return name

    def delete_namespace(self, name: str) -> None:
        # Not waited for: the namespace controller finishes in the background.
        self.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


def _start_local_control_plane(state_dir: Path) -> tuple[Path, float]:
    bin_dir = k8s_bin_dir()
    missing = [
        b
        for b in (
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
            "kubectl",
        )
        if not (bin_dir / b).exists()
    ]
    if missing:
        pytest.fail(
            f"control plane binaries missing in {bin_dir}: {', '.join(missing)}; build "
            "them with `make k8s-tools` (Go, ~7 min on 2 cores the first time)",
            pytrace=False,
        )
    started = time.monotonic()
    up = subprocess.run(
        ["bash", str(CONTROL_PLANE), "up", "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if up.returncode != 0:
        subprocess.run(
            ["bash", str(CONTROL_PLANE), "down", "--state-dir", str(state_dir)],
            capture_output=True,
            timeout=120,
        )
        pytest.fail(
            f"the local control plane did not start (logs in {state_dir / 'logs'}):\n"
            f"{up.stderr[-4000:]}",
            pytrace=False,
        )
    return Path(up.stdout.strip().splitlines()[-1]), time.monotonic() - started


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    """The cluster the suite runs against (see the module docstring), for the whole session."""
    named = os.environ.get(KUBECONFIG_ENV, "").strip()
    state_dir, start_seconds = None, None
    if named:
        kubeconfig = Path(named).expanduser()
        if not kubeconfig.is_file():
            pytest.fail(f"{KUBECONFIG_ENV}={named}: no such file", pytrace=False)
    else:
        state_dir = tmp_path_factory.mktemp("control-plane")
        try:
            kubeconfig, start_seconds = _start_local_control_plane(state_dir)
        except BaseException:  # interrupted while `up` ran: stop what it had started
            _stop(state_dir)
            raise
    local = state_dir is not None
    built_kubectl = k8s_bin_dir() / "kubectl"
    kubectl = str(built_kubectl) if built_kubectl.exists() else tool("kubectl")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    c = Cluster(
        kubeconfig,
        local,
        kubectl,
        tool("helm"),
        state_dir=state_dir,
        env=env,
        start_seconds=start_seconds,
    )
    try:
        version = json.loads(c.kubectl("get", "--raw", "/version", timeout=30).stdout)
        c.server_version = version["gitVersion"]
        nodes = c.get("nodes")["items"]
        c.fake_nodes = bool(nodes) and all(
            n["metadata"].get("annotations", {}).get("kwok.x-k8s.io/node") == "fake" for n in nodes
        )
    except Exception as exc:
        if local:
            _stop(state_dir)
        pytest.fail(f"{c.name} does not answer: {exc}", pytrace=False)
    install_crds(c)
    global _session_cluster
    _session_cluster = c
    yield c
    if local:
        _stop(state_dir)


_session_cluster: Cluster | None = None  # for the terminal summary


def install_crds(cluster: Cluster) -> None:
    """The chart's CRDs (charts/modelfactory/crds), applied once for the session (server-side,
    owned by no release): a cluster holds one CRD however many releases it runs, and every
    release of the suite installs with --skip-crds."""
    cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager=modelfactory-tests",
        "-f",
        str(REPO / "charts" / "modelfactory" / "crds"),
    )
    # Not `kubectl wait --for=condition=Established` at once: on a CRD whose status has no
    # conditions yet it fails ("status.conditions accessor error") instead of waiting.
    deadline = time.monotonic() + 60
    for crd in ("modeldeployments.modelfactory.io", "driftmonitors.modelfactory.io"):
        while True:
            conditions = cluster.get("crd", crd).get("status", {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"CRD {crd} not Established in 60 s: {conditions}")
            time.sleep(0.5)


def _stop(state_dir: Path) -> None:
    subprocess.run(
        ["bash", str(CONTROL_PLANE), "down", "--state-dir", str(state_dir)],
        capture_output=True,
        timeout=120,
    )


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Say once, where a reader of the CI log looks, what the local control plane leaves out."""
    ran = [
        r
        for r in terminalreporter.stats.get("passed", [])
        if "tests/cluster/" in r.nodeid.replace("\\", "/")
    ]
    if ran and _session_cluster and _session_cluster.fake_nodes:
        c = _session_cluster
        started = f", up in {c.start_seconds:.0f}s" if c.start_seconds else ""
        terminalreporter.write_sep(
            "-",
            f"cluster tests ran on {c.name} (Kubernetes {c.server_version}, kwok nodes{started})",
        )
        terminalreporter.write_line(
            f"not covered there: {NOT_COVERED_LOCALLY}; tests/node runs the chart's pods on a "
            "real node (NetworkPolicy enforcement aside, ADR 0010)"
        )


# --- kind: the pipeline, the registry and the served model for real (test_kind_e2e.py) ------


@pytest.fixture(scope="session")
def kube(cluster) -> Kube:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    return Kube(client.CoreV1Api(api), client.AppsV1Api(api))


@dataclass
class Kube:
    core: object
    apps: object

    def service_port(self, name: str, namespace: str, port_name: str) -> tuple[int, int | None]:
        """(port, nodePort) of the named port of a Service."""
        service = self.core.read_namespaced_service(name, namespace)
        for port in service.spec.ports:
            if port.name == port_name or len(service.spec.ports) == 1:
                return port.port, port.node_port
        raise AssertionError(f"service {namespace}/{name} has no port named {port_name!r}")

    def wait_available(self, deployment: str, namespace: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            status = self.apps.read_namespaced_deployment(deployment, namespace).status
            if (status.available_replicas or 0) >= 1:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"deployment {namespace}/{deployment} not available in "
                    f"{timeout:.0f}s: {status.conditions}"
                )
            time.sleep(5)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=3)
        return True
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def service_url(cluster, kube) -> Iterator[Callable[..., str]]:
    """``service_url(name, namespace, port_name)``: the NodePort on localhost when it answers,
    else a ``kubectl port-forward`` kept open until the session ends."""
    forwards: list[subprocess.Popen] = []

    def url_of(name: str, namespace: str, port_name: str = "http") -> str:
        port, node_port = kube.service_port(name, namespace, port_name)
        if node_port and _answers(f"http://localhost:{node_port}/"):
            return f"http://localhost:{node_port}"
        local = _free_port()
        command = [
            cluster.kubectl_path,
            "--kubeconfig",
            str(cluster.kubeconfig),
            "-n",
            namespace,
            "port-forward",
            f"service/{name}",
            f"{local}:{port}",
        ]
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        forwards.append(process)
        deadline = time.monotonic() + 30
        while not _answers(f"http://127.0.0.1:{local}/"):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(
                    f"kubectl port-forward to {namespace}/{name}:{port} failed: "
                    f"{process.stderr.read().decode(errors='replace')[-500:]}"
                )
            time.sleep(0.5)
        return f"http://127.0.0.1:{local}"

    yield url_of
    for process in forwards:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def mlflow_url(kube, service_url) -> str:
    kube.wait_available(f"{FULLNAME}-mlflow", NAMESPACE, timeout=600)
    return service_url(f"{FULLNAME}-mlflow", NAMESPACE, "http")


@pytest.fixture(scope="session")
def kfp_host(service_url) -> str:
    if KFP_HOST:
        return KFP_HOST
    if _answers(f"{KFP_NODE_URL}/apis/v2beta1/healthz"):
        return KFP_NODE_URL
    return service_url("ml-pipeline-ui", KFP_NAMESPACE, "http")
