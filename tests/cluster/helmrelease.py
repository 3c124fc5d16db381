"""A Helm release of charts/modelfactory on the cluster under test, and what to ask of it.

On a cluster of kwok nodes (the local control plane) every scheduled pod is marked Running
and Ready, so Helm's ``--wait`` and the checks below see the chart's workloads roll out. On a
real cluster
(kind) the containers run for real, and a serving pod turns Ready only once a model
version holds its alias in *this* release's (empty) MLflow, which no test here registers:
there serving pods must be created and scheduled, not Ready (test_kind_e2e.py serves a
model for real).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from .conftest import REPO, Cluster

CHART = REPO / "charts" / "modelfactory"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RESTRICTED = {
    f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")
}
WORKLOADS = ("Deployment", "StatefulSet")


def eventually(check: Callable[[], list[str]], timeout: float, what: str) -> None:
    """Polls ``check`` (a list of what is still wrong) until it is empty or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        problems = check()
        if not problems:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout:.0f}s:\n" + "\n".join(problems))
        time.sleep(1)


def kept_on_uninstall(fullname: str) -> set[tuple[str, str]]:
    """What `helm uninstall` leaves of a release on purpose: the database and MLflow accounts
    Secrets and the artifacts PVC (helm.sh/resource-policy: keep), the database's PVC
    (StatefulSets keep their claims)."""
    return {
        ("Secret", f"{fullname}-postgresql"),
        ("Secret", f"{fullname}-mlflow-accounts"),
        ("PersistentVolumeClaim", f"{fullname}-mlflow-artifacts"),
        ("PersistentVolumeClaim", f"data-{fullname}-postgresql-0"),
    }


def uninstall_problems(cluster: Cluster, namespace: str, fullname: str) -> list[str]:
    """What is wrong with ``namespace`` after `helm uninstall`: objects left behind (all but
    its events and what every namespace has), and objects kept on purpose that are gone."""
    kinds = cluster.kubectl(
        "api-resources", "--verbs=list", "--namespaced", "-o", "name"
    ).stdout.split()
    kinds = [k for k in kinds if k not in ("events", "events.events.k8s.io")]
    left = cluster.get(",".join(kinds), "--namespace", namespace)["items"]
    baseline = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}
    present = {(o["kind"], o["metadata"]["name"]) for o in left} - baseline
    kept = kept_on_uninstall(fullname)
    return [f"left behind: {kind} {name}" for kind, name in sorted(present - kept)] + [
        f"not kept: {kind} {name}" for kind, name in sorted(kept - present)
    ]


