"""The Kubernetes objects a ModelDeployment owns, rendered from its spec (pure, no API calls).

Per ModelDeployment: the serving Deployment (champion and challenger live in the same pods
behind the router, so weights need no mesh), its Service (HTTP and gRPC), and when asked for
a HorizontalPodAutoscaler and a PodDisruptionBudget. Each carries an owner reference to the
ModelDeployment, so deleting it garbage-collects them.

The serving pod comes from the ModelDeployment's ``spec.template`` when it has one (the chart
renders each model's with the same secure defaults as every other workload), else from the
operator's default template (:func:`load_serving_template`, also rendered by the chart: image,
MLflow and prediction-store settings, security context, volumes). The operator sets what makes
it this model's pod: model name, alias, workers, ports, and replicas, resources and extra
environment from the spec. Owned objects carry the ModelDeployment's own labels; its pods keep
the template's release labels (:func:`pod_labels`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from modelfactory.config import PredictionStoreSettings
from modelfactory.operator.crds import MODEL_DEPLOYMENT, CustomResource

HTTP_PORT, GRPC_PORT, METRICS_PORT = 3000, 8001, 8002
MANAGED_BY = "modelfactory-operator"
# The prediction log's spools (docs/adr/0013-prediction-log-spool.md): an emptyDir of the pod,
# unless the template mounts a claim there.
SPOOL_VOLUME, SPOOL_PATH = "prediction-spool", "/var/lib/modelfactory/prediction-spool"
SPOOL_MAX_MB = "MODELFACTORY_PREDICTION_SPOOL_MAX_MB"
SPOOL_SPARE_MB = 64

# Used when no template is mounted (a development run of the operator): the chart's defaults.
DEFAULT_TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {}, "annotations": {}},
    "spec": {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "serving",
                "image": "modelfactory-serving:0.1.0",
                "imagePullPolicy": "IfNotPresent",
                "command": ["python3", "-m", "modelfactory_serving"],
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "env": [{"name": "MODELFACTORY_PREDICTION_SPOOL_DIR", "value": SPOOL_PATH}],
                "resources": {
                    "requests": {"cpu": "250m", "memory": "512Mi"},
                    "limits": {"cpu": "2", "memory": "2Gi"},
                },
                "volumeMounts": [
                    {"name": "home", "mountPath": "/home/app"},
                    {"name": SPOOL_VOLUME, "mountPath": SPOOL_PATH},
                ],
            }
        ],
        "volumes": [{"name": "home", "emptyDir": {}}, {"name": SPOOL_VOLUME, "emptyDir": {}}],
    },
}


def load_serving_template(path: str | None = None) -> dict[str, Any]:
    """The serving pod template the chart mounts (``MODELFACTORY_OPERATOR_SERVING_TEMPLATE``)."""
    if not path:
        return copy.deepcopy(DEFAULT_TEMPLATE)
    loaded = yaml.safe_load(Path(path).read_text()) or {}
    if not loaded.get("spec", {}).get("containers"):
        raise ValueError(f"{path}: a pod template with spec.containers[0] (the serving container)")
    return loaded


# What the chart's NetworkPolicies select a release's pods by (PostgreSQL admits only the
# release's own parts). A pod made from the chart's templates keeps the template's, whatever
# labels its resource has: one written by hand (`kubectl apply`) has none of the release's.
RELEASE_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance")


def pod_labels(template_labels: Mapping[str, str] | None, own: Mapping[str, str]) -> dict[str, str]:
    """A pod's labels: the template's, the resource's ``own`` over them, and the template's
    release labels over those."""
    template_labels = dict(template_labels or {})
    release = {k: template_labels[k] for k in RELEASE_LABELS if k in template_labels}
    return {**template_labels, **own, **release}


def labels(body: Mapping[str, Any]) -> dict[str, str]:
    """The ModelDeployment's own labels (a chart's release labels, which its NetworkPolicies
    select by, stay as they are), defaults for a hand-written one, and the operator's."""
    name = body["metadata"]["name"]
    return {
        "app.kubernetes.io/name": "modelfactory",
        "app.kubernetes.io/instance": name,
        **(body["metadata"].get("labels") or {}),
        "app.kubernetes.io/component": "serving",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "modelfactory.io/model": _label_value(body["spec"]["model"]),
        "modelfactory.io/modeldeployment": name,
    }


def selector(body: Mapping[str, Any]) -> dict[str, str]:
    return {
        "app.kubernetes.io/component": "serving",
        "modelfactory.io/modeldeployment": body["metadata"]["name"],
    }


