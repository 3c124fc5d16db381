"""The Kubernetes objects a DriftMonitor owns, rendered from its spec (pure, no API calls).

Per DriftMonitor: a CronJob that runs one check on the monitor's schedule
(``python -m modelfactory.operator.monitor_job``, concurrencyPolicy Forbid, so a slow check is
never overlapped by the next), and the identity its pods run as: a ServiceAccount whose Role
allows exactly reading and writing this monitor's status, nothing else. Each carries an owner
reference to the DriftMonitor, so deleting it garbage-collects them.

The check's pod is the operator's serving pod template (the chart's secure defaults, MLflow and
prediction-store settings; the chart's ``MODELFACTORY_OPERATOR_CHECK_TEMPLATE`` is that pod with
the drift checks' own MLflow account) with the operator's own image
(``MODELFACTORY_OPERATOR_MONITOR_IMAGE``, the components image: modelfactory, Evidently and the
KFP client); its arguments name the
monitor and carry its configuration as JSON, so a spec change reaches the next check through
the CronJob and the pod needs no right to read the spec.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from modelfactory.operator.crds import DRIFT_MONITOR, GROUP, MODEL_DEPLOYMENT
from modelfactory.operator.resources import MANAGED_BY, owner_reference, pod_labels

# Spec fields that say when and how the CronJob runs; the rest is the check's MonitorConfig.
SCHEDULING = ("schedule", "timeZone", "suspend", "activeDeadlineSeconds")
DEPLOYMENT_REF = "modelDeployment"  # instead of model: the ModelDeployment whose model to check
# Environment of the serving pod that means nothing to a check or a replay.
SERVING_ONLY_ENV = (
    "MODELFACTORY_MODEL_NAME",
    "MODELFACTORY_MODEL_ALIAS",
    "MODELFACTORY_WORKERS",
    "MODELFACTORY_HTTP_HOST",
    "MODELFACTORY_HTTP_PORT",
    "MODELFACTORY_GRPC_PORT",
    "MODELFACTORY_METRICS_PORT",
)


SERVING_PROGRAM = ["python3", "-m", "modelfactory_serving"]
CHECK_PROGRAM = ["python3", "-m", "modelfactory.operator.monitor_job"]


def program_command(serving_command: list[str], program: list[str]) -> list[str]:
    """The serving container's command with ``program`` in place of the service's: what runs
    before it (the chart's shell prefix that joins the database password into the prediction
    store's URL) stays."""
    tail = len(SERVING_PROGRAM)
    if serving_command[-tail:] == SERVING_PROGRAM:
        return [*serving_command[:-tail], *program]
    return list(program)


def check_command(serving_command: list[str]) -> list[str]:
    return program_command(serving_command, CHECK_PROGRAM)


def job_name(body: Mapping[str, Any]) -> str:
    return f"{body['metadata']['name']}-drift"


def account_name(body: Mapping[str, Any]) -> str:
    return f"{body['metadata']['name']}-drift-monitor"


def monitor_config(spec: Mapping[str, Any], model: str | None = None) -> dict[str, Any]:
    """The check's configuration (a MonitorConfig's fields): the spec without its scheduling
    fields and its ModelDeployment reference, and ``model`` when given (the one the reference
    serves)."""
    config = {k: v for k, v in spec.items() if k not in (*SCHEDULING, DEPLOYMENT_REF)}
    if model is not None:
        config["model"] = model
    return config


def labels(body: Mapping[str, Any]) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "modelfactory",
        "app.kubernetes.io/instance": body["metadata"]["name"],
        **(body["metadata"].get("labels") or {}),
        "app.kubernetes.io/component": "drift-monitor",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "modelfactory.io/driftmonitor": body["metadata"]["name"],
    }


def _meta(body: Mapping[str, Any], name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": body["metadata"]["namespace"],
        "labels": labels(body),
        "ownerReferences": [owner_reference(body, DRIFT_MONITOR)],
    }


