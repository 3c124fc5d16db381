"""The rollout operator (``python -m modelfactory.operator``) run on this machine against the
cluster under test, as the chart's operator ServiceAccount (a token from the TokenRequest API),
so every API call it makes is judged by the Role the chart grants it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml

from modelfactory.local.ports import free_port

from .conftest import Cluster

# The operator's settings naming its templates, and the files of the chart's ConfigMap they name.
TEMPLATES = {
    "SERVING": "template.yaml",
    "CHECK": "drift-check.yaml",
    "REPLAY": "rollout-replay.yaml",
}


def service_account_kubeconfig(cluster: Cluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as ``namespace/account`` (a token valid for two hours)."""
    token = cluster.kubectl(
        "create", "token", account, "--namespace", namespace, "--duration", "2h"
    ).stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    server = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": server["cluster"]}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [
            {
                "name": "sa",
                "context": {"cluster": "cluster", "user": account, "namespace": namespace},
            }
        ],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def running_operator(
    cluster: Cluster,
    namespace: str,
    account: str,
    tracking_uri: str,
    workdir: Path,
    tick_seconds: float = 1.0,
    templates: Path | None = None,
):
    """The operator watching ``namespace`` until the block ends; yields its metrics URL.

    ``templates``: a directory holding the chart's operator ConfigMap's files (the serving pod
    template, the drift check's and the rollout replay's), given to the operator as the chart's
    Deployment gives them."""
    kubeconfig = service_account_kubeconfig(cluster, namespace, account, workdir / "sa.kubeconfig")
    metrics_port, health_port = free_port(), free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MODELFACTORY_HOME": str(workdir / "home"),
        "MODELFACTORY_OPERATOR_NAMESPACE": namespace,
        "MODELFACTORY_OPERATOR_TICK_SECONDS": str(tick_seconds),
        "MODELFACTORY_OPERATOR_METRICS_PORT": str(metrics_port),
        "MODELFACTORY_OPERATOR_LIVENESS_ENDPOINT": f"http://127.0.0.1:{health_port}/healthz",
        **{
            f"MODELFACTORY_OPERATOR_{variable}_TEMPLATE": str(templates / file)
            for variable, file in TEMPLATES.items()
            if templates is not None and (templates / file).exists()
        },
    }
    log = open(workdir / "operator.log", "ab")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "modelfactory.operator"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{health_port}/healthz", timeout=2).is_success:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise AssertionError(
                    "the operator did not come up:\n"
                    + (workdir / "operator.log").read_text()[-4000:]
                )
            time.sleep(0.5)
        yield f"http://127.0.0.1:{metrics_port}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
