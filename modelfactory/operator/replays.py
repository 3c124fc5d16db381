"""The Job that runs a ModelDeployment's replay step on a cluster (pure, no API calls).

A replay reads the prediction log and loads two model versions, so it runs in a pod of its own
rather than in the operator: the operator's serving pod template (the chart's secure defaults,
MLflow and prediction-store settings, the shell prefix that joins the database password into
the store's URL; the chart's ``MODELFACTORY_OPERATOR_REPLAY_TEMPLATE`` is that pod with the
replays' own MLflow account, which may write version tags and nothing else) with the components
image, running ``python -m modelfactory.operator.replay_job``, which records its result on the
challenger's version (tag ``rollout.replay``), where the next reconcile reads it. The pod needs
no Kubernetes API: it mounts no token. The Job belongs to the ModelDeployment (deleted with it)
and is named after the replay it runs, so a second request for the same replay applies the same
Job.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from typing import Any

from modelfactory.operator.monitors import SERVING_ONLY_ENV, program_command
from modelfactory.operator.resources import MANAGED_BY, owner_reference, pod_labels
from modelfactory.rollout.actions import RunReplay

PROGRAM = ["python3", "-m", "modelfactory.operator.replay_job"]
COMPONENT = "rollout-replay"


def job_name(body: Mapping[str, Any], asked: RunReplay) -> str:
    key = f"{asked.version}/{asked.champion}/{asked.last_requests}/{asked.since:.0f}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"{body['metadata']['name'][:40]}-replay-{digest}"


def labels(body: Mapping[str, Any]) -> dict[str, str]:
    """The ModelDeployment's own labels (a chart's release labels, which its NetworkPolicies
    select by), and the replay's component."""
    return {
        "app.kubernetes.io/name": "modelfactory",
        "app.kubernetes.io/instance": body["metadata"]["name"],
        **(body["metadata"].get("labels") or {}),
        "app.kubernetes.io/component": COMPONENT,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "modelfactory.io/modeldeployment": body["metadata"]["name"],
    }


def replay_job(
    body: Mapping[str, Any],
    template: Mapping[str, Any],
    image: str,
    asked: RunReplay,
    deadline_seconds: float,
) -> dict[str, Any]:
    spec = body["spec"]
    pod = copy.deepcopy(dict(template))
    pod_meta = pod.setdefault("metadata", {})
    pod_meta["labels"] = pod_labels(pod_meta.get("labels"), labels(body))
    pod_spec = pod["spec"]
    pod_spec["automountServiceAccountToken"] = False  # no Kubernetes API: the result goes to MLflow
    pod_spec["restartPolicy"] = "Never"
    container = pod_spec["containers"][0]
    for probe_or_ports in ("ports", "readinessProbe", "livenessProbe", "startupProbe"):
        container.pop(probe_or_ports, None)
    container["name"] = "replay"
    container["image"] = image
    container["command"] = program_command(container.get("command") or [], PROGRAM)
    container["args"] = [
        *("--model", spec["model"]),
        *("--challenger", asked.version),
        *(("--champion", asked.champion) if asked.champion else ()),
        *("--last", str(asked.last_requests)),
        *("--since", f"{asked.since:.3f}"),
        *(("--use-case", spec["useCase"]) if spec.get("useCase") else ()),
    ]
    ours = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    dropped = {*ours, *SERVING_ONLY_ENV}
    container["env"] = [
        *(e for e in container.get("env") or [] if e["name"] not in dropped),
        *({"name": k, "value": v} for k, v in ours.items()),
    ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(body, asked),
            "namespace": body["metadata"]["namespace"],
            "labels": labels(body),
            "ownerReferences": [owner_reference(body)],
        },
        "spec": {
            "backoffLimit": 0,  # a replay that fails says so in the rollout's status
            "activeDeadlineSeconds": max(int(deadline_seconds), 60),
            "ttlSecondsAfterFinished": 3600,
            "template": pod,
        },
    }