def service_account(body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(body, account_name(body)),
        "automountServiceAccountToken": False,  # only the check's pods mount its token
    }


def role(body: Mapping[str, Any]) -> dict[str, Any]:
    """Read and write this monitor's status, and read the ModelDeployment it names if it names
    one; nothing else (not its spec, not other monitors)."""
    rules = [
        {
            "apiGroups": [GROUP],
            "resources": [f"{DRIFT_MONITOR.plural}/status"],
            "resourceNames": [body["metadata"]["name"]],
            "verbs": ["get", "patch"],
        }
    ]
    reference = body["spec"].get(DEPLOYMENT_REF)
    if reference:
        rules.append(
            {
                "apiGroups": [GROUP],
                "resources": [MODEL_DEPLOYMENT.plural],
                "resourceNames": [reference],
                "verbs": ["get"],
            }
        )
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(body, account_name(body)),
        "rules": rules,
    }


def role_binding(body: Mapping[str, Any]) -> dict[str, Any]:
    name = account_name(body)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(body, name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [
            {"kind": "ServiceAccount", "name": name, "namespace": body["metadata"]["namespace"]}
        ],
    }


def cron_job(
    body: Mapping[str, Any], template: Mapping[str, Any], image: str, extra_env: Mapping[str, str]
) -> dict[str, Any]:
    """The CronJob running the checks; ``template`` is the serving pod template, ``extra_env``
    what the operator passes on (the KFP endpoint retraining runs are submitted to)."""
    spec = body["spec"]
    pod = copy.deepcopy(dict(template))
    pod_meta = pod.setdefault("metadata", {})
    pod_meta["labels"] = pod_labels(pod_meta.get("labels"), labels(body))
    pod_spec = pod["spec"]
    pod_spec["serviceAccountName"] = account_name(body)
    pod_spec["automountServiceAccountToken"] = True  # the check writes its monitor's status
    pod_spec["restartPolicy"] = "Never"
    container = pod_spec["containers"][0]
    for probe_or_ports in ("ports", "readinessProbe", "livenessProbe", "startupProbe"):
        container.pop(probe_or_ports, None)
    container["name"] = "check"
    container["image"] = image
    container["command"] = check_command(container.get("command") or [])
    config = {k: v for k, v in spec.items() if k not in SCHEDULING}
    container["args"] = [
        *("--namespace", body["metadata"]["namespace"]),
        *("--name", body["metadata"]["name"]),
        *("--config", json.dumps(config, sort_keys=True)),
    ]
    ours = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", **extra_env}
    dropped = {*ours, *SERVING_ONLY_ENV}
    container["env"] = [
        *(e for e in container.get("env") or [] if e["name"] not in dropped),
        *({"name": k, "value": v} for k, v in ours.items()),
    ]
    cron: dict[str, Any] = {
        "schedule": spec.get("schedule", "0 * * * *"),
        "suspend": bool(spec.get("suspend", False)),
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 300,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 3,
        "jobTemplate": {
            "metadata": {"labels": labels(body)},
            "spec": {
                "backoffLimit": 0,  # a failed check is reported in status; the next one retries
                "activeDeadlineSeconds": spec.get("activeDeadlineSeconds", 3600),
                "ttlSecondsAfterFinished": 7 * 24 * 3600,
                "template": pod,
            },
        },
    }
    if spec.get("timeZone"):
        cron["timeZone"] = spec["timeZone"]
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _meta(body, job_name(body)),
        "spec": cron,
    }


def owned_objects(
    body: Mapping[str, Any], template: Mapping[str, Any], image: str, extra_env: Mapping[str, str]
) -> list[dict[str, Any]]:
    """In the order they are applied: the identity first, then the CronJob that uses it."""
    return [
        service_account(body),
        role(body),
        role_binding(body),
        cron_job(body, template, image, extra_env),
    ]
