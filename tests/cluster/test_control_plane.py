"""The cluster under test is a working Kubernetes, and tools/control-plane.sh keeps its word:
the pinned version, Ready nodes, real RBAC, and runs side by side that stop only themselves.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from .conftest import CONTROL_PLANE, REPO, k8s_bin_dir

pytestmark = pytest.mark.cluster


def _pinned(name: str) -> str:
    for line in (REPO / "tools" / "k8s" / "versions.env").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1].strip()
    raise AssertionError(f"{name} not in tools/k8s/versions.env")


def test_api_server_reports_the_pinned_version(cluster):
    """/version names the Kubernetes version tools/k8s pins (the build stamps it), so Helm's
    .Capabilities and the chart's kubeVersion check see a real one.
    Not covered on the local control plane: nothing; this is about the control plane itself."""
    if not cluster.local:
        pytest.skip(f"the cluster in {cluster.kubeconfig} was not built from tools/k8s")
    assert cluster.server_version == _pinned("KUBERNETES_VERSION")
    client = json.loads(cluster.kubectl("version", "--client", "-o", "json").stdout)
    assert client["clientVersion"]["gitVersion"] == _pinned("KUBERNETES_VERSION")


def test_nodes_are_ready(cluster):
    """The cluster has Ready nodes that accept pods (kwok's fake ones on the local control
    plane). Not covered on the local control plane: a kubelet; kwok's nodes run nothing."""
    nodes = cluster.get("nodes")["items"]
    assert nodes
    for node in nodes:
        conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert conditions.get("Ready") == "True", node["metadata"]["name"]
        assert not node["spec"].get("unschedulable"), node["metadata"]["name"]


def test_rbac_is_enforced(cluster):
    """A fresh ServiceAccount may not read Secrets, and the admin may: authorization is on.
    Not covered on the local control plane: nothing; RBAC is the API server's own."""
    namespace = cluster.create_namespace("mf-rbac")
    try:
        cluster.kubectl("create", "serviceaccount", "probe", "--namespace", namespace)
        subject = f"system:serviceaccount:{namespace}:probe"
        denied = cluster.kubectl(
            "auth",
            "can-i",
            "get",
            "secrets",
            "--namespace",
            namespace,
            "--as",
            subject,
            check=False,
        )
        assert denied.stdout.strip() == "no", denied.stdout
        allowed = cluster.kubectl(
            "auth", "can-i", "get", "secrets", "--namespace", namespace, check=False
        )
        assert allowed.stdout.strip() == "yes", allowed.stdout
    finally:
        cluster.delete_namespace(namespace)


def _control_plane(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(CONTROL_PLANE), *args], capture_output=True, text=True, timeout=300
    )


def _pids(state_dir: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in (state_dir / "run").glob("*.pid")}


def _alive(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return bool(cmdline)  # a zombie has none


def test_a_second_control_plane_runs_beside_and_stops_only_itself(cluster, tmp_path):
    """`up` in another state dir picks other free ports and answers on its own; `down` there
    stops exactly its five processes and leaves the session's cluster answering.
    Not covered on the local control plane: nothing; this is about tools/control-plane.sh."""
    if not cluster.local:
        pytest.skip(
            "tests tools/control-plane.sh, which this session did not use: it runs "
            f"against the cluster in {cluster.kubeconfig}"
        )
    assert (k8s_bin_dir() / "kube-apiserver").exists()
    state = tmp_path / "second"
    try:  # `down` also when `up` is interrupted half-way
        up = _control_plane("up", "--state-dir", str(state), "--nodes", "1")
        assert up.returncode == 0, up.stderr
        second = json.loads(
            cluster.run(
                [
                    cluster.kubectl_path,
                    "--kubeconfig",
                    str(state / "kubeconfig"),
                    "get",
                    "nodes",
                    "-o",
                    "json",
                ]
            ).stdout
        )
        assert [n["metadata"]["name"] for n in second["items"]] == ["kwok-node-0"]
        ports = dict(line.split("=") for line in (state / "ports.env").read_text().split())
        ours = dict(
            line.split("=") for line in (cluster.state_dir / "ports.env").read_text().split()
        )
        assert not set(ports.values()) & set(ours.values()), (ports, ours)
        assert _control_plane("up", "--state-dir", str(state)).returncode == 0  # already up
        status = _control_plane("status", "--state-dir", str(state))
        assert status.returncode == 0, status.stdout
        assert re.search(r"^/readyz\s+ok$", status.stdout, re.M), status.stdout
    finally:
        pids = _pids(state)
        down = _control_plane("down", "--state-dir", str(state))
    assert down.returncode == 0, down.stderr
    assert len(pids) == 5 and not any(_alive(pid) for pid in pids.values()), pids
    assert all(_alive(pid) for pid in _pids(cluster.state_dir).values())
    assert cluster.kubectl("get", "--raw", "/readyz").stdout == "ok"
    assert _control_plane("status", "--state-dir", str(state)).returncode != 0
    assert os.listdir(state / "logs")  # the logs stay for a post-mortem
