"""Fixtures of the real-cluster suite: a reachable Kubernetes API, the chart's services on the host.

Every test here is marked ``cluster``. It runs when a kubeconfig (``KUBECONFIG`` or
``~/.kube/config``) names a cluster whose API answers; otherwise each test is
skipped with what it covers and why no cluster was found. ``make kind-up`` makes
one (kind + Kubeflow Pipelines + the chart), ``make kind-e2e`` runs this suite.

Where the suite looks (environment variables, defaults from tools/kind-up.sh):
  MODELFACTORY_E2E_NAMESPACE  (modelfactory)   namespace of the chart's release
  MODELFACTORY_E2E_RELEASE    (modelfactory)   Helm release name
  MODELFACTORY_E2E_KFP_HOST   (http://localhost:30080, else a port-forward to
                               kubeflow/ml-pipeline-ui)  Kubeflow Pipelines UI/API
  MODELFACTORY_E2E_MODEL      (bank-marketing) the served model
Services are reached on their kind NodePorts (kind-config.yaml maps them to
127.0.0.1) when those answer, else through ``kubectl port-forward``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = os.environ.get("MODELFACTORY_E2E_NAMESPACE", "modelfactory")
RELEASE = os.environ.get("MODELFACTORY_E2E_RELEASE", "modelfactory")
# The chart's object prefix: the release name alone when it contains "modelfactory".
FULLNAME = RELEASE if "modelfactory" in RELEASE else f"{RELEASE}-modelfactory"
MODEL = os.environ.get("MODELFACTORY_E2E_MODEL", "bank-marketing")
KFP_NAMESPACE = "kubeflow"
KFP_HOST = os.environ.get("MODELFACTORY_E2E_KFP_HOST", "")
KFP_NODE_URL = "http://localhost:30080"


def kubeconfig_paths() -> list[Path]:
    if os.environ.get("KUBECONFIG"):
        return [Path(p).expanduser() for p in os.environ["KUBECONFIG"].split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


@cache
def cluster_unreachable_reason() -> str | None:
    """None when a kubeconfig names a cluster whose API answers; else why not, for the skip."""
    existing = [p for p in kubeconfig_paths() if p.is_file()]
    if not existing:
        where = os.pathsep.join(str(p) for p in kubeconfig_paths())
        return f"no kubeconfig at {where} (set KUBECONFIG, or run `make kind-up`)"
    try:
        from kubernetes import client, config

        config.load_kube_config()
        version = client.VersionApi().get_code(_request_timeout=10)
    except Exception as exc:  # bad config, no route, TLS, auth: none of them is a usable cluster
        why = f"{exc.__class__.__name__}: {exc}"[:300]
        return f"the cluster in {existing[0]} does not answer ({why})"
    os.environ.setdefault("MODELFACTORY_E2E_SERVER_VERSION", version.git_version)
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a cluster test, saying what it covers, when no cluster answers (before any fixture)."""
    if item.get_closest_marker("cluster") is None:
        return
    reason = cluster_unreachable_reason()
    if reason:
        function = getattr(item, "function", None)
        doc = ((function.__doc__ if function else None) or item.name).strip().splitlines()[0]
        pytest.skip(
            f"covers: {doc.rstrip('.')}; skipped: no Kubernetes cluster reachable: {reason}"
        )


@pytest.fixture(scope="session")
def kube() -> Kube:
    from kubernetes import client, config

    config.load_kube_config()
    return Kube(client.CoreV1Api(), client.AppsV1Api())


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


def tool(name: str) -> str:
    """A CLI from .tools/bin (tools/install-tools.sh) or PATH."""
    local = REPO / ".tools" / "bin" / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found in .tools/bin or on PATH: run `make tools`", pytrace=False)
    return found


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
def service_url(kube) -> Iterator[Callable[..., str]]:
    """``service_url(name, namespace, port_name)``: the NodePort on localhost when it answers,
    else a ``kubectl port-forward`` kept open until the session ends."""
    forwards: list[subprocess.Popen] = []

    def url_of(name: str, namespace: str, port_name: str = "http") -> str:
        port, node_port = kube.service_port(name, namespace, port_name)
        if node_port and _answers(f"http://localhost:{node_port}/"):
            return f"http://localhost:{node_port}"
        local = _free_port()
        command = [
            tool("kubectl"),
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