@dataclass
class Release:
    cluster: Cluster
    name: str
    namespace: str
    chart: Path = CHART

    @property
    def fullname(self) -> str:
        return self.name if "modelfactory" in self.name else f"{self.name}-modelfactory"

    def _values_args(self, values: list[Path], sets: list[str]) -> list[str]:
        # The session applied the chart's CRDs (install_crds); Helm also skips CRDs that exist.
        args = ["--skip-crds"]
        for f in values:
            args += ["-f", str(f)]
        for s in sets:
            args += ["--set", s]
        return args

    def _wait_args(self, wait: bool | None, timeout: str) -> list[str]:
        # By default (None) Helm waits only on the local control plane: its --wait needs every
        # pod Ready, which a real cluster gives serving pods only with a registered model (see
        # the module docstring); there wait_rolled_out() checks instead.
        if wait is None:
            wait = self.cluster.fake_nodes
        return ["--wait", "--timeout", timeout] if wait else []

    def install(
        self,
        values: list[Path] = (),
        sets: list[str] = (),
        *,
        wait: bool | None = None,
        timeout: str = "5m",
        check: bool = True,
    ):
        return self.cluster.helm(
            "install",
            self.name,
            str(self.chart),
            "--namespace",
            self.namespace,
            *self._values_args(list(values), list(sets)),
            *self._wait_args(wait, timeout),
            check=check,
            timeout=900,
        )

    def upgrade(self, values: list[Path] = (), sets: list[str] = (), *, timeout: str = "5m"):
        return self.cluster.helm(
            "upgrade",
            self.name,
            str(self.chart),
            "--namespace",
            self.namespace,
            *self._values_args(list(values), list(sets)),
            *self._wait_args(None, timeout),
            timeout=900,
        )

    def rollback(self, revision: int, *, timeout: str = "5m"):
        return self.cluster.helm(
            "rollback",
            self.name,
            str(revision),
            "--namespace",
            self.namespace,
            *self._wait_args(None, timeout),
            timeout=900,
        )

    def uninstall(self):
        return self.cluster.helm(
            "uninstall",
            self.name,
            "--namespace",
            self.namespace,
            "--wait",
            "--timeout",
            "5m",
            timeout=900,
        )

    def status(self) -> dict:
        return json.loads(
            self.cluster.helm(
                "status", self.name, "--namespace", self.namespace, "-o", "json"
            ).stdout
        )

    def manifest(self) -> list[dict]:
        """The objects of the current revision (hooks excluded), as Helm recorded them."""
        text = self.cluster.helm("get", "manifest", self.name, "--namespace", self.namespace).stdout
        return [d for d in yaml.safe_load_all(text) if d]

    def live(self, objects: list[dict]) -> list[dict]:
        """The same objects as the API server has them now (one `kubectl get -f`)."""
        listing = self.cluster.kubectl(
            "get", "-f", "-", "-o", "json", input="\n---\n".join(json.dumps(o) for o in objects)
        )
        data = json.loads(listing.stdout)
        return data["items"] if data.get("kind") == "List" else [data]

    def get(self, kind: str, name: str) -> dict:
        return self.cluster.get(kind, name, "--namespace", self.namespace)

    def pods(self, selector: dict[str, str]) -> list[dict]:
        labels = ",".join(f"{k}={v}" for k, v in selector.items())
        return self.cluster.get("pods", "--namespace", self.namespace, "-l", labels)["items"]

    def secret_data(self, name: str) -> dict[str, str]:
        return self.get("secret", name)["data"]

    def rollout_problems(self, serving_ready: bool | None = None) -> list[str]:
        """What keeps the release's Deployments and StatefulSets from their replicas."""
        if serving_ready is None:
            serving_ready = self.cluster.fake_nodes
        problems = []
        manifest = self.manifest()
        workloads = self.live([o for o in manifest if o["kind"] in WORKLOADS])
        # The serving Deployment of each ModelDeployment, which the operator makes.
        for model_deployment in (o for o in manifest if o["kind"] == "ModelDeployment"):
            name = model_deployment["metadata"]["name"]
            found = self.cluster.kubectl(
                "get", "deployment", name, "--namespace", self.namespace, "-o", "json", check=False
            )
            if found.returncode != 0:
                problems.append(f"ModelDeployment {name}: no Deployment yet (is the operator up?)")
            else:
                workloads.append(json.loads(found.stdout))
        for w in workloads:
            kind, name = w["kind"], w["metadata"]["name"]
            want = w["spec"].get("replicas", 1)
            status = w.get("status", {})
            component = w["metadata"]["labels"].get("app.kubernetes.io/component")
            pods = [
                p
                for p in self.pods(w["spec"]["selector"]["matchLabels"])
                if not p["metadata"].get("deletionTimestamp")
            ]
            if status.get("observedGeneration", 0) < w["metadata"]["generation"]:
                problems.append(f"{kind} {name}: controller has not seen the current spec yet")
            elif component == "serving" and not serving_ready:
                scheduled = [p for p in pods if p["spec"].get("nodeName")]
                if len(scheduled) < want:
                    problems.append(f"{kind} {name}: {len(scheduled)}/{want} pods scheduled")
            elif status.get("readyReplicas", 0) != want or status.get("updatedReplicas", 0) != want:
                problems.append(
                    f"{kind} {name}: {status.get('readyReplicas', 0)}/{want} ready, "
                    f"{status.get('updatedReplicas', 0)} updated ({status})"
                )
        return problems

    def wait_rolled_out(self, timeout: float = 600) -> None:
        eventually(self.rollout_problems, timeout, f"rollout of release {self.name}")
