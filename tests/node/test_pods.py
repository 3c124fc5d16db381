"""Pods of ours on a real node: the serving image runs MLflow on a provisioned volume and the
served model, in a namespace that enforces Pod Security ``restricted``; a Service routes to
each, the serving pod finds MLflow by its Service's DNS name, and the host reaches both
through 127.0.0.1 (NodePorts kube-proxy binds on loopback, and ``kubectl port-forward``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from modelfactory.data.bank_marketing import FEATURES, generate_bank_marketing
from tests.support.real_node import RealNode
from tests.support.serving import MODEL, train_version

APP_UID = 10001  # the uid of the project's images, as the chart's securityContext names it
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


@dataclass
class App:
    namespace: str
    version: str  # the champion registered through MLflow's Service
    mlflow_url: str
    serving_url: str
    mlflow_ready_seconds: float  # from `kubectl apply` to the first pod of ours Ready
    serving_ready_seconds: float


def _pod_security() -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": APP_UID,
        "runAsGroup": APP_UID,
        "fsGroup": APP_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security() -> dict:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _scratch() -> tuple[list[dict], list[dict]]:
    """emptyDirs at /tmp and /home/app, as the chart mounts them on a read-only root."""
    volumes = [{"name": "tmp", "emptyDir": {}}, {"name": "home", "emptyDir": {}}]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "home", "mountPath": "/home/app"}]
    return volumes, mounts


def _deployment(name: str, image: str, container: dict, volumes: list[dict]) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": _pod_security(),
                    "containers": [
                        {
                            "name": name,
                            "image": image,
                            "imagePullPolicy": "Never",  # imported into the node, never pulled
                            "securityContext": _container_security(),
                            "resources": {"requests": {"cpu": "50m", "memory": "256Mi"}},
                            **container,
                        }
                    ],
                    "volumes": volumes,
                },
            },
        },
    }


def _service(name: str, port: int) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": "NodePort",
            "selector": {"app": name},
            "ports": [{"name": "http", "port": port, "targetPort": port}],
        },
    }


def _mlflow(namespace: str, image: str) -> list[dict]:
    volumes, mounts = _scratch()
    allowed = ",".join(
        [f"mlflow{suffix}" for suffix in ("", ":*", f".{namespace}", f".{namespace}:*")]
        + [f"mlflow.{namespace}.svc.cluster.local:*", "localhost:*", "127.0.0.1:*", "10.*"]
    )
    container = {
        "command": ["mlflow", "server"],
        "args": [
            "--host=0.0.0.0",
            "--port=5000",
            "--workers=1",
            "--backend-store-uri=sqlite:////mlflow/mlflow.db",
            "--serve-artifacts",
            "--artifacts-destination=/mlflow/artifacts",
        ],
        "env": [
            {"name": "MLFLOW_SERVER_ALLOWED_HOSTS", "value": allowed},
            {"name": "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "value": "false"},
        ],
        "ports": [{"name": "http", "containerPort": 5000}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": 5000}, "periodSeconds": 2},
        "volumeMounts": [*mounts, {"name": "store", "mountPath": "/mlflow"}],
    }
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "mlflow-store"},
        # No storageClassName: the cluster's default (local-path, named `standard` as on kind).
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    store = {"name": "store", "persistentVolumeClaim": {"claimName": "mlflow-store"}}
    return [
        claim,
        _deployment("mlflow", image, container, [*volumes, store]),
        _service("mlflow", 5000),
    ]


def _serving(namespace: str, image: str) -> list[dict]:
    volumes, mounts = _scratch()
    container = {
        "env": [
            # By the Service's DNS name: cluster DNS (CoreDNS) answers it from this pod.
            {
                "name": "MLFLOW_TRACKING_URI",
                "value": f"http://mlflow.{namespace}.svc.cluster.local:5000",
            },
            {"name": "MODELFACTORY_MODEL_NAME", "value": MODEL},
            {"name": "MODELFACTORY_MODEL_ALIAS", "value": "champion"},
            {"name": "MODELFACTORY_WORKERS", "value": "1"},
        ],
        "ports": [{"name": "http", "containerPort": 3000}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 3000}, "periodSeconds": 2},
        "livenessProbe": {
            "httpGet": {"path": "/livez", "port": 3000},
            "periodSeconds": 10,
            "failureThreshold": 30,
        },
        "volumeMounts": mounts,
    }
    return [_deployment("serving", image, container, volumes), _service("serving", 3000)]


def _apply(node: RealNode, namespace: str, objects: list[dict]) -> None:
    node.cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps({"kind": "List", "apiVersion": "v1", "items": objects}),
    )


@pytest.fixture(scope="module")
def app(real_node: RealNode, serving_image: str, tmp_path_factory) -> App:
    """MLflow and the served model in a restricted namespace, the champion registered from
    the host through MLflow's NodePort on 127.0.0.1."""
    namespace = real_node.cluster.create_namespace("node", labels=RESTRICTED)
    started = time.monotonic()
    _apply(real_node, namespace, _mlflow(namespace, serving_image))
    real_node.wait_ready(namespace, "app=mlflow", timeout=600)
    mlflow_ready = time.monotonic() - started
    mlflow_url = real_node.node_port_url("mlflow", namespace)

    from modelfactory.registry import Registry

    version = train_version(mlflow_url, tmp_path_factory.mktemp("node-train"), seed=1)
    Registry(mlflow_url).set_alias(MODEL, "champion", version)

    started = time.monotonic()
    _apply(real_node, namespace, _serving(namespace, serving_image))
    real_node.wait_ready(namespace, "app=serving", timeout=600)
    serving_ready = time.monotonic() - started
    real_node.timings["first pod of ours Ready (MLflow, new PVC)"] = mlflow_ready
    real_node.timings["serving pod Ready (champion loaded)"] = serving_ready
    return App(
        namespace,
        version,
        mlflow_url,
        real_node.node_port_url("serving", namespace),
        mlflow_ready,
        serving_ready,
    )