def owner_reference(
    body: Mapping[str, Any], owner: CustomResource = MODEL_DEPLOYMENT
) -> dict[str, Any]:
    """Makes an object ``body``'s (a ModelDeployment, or another ``owner`` kind of ours):
    deleting ``body`` garbage-collects it."""
    meta = body["metadata"]
    return {
        "apiVersion": owner.api_version,
        "kind": owner.kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _meta(body: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
    return {
        "name": name or body["metadata"]["name"],
        "namespace": body["metadata"]["namespace"],
        "labels": labels(body),
        "ownerReferences": [owner_reference(body)],
    }


def _label_value(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in text)[:63]
    return cleaned.strip("-_.") or "model"


def deployment(body: Mapping[str, Any], template: Mapping[str, Any]) -> dict[str, Any]:
    spec = body["spec"]
    pod = copy.deepcopy(dict(spec.get("template") or template))
    pod_meta = pod.setdefault("metadata", {})
    pod_meta["labels"] = pod_labels(pod_meta.get("labels"), labels(body))
    if spec.get("podAnnotations"):
        pod_meta["annotations"] = {**(pod_meta.get("annotations") or {}), **spec["podAnnotations"]}
    pod_spec = pod["spec"]
    container = pod_spec["containers"][0]
    ours = {
        "MODELFACTORY_MODEL_NAME": spec["model"],
        "MODELFACTORY_MODEL_ALIAS": spec.get("alias", "champion"),
        "MODELFACTORY_WORKERS": str(spec.get("workers", 2)),
        "MODELFACTORY_HTTP_HOST": "0.0.0.0",
        "MODELFACTORY_HTTP_PORT": str(HTTP_PORT),
        "MODELFACTORY_GRPC_PORT": str(GRPC_PORT),
        "MODELFACTORY_METRICS_PORT": str(METRICS_PORT),
    }
    if spec.get("useCase"):
        ours["MODELFACTORY_USE_CASE"] = spec["useCase"]
    extra = list(spec.get("env") or [])
    replaced = set(ours) | {e["name"] for e in extra}
    container["env"] = [
        *(e for e in container.get("env") or [] if e["name"] not in replaced),
        *({"name": k, "value": v} for k, v in ours.items()),
        *extra,
    ]
    _size_spool_volume(pod_spec, container, spec.get("workers", 2))
    if spec.get("resources"):
        container["resources"] = spec["resources"]
    if spec.get("image"):
        container["image"] = spec["image"]
    container["ports"] = [
        {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
        {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
        {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
    ]
    container.setdefault(
        "readinessProbe",
        {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5},
    )
    container.setdefault(
        "livenessProbe",
        {"httpGet": {"path": "/livez", "port": "http"}, "periodSeconds": 10, "failureThreshold": 6},
    )
    autoscaled = (spec.get("autoscaling") or {}).get("enabled", False)
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector(body)},
        "template": pod,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
    }
    if not autoscaled:
        deployment_spec["replicas"] = spec.get("replicas", 1)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(body),
        "spec": deployment_spec,
    }


def _size_spool_volume(pod_spec: dict[str, Any], container: dict[str, Any], workers: int) -> None:
    """An emptyDir of spools holds each worker's at its bound: sized for this spec's workers
    (past its sizeLimit the kubelet evicts the pod, spools and all)."""
    env = {e["name"]: e.get("value") for e in container.get("env") or []}
    bound = env.get(SPOOL_MAX_MB) or PredictionStoreSettings.model_fields["spool_max_mb"].default
    for volume in pod_spec.get("volumes") or []:
        if volume.get("name") == SPOOL_VOLUME and "emptyDir" in volume:
            size = int(workers) * int(bound) + SPOOL_SPARE_MB
            volume["emptyDir"] = {**(volume["emptyDir"] or {}), "sizeLimit": f"{size}Mi"}


def service(body: Mapping[str, Any]) -> dict[str, Any]:
    wanted = body["spec"].get("service") or {}
    kind = wanted.get("type", "ClusterIP")
    http = {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}
    grpc = {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"}
    grpc["appProtocol"] = "grpc"
    metrics = {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}
    if kind == "NodePort":
        for port, key in ((http, "httpNodePort"), (grpc, "grpcNodePort")):
            if wanted.get(key):
                port["nodePort"] = wanted[key]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(body),
        "spec": {"type": kind, "selector": selector(body), "ports": [http, grpc, metrics]},
    }


def autoscaler(body: Mapping[str, Any]) -> dict[str, Any] | None:
    wanted = body["spec"].get("autoscaling") or {}
    if not wanted.get("enabled"):
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(body),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": body["metadata"]["name"],
            },
            "minReplicas": wanted.get("minReplicas", 1),
            "maxReplicas": wanted.get("maxReplicas", 5),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": wanted.get("targetCPUUtilizationPercentage", 70),
                        },
                    },
                }
            ],
        },
    }


def disruption_budget(body: Mapping[str, Any]) -> dict[str, Any] | None:
    wanted = body["spec"].get("podDisruptionBudget") or {}
    if not wanted.get("enabled"):
        return None
    budget: dict[str, Any] = {"selector": {"matchLabels": selector(body)}}
    if "maxUnavailable" in wanted:
        budget["maxUnavailable"] = wanted["maxUnavailable"]
    else:
        budget["minAvailable"] = wanted.get("minAvailable", 1)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(body),
        "spec": budget,
    }


def owned_objects(
    body: Mapping[str, Any], template: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """(objects to apply, (apiVersion/kind, name) of optional objects to delete if present)."""
    wanted = [deployment(body, template), service(body)]
    absent = []
    name = body["metadata"]["name"]
    optional = (
        (autoscaler, "autoscaling/v2/HorizontalPodAutoscaler"),
        (disruption_budget, "policy/v1/PodDisruptionBudget"),
    )
    for render, kind in optional:
        obj = render(body)
        if obj is None:
            absent.append((kind, name))
        else:
            wanted.append(obj)
    return wanted, absent
