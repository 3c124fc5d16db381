"""A control plane with one real node for tests: pods run, Services route, DNS resolves,
volumes are written (``tools/control-plane.sh up --real-node``; docs/adr/0010-real-node.md).

:func:`why_not_here` says why this machine cannot run one (not root, no cgroups, no Docker
engine to export the project's images from); the node tier then reports itself as not run,
never as passed. :class:`RealNode` is what the session fixture of ``tests/node`` yields:
the cluster (the same :class:`~tests.cluster.conftest.Cluster` the kwok tier uses), the
images of ours imported into the node's containerd, and Services reached from the host on
127.0.0.1 only (a NodePort bound on loopback, or ``kubectl port-forward``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from modelfactory.local.ports import free_port
from tests.cluster.conftest import Cluster, k8s_bin_dir, tool

REPO = Path(__file__).resolve().parents[2]
CONTROL_PLANE = REPO / "tools" / "control-plane.sh"
NODE_SCRIPT = REPO / "tools" / "node" / "node.sh"
NODE_BUILD = REPO / "tools" / "node" / "build.sh"
SKIP_ENV = "MODELFACTORY_SKIP_NODE_TESTS"
CONTAINER_SKIP_ENV = "MODELFACTORY_SKIP_CONTAINER_TESTS"
NODE_NAME = "modelfactory-node"
NOT_COVERED = (
    "pods of ours running on a real kubelet (containerd, runc, bridge CNI, kube-proxy, "
    "CoreDNS, local-path volumes): Pod Security restricted enforced on running containers, "
    "Service routing, cluster DNS, requests from the host through 127.0.0.1, PVC contents, "
    "and the node's clean-up after kill -9"
)


def why_not_here() -> str | None:
    """Why a real node cannot run on this machine, or None when it can."""
    if os.environ.get(SKIP_ENV) == "1":
        return f"{SKIP_ENV}=1"
    if os.geteuid() != 0:
        return "not root: containerd, runc, mounts and iptables rules need root (CI runs as root)"
    mounts = Path("/proc/mounts").read_text().split("\n")
    if not any(len(m.split()) > 2 and m.split()[2] in ("cgroup", "cgroup2") for m in mounts):
        return "no cgroup filesystem is mounted"
    for command in ("iptables", "ip"):
        if shutil.which(command) is None:
            return f"no {command} on PATH"
    if os.environ.get(CONTAINER_SKIP_ENV) == "1":
        return (
            f"{CONTAINER_SKIP_ENV}=1: no Docker engine here, so the project's images cannot be "
            "built or exported to the node"
        )
    return None


def node_parts_missing() -> list[str]:
    """The built parts `up --real-node` needs that are not there (`make node-tools`)."""
    out = subprocess.run(
        ["bash", str(NODE_BUILD), "--out-dir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    wanted = [k8s_bin_dir() / b for b in ("kubelet", "kube-proxy", "kubectl")] + [
        Path(out) / p
        for p in ("bin/containerd", "bin/runc", "cni/bridge", "images/pause.tar", "stamp")
    ]
    return [str(p) for p in wanted if not p.exists()]


@dataclass
class RealNode:
    """The control plane with its real node, for a test session."""

    cluster: Cluster
    state_dir: Path
    up_seconds: float
    imported: dict[str, float] = field(default_factory=dict)  # image -> seconds to import
    timings: dict[str, float] = field(default_factory=dict)  # what tests measured, for the summary
    forwards: list[subprocess.Popen] = field(default_factory=list)
    stopped: bool = False

    @property
    def name(self) -> str:
        return NODE_NAME

    # --- images -------------------------------------------------------------------------
    def import_images(self, *images: str) -> None:
        """Docker's images into the node's containerd (``docker save``, ``ctr images
        import``): pods name them as Docker does, and nothing is ever pulled."""
        missing = [i for i in images if i not in self.imported]
        if not missing:
            return
        started = time.monotonic()
        archive = self.state_dir / "images.tar"
        save = subprocess.run(
            [shutil.which("docker") or "docker", "save", "-o", str(archive), *missing],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if save.returncode != 0:
            raise AssertionError(f"docker save {' '.join(missing)} failed: {save.stderr[-2000:]}")
        try:
            self.node("import", str(archive), timeout=900)
        finally:
            archive.unlink(missing_ok=True)
        seconds = time.monotonic() - started
        for image in missing:
            self.imported[image] = seconds / len(missing)

    # --- the node's script --------------------------------------------------------------
    def node(self, command: str, *args: str, timeout: float = 300, check: bool = True):
        done = subprocess.run(
            ["bash", str(NODE_SCRIPT), command, "--state-dir", str(self.state_dir), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"node.sh {command} exited {done.returncode}:\n{done.stdout[-2000:]}"
                f"{done.stderr[-3000:]}"
            )
        return done

    def leftovers(self) -> str:
        """What of a node is left on this machine (processes, mounts, links, rules); ''
        when nothing is."""
        return self.node("leftovers", check=False).stdout.strip()

    def down(self) -> subprocess.CompletedProcess:
        """``tools/control-plane.sh down``: the node first, then the control plane."""
        self.close_forwards()
        done = subprocess.run(
            ["bash", str(CONTROL_PLANE), "down", "--state-dir", str(self.state_dir)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.stopped = True
        return done

    # --- reaching Services from the host: 127.0.0.1 only --------------------------------
    def node_port_url(self, service: str, namespace: str, port_name: str = "http") -> str:
        """``http://127.0.0.1:<nodePort>``: kube-proxy answers NodePorts on loopback only."""
        spec = self.cluster.get("service", service, "-n", namespace)["spec"]
        for port in spec["ports"]:
            if port.get("name") == port_name or len(spec["ports"]) == 1:
                if "nodePort" not in port:
                    raise AssertionError(f"service {namespace}/{service} has no NodePort")
                return f"http://127.0.0.1:{port['nodePort']}"
        raise AssertionError(f"service {namespace}/{service} has no port named {port_name!r}")

    def port_forward(self, target: str, namespace: str, port: int, path: str = "/") -> str:
        """``kubectl port-forward TARGET``, kept open until the session ends (or
        :meth:`close_forwards`); the URL on 127.0.0.1 once ``path`` answers."""
        local = free_port()
        process = subprocess.Popen(
            [
                self.cluster.kubectl_path,
                "--kubeconfig",
                str(self.cluster.kubeconfig),
                "-n",
                namespace,
                "port-forward",
                "--address",
                "127.0.0.1",
                target,
                f"{local}:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        self.forwards.append(process)
        url = f"http://127.0.0.1:{local}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + path, timeout=3)
                return url
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(
                    f"kubectl port-forward {namespace}/{target} :{port} failed: "
                    f"{process.stderr.read().decode(errors='replace')[-1000:]}"
                )
            time.sleep(0.5)

    def close_forwards(self) -> None:
        for process in self.forwards:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.forwards.clear()

    # --- waiting on what the node runs -------------------------------------------------
    def wait_ready(self, namespace: str, selector: str, timeout: float = 300) -> float:
        """Until every pod the selector names is Ready by its own probes; the seconds it took.
        A pod that keeps failing makes the error carry its events and logs."""
        started = time.monotonic()
        while True:
            pods = self.cluster.get("pods", "-n", namespace, "-l", selector)["items"]
            if pods and all(_ready(p) for p in pods):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AssertionError(
                    f"pods {namespace}/{selector} not Ready in {timeout:.0f}s:\n"
                    + self.describe(namespace, selector)
                )
            time.sleep(1)

    def describe(self, namespace: str, selector: str) -> str:
        """Pods' phases, container states, recent events and log tails: what a person would
        read to find out why a pod does not run."""
        lines = []
        for pod in self.cluster.get("pods", "-n", namespace, "-l", selector)["items"]:
            name = pod["metadata"]["name"]
            statuses = pod.get("status", {}).get("containerStatuses", [])
            lines.append(f"pod {name}: {pod['status'].get('phase')} {json.dumps(statuses)[:800]}")
            logs = self.cluster.kubectl("logs", "-n", namespace, name, "--tail=30", check=False)
            lines.append(logs.stdout[-2000:] + logs.stderr[-500:])
        events = self.cluster.kubectl(
            "get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False
        )
        lines.append(events.stdout[-3000:])
        return "\n".join(lines)

    def exec(self, namespace: str, pod: str, *command: str, check: bool = True):
        return self.cluster.kubectl("exec", "-n", namespace, pod, "--", *command, check=check)


def _ready(pod: dict) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@contextmanager
def started_real_node(state_dir: Path) -> Iterator[RealNode]:
    """``up --real-node`` in ``state_dir``; ``down`` when done, failing if anything of the
    node is left on the machine."""
    started = time.monotonic()

    def down() -> None:
        subprocess.run(
            ["bash", str(CONTROL_PLANE), "down", "--state-dir", str(state_dir)],
            capture_output=True,
            timeout=300,
        )

    try:
        up = subprocess.run(
            ["bash", str(CONTROL_PLANE), "up", "--real-node", "--state-dir", str(state_dir)],
            capture_output=True,
            text=True,
            timeout=600,
        )
    except BaseException:  # interrupted while `up` ran: stop what it had started
        down()
        raise
    if up.returncode != 0:
        down()
        raise AssertionError(
            f"up --real-node failed (logs in {state_dir / 'logs'}):\n{up.stderr[-5000:]}"
        )
    kubeconfig = Path(up.stdout.strip().splitlines()[-1])
    built = k8s_bin_dir() / "kubectl"
    cluster = Cluster(
        kubeconfig,
        local=True,
        kubectl_path=str(built) if built.exists() else tool("kubectl"),
        helm_path=shutil.which("helm") or str(REPO / ".tools" / "bin" / "helm"),
        state_dir=state_dir,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        start_seconds=time.monotonic() - started,
    )
    cluster.server_version = json.loads(cluster.kubectl("get", "--raw", "/version").stdout)[
        "gitVersion"
    ]
    node = RealNode(cluster, state_dir, up_seconds=time.monotonic() - started)
    try:
        yield node
    finally:
        if not node.stopped:
            done = node.down()
            left = node.leftovers()
            if done.returncode != 0 or left:
                raise AssertionError(
                    f"down left the real node behind (exit {done.returncode}):\n"
                    f"{done.stderr[-3000:]}\n{left}"
                )
