"""Helpers for the chart checks: find helm, render charts/modelfactory, pick objects.

These tests need no cluster: they run the real helm CLI (installed into
.tools/bin by tools/install-tools.sh) and inspect or schema-validate what it
renders. A missing helm is a failure, not a skip: CI installs it.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "modelfactory"
RELEASE = "mf"
NAMESPACE = "ml"
FULLNAME = f"{RELEASE}-modelfactory"

# Every combination of values CI renders: the defaults, each ci/*-values.yaml, values-kind.yaml,
# and the values of the real node's tier (tests/node/values-node.yaml, installed there for real).
VALUE_SETS: dict[str, list[Path]] = {
    "defaults": [],
    **{
        p.name.removesuffix("-values.yaml"): [p]
        for p in sorted((CHART / "ci").glob("*-values.yaml"))
    },
    "kind": [CHART / "values-kind.yaml"],
    "node": [REPO / "tests" / "node" / "values-node.yaml"],
}

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}


def helm_path() -> str | None:
    local = REPO / ".tools" / "bin" / "helm"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("helm")


def run_helm(*args: str) -> subprocess.CompletedProcess:
    path = helm_path()
    assert path, "helm not found (bash tools/install-tools.sh)"
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=120)


@functools.cache
def _render(values: tuple[str, ...], sets: tuple[str, ...], kube_version: str | None) -> tuple:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--include-crds"]
    for v in values:
        args += ["-f", v]
    for s in sets:
        args += ["--set", s]
    if kube_version:
        args += ["--kube-version", kube_version]
    proc = run_helm(*args)
    if proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
    rendered = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return tuple(rendered + operator_objects(rendered))


def operator_objects(rendered: list[dict]) -> list[dict]:
    """What the operator creates for each rendered ModelDeployment and DriftMonitor (its own
    rendering code, modelfactory.operator.resources and .monitors, from the templates the chart
    gives it): the checks below then judge the serving Deployment, Service, HPA and PDB, the drift
    checks' CronJob and a replay Job a release really runs, whoever creates them."""
    import yaml

    from modelfactory.operator import monitors, replays
    from modelfactory.operator.resources import owned_objects
    from modelfactory.rollout.actions import RunReplay

    templates = next(
        (
            {key: yaml.safe_load(text) for key, text in o["data"].items()}
            for o in rendered
            if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-serving-template")
        ),
        None,
    )
    template = templates and templates["template.yaml"]
    check_template = templates and templates["drift-check.yaml"]
    replay_template = templates and templates["rollout-replay.yaml"]
    created = []
    for body in rendered:
        if body["kind"] not in ("ModelDeployment", "DriftMonitor"):
            continue
        body = {**body, "metadata": {**body["metadata"], "uid": f"uid-of-the-{body['kind']}"}}
        if body["kind"] == "ModelDeployment":
            created += owned_objects(body, {})[0]
            if template is not None:  # a replay step's Job, as the operator would start it
                asked = RunReplay("2", "1", 10_000, 0.0)
                created.append(
                    replays.replay_job(
                        body, replay_template, "modelfactory-components:0.1.0", asked, 1800
                    )
                )
        else:
            assert template is not None, "a DriftMonitor is rendered without the operator"
            created += monitors.owned_objects(
                body, check_template, "modelfactory-components:0.1.0", {}
            )
    return created


def render(
    values: list[Path] | tuple = (), sets: tuple[str, ...] = (), kube_version: str | None = None
) -> list[dict]:
    """The chart rendered with these values files and --set flags, as a list of objects."""
    return list(_render(tuple(str(v) for v in values), tuple(sets), kube_version))


def of_kind(objects: list[dict], *kinds: str) -> list[dict]:
    return [o for o in objects if o["kind"] in kinds]


def named(objects: list[dict], kind: str, name: str) -> dict:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert matches, (
        f"no {kind} named {name} in {[(o['kind'], o['metadata']['name']) for o in objects]}"
    )
    return matches[0]


def pod_spec(workload: dict) -> dict:
    kind = workload["kind"]
    if kind == "Pod":
        return workload["spec"]
    if kind == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: dict) -> dict:
    kind = workload["kind"]
    if kind == "Pod":
        return workload["metadata"].get("labels", {})
    if kind == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["metadata"].get("labels", {})
    return workload["spec"]["template"]["metadata"].get("labels", {})


def containers(spec: dict) -> list[dict]:
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def selector_matches(selector: dict, labels: dict) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True