def _pod(node: RealNode, namespace: str, app_label: str) -> str:
    pods = node.cluster.get("pods", "-n", namespace, "-l", f"app={app_label}")["items"]
    assert pods, f"no pod app={app_label} in {namespace}"
    return pods[0]["metadata"]["name"]


def test_the_node_is_a_kubelet_on_containerd_that_runs_the_cluster_dns(real_node: RealNode):
    node = real_node.cluster.get("node", real_node.name)
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == real_node.cluster.server_version
    assert info["containerRuntimeVersion"].startswith("containerd://2.")
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert ready["Ready"] == "True", node["status"]["conditions"]
    dns = real_node.cluster.get("service", "kube-dns", "-n", "kube-system")
    assert dns["spec"]["clusterIP"] == "10.96.0.10"
    real_node.wait_ready("kube-system", "k8s-app=kube-dns", timeout=120)


def test_pods_of_ours_run_as_pod_security_restricted_demands(real_node: RealNode, app: App):
    labels = real_node.cluster.get("namespace", app.namespace)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    pod = _pod(real_node, app.namespace, "serving")
    assert real_node.exec(app.namespace, pod, "id", "-u").stdout.strip() == str(APP_UID)
    write = real_node.exec(app.namespace, pod, "touch", "/opt/venv/x", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr

    # A pod as root with privilege escalation is refused at admission, before any node sees it.
    root_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "as-root"},
        "spec": {"containers": [{"name": "c", "image": "modelfactory-serving:any"}]},
    }
    refused = real_node.cluster.kubectl(
        "create",
        "-n",
        app.namespace,
        "--dry-run=server",
        "-f",
        "-",
        input=json.dumps(root_pod),
        check=False,
    )
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr


def test_mlflow_keeps_its_store_on_a_volume_the_provisioner_made(real_node: RealNode, app: App):
    claim = real_node.cluster.get("pvc", "mlflow-store", "-n", app.namespace)
    assert claim["status"]["phase"] == "Bound"
    assert claim["spec"]["storageClassName"] == "standard"
    volume = real_node.cluster.get("pv", claim["spec"]["volumeName"])
    path = Path(
        (volume["spec"].get("hostPath") or volume["spec"].get("local") or {}).get("path", "")
    )
    assert path.is_relative_to(real_node.state_dir / "node" / "local-path"), volume["spec"]
    # What the pod wrote (uid 10001) is on the node's disk: the registry's database and the
    # model artifacts the host uploaded through MLflow's Service.
    assert (path / "mlflow.db").stat().st_size > 0
    models = [p for p in (path / "artifacts").rglob("MLmodel")]
    assert models, f"no model artifacts under {path / 'artifacts'}"
    assert (path / "mlflow.db").stat().st_uid == APP_UID


def test_a_service_name_resolves_from_another_pod(real_node: RealNode, app: App):
    cluster_ip = real_node.cluster.get("service", "mlflow", "-n", app.namespace)["spec"][
        "clusterIP"
    ]
    pod = _pod(real_node, app.namespace, "serving")
    lookup = "import socket, sys; print(socket.gethostbyname(sys.argv[1]))"
    for name in (f"mlflow.{app.namespace}.svc.cluster.local", "mlflow"):
        answer = real_node.exec(app.namespace, pod, "python3", "-c", lookup, name)
        assert answer.stdout.strip() == cluster_ip, (name, answer.stdout, answer.stderr)
    # ... and the Service routes there: the serving pod loaded the champion through it.
    health = "import urllib.request as u; print(u.urlopen('http://mlflow:5000/health').read())"
    assert "OK" in real_node.exec(app.namespace, pod, "python3", "-c", health).stdout


def test_the_served_champion_answers_the_host_through_127_0_0_1(real_node: RealNode, app: App):
    records = generate_bank_marketing(3, seed=5)[list(FEATURES)].to_dict(orient="records")
    for url in (
        app.serving_url,  # the NodePort kube-proxy binds on loopback
        real_node.port_forward("service/serving", app.namespace, 3000, path="/livez"),
    ):
        assert url.startswith("http://127.0.0.1:")
        answer = httpx.post(f"{url}/predict", json={"records": records}, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model"] == MODEL and body["model_version"] == str(app.version)
        assert len(body["predictions"]) == len(records)
