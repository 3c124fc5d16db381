"""The Kubernetes API calls the operator makes: apply owned objects, find serving endpoints.

Owned objects are applied server-side (field manager ``modelfactory-operator``), so a spec
change patches exactly the fields the operator owns and a manual edit of another field stays.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from functools import cache
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from modelfactory.config import get_settings
from modelfactory.operator.resources import MANAGED_BY, METRICS_PORT

log = logging.getLogger(__name__)


@cache
def api_client() -> client.ApiClient:
    """In the cluster the pod's service account; elsewhere the current kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    # A connection per reconcile thread (the default is 5 per CPU).
    workers = get_settings().operator.workers
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize, workers)
    return client.ApiClient(configuration)


@cache
def dynamic() -> DynamicClient:
    return DynamicClient(api_client())


def apply(objects: Iterable[dict[str, Any]]) -> None:
    for obj in objects:
        resource = dynamic().resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        resource.server_side_apply(
            body=obj,
            name=obj["metadata"]["name"],
            namespace=obj["metadata"]["namespace"],
            field_manager=MANAGED_BY,
            force_conflicts=True,
        )


def delete_if_present(namespace: str, kind_path: str, name: str) -> None:
    """``kind_path``: 'autoscaling/v2/HorizontalPodAutoscaler' (group/version/kind)."""
    api_version, kind = kind_path.rsplit("/", 1)
    resource = dynamic().resources.get(api_version=api_version, kind=kind)
    try:
        resource.delete(name=name, namespace=namespace)
    except NotFoundError:
        pass


def serving_endpoints(namespace: str, service: str) -> dict[str, str]:
    """Ready endpoints of ``service`` (its EndpointSlices): pod (or address) -> metrics URL.

    Read as plain JSON: the typed client refuses a slice without endpoints (a Service whose
    pods are all gone), which is an ordinary state here.
    """
    response = client.DiscoveryV1Api(api_client()).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}", _preload_content=False
    )
    found: dict[str, str] = {}
    for endpoint_slice in json.loads(response.data).get("items", []):
        port = next(
            (p["port"] for p in endpoint_slice.get("ports") or () if p.get("name") == "metrics"),
            METRICS_PORT,
        )
        for endpoint in endpoint_slice.get("endpoints") or ():
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            for address in endpoint.get("addresses") or ():
                name = (endpoint.get("targetRef") or {}).get("name") or address
                host = f"[{address}]" if ":" in address else address
                found[name] = f"http://{host}:{port}"
    return found


def deployment_available(namespace: str, name: str) -> tuple[int, int]:
    """(available replicas, wanted replicas) of the serving Deployment; (0, 0) if missing."""
    try:
        found = client.AppsV1Api(api_client()).read_namespaced_deployment(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return 0, 0
        raise
    return (found.status.available_replicas or 0), (found.spec.replicas or 0)
