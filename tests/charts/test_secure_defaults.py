"""Every workload the chart renders runs locked down, in every values set CI renders."""

from __future__ import annotations

import pytest

from .chartlib import (
    VALUE_SETS,
    WORKLOAD_KINDS,
    containers,
    of_kind,
    pod_spec,
    render,
)


def _workloads(name):
    objects = render(VALUE_SETS[name])
    return objects, of_kind(objects, *WORKLOAD_KINDS)


def _bound_service_accounts(objects) -> set[str]:
    """ServiceAccounts that some (Cluster)RoleBinding of the chart grants API access."""
    bound = set()
    for binding in of_kind(objects, "RoleBinding", "ClusterRoleBinding"):
        for subject in binding.get("subjects", []):
            if subject.get("kind") == "ServiceAccount":
                bound.add(subject["name"])
    return bound


@pytest.mark.parametrize("name", VALUE_SETS)
def test_workloads_run_as_non_root_with_runtime_default_seccomp(helm, name):
    objects, workloads = _workloads(name)
    assert workloads
    problems = []
    for w in workloads:
        spec = pod_spec(w)
        pod_sc = spec.get("securityContext", {})
        where = f"{w['kind']}/{w['metadata']['name']}"
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(key):
                problems.append(f"{where}: {key}")
        for c in containers(spec):
            sc = c.get("securityContext", {})
            cwhere = f"{where} container {c['name']}"
            if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
                problems.append(f"{cwhere}: runAsNonRoot is not true")
            uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
            if uid is None or uid == 0:
                problems.append(
                    f"{cwhere}: no non-zero runAsUser (the image's USER is not checked here)"
                )
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
            if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
                problems.append(f"{cwhere}: seccompProfile {seccomp}")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{cwhere}: allowPrivilegeEscalation is not false")
            if sc.get("privileged"):
                problems.append(f"{cwhere}: privileged")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{cwhere}: readOnlyRootFilesystem is not true")
            caps = sc.get("capabilities", {})
            if "ALL" not in caps.get("drop", []):
                problems.append(f"{cwhere}: capabilities not dropped (drop: {caps.get('drop')})")
            if caps.get("add"):
                problems.append(f"{cwhere}: adds capabilities {caps['add']}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_read_only_containers_get_a_writable_tmp(helm, name):
    _, workloads = _workloads(name)
    problems = []
    for w in workloads:
        spec = pod_spec(w)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in containers(spec):
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
            tmp = mounts.get("/tmp")
            if tmp is None:
                problems.append(f"{w['kind']}/{w['metadata']['name']} {c['name']}: no /tmp mount")
            elif "emptyDir" not in volumes.get(tmp["name"], {}) or tmp.get("readOnly"):
                problems.append(
                    f"{w['kind']}/{w['metadata']['name']} {c['name']}: /tmp not a writable emptyDir"
                )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_container_has_requests_and_a_memory_limit(helm, name):
    _, workloads = _workloads(name)
    problems = []
    for w in workloads:
        for c in containers(pod_spec(w)):
            res = c.get("resources", {})
            for kind, key in (("requests", "cpu"), ("requests", "memory"), ("limits", "memory")):
                if not res.get(kind, {}).get(key):
                    problems.append(
                        f"{w['kind']}/{w['metadata']['name']} {c['name']}: no {kind}.{key}"
                    )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_no_service_account_token_where_no_rbac_is_granted(helm, name):
    objects, workloads = _workloads(name)
    bound = _bound_service_accounts(objects)
    service_accounts = {sa["metadata"]["name"]: sa for sa in of_kind(objects, "ServiceAccount")}
    problems = []
    for w in workloads:
        spec = pod_spec(w)
        sa = spec.get("serviceAccountName", "default")
        where = f"{w['kind']}/{w['metadata']['name']}"
        if sa == "default":
            problems.append(f"{where}: runs as the namespace's default ServiceAccount")
        if sa not in service_accounts and not w["metadata"].get("annotations", {}).get(
            "helm.sh/hook"
        ):
            problems.append(f"{where}: ServiceAccount {sa} is not rendered by the chart")
        if sa not in bound and spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: mounts an API token although {sa} has no RBAC")
    for name_, sa in service_accounts.items():
        if name_ not in bound and sa.get("automountServiceAccountToken") is not False:
            problems.append(f"ServiceAccount/{name_}: automountServiceAccountToken is not false")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_serving_has_health_probes_on_the_http_port(helm, name):
    objects = render(VALUE_SETS[name])
    serving = [
        d
        for d in of_kind(objects, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "serving"
    ]
    for d in serving:
        (c,) = d["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"http": 3000, "grpc": 8001, "metrics": 8002}, ports
        for probe, path in (
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
            ("startupProbe", "/healthz"),
        ):
            get = c[probe]["httpGet"]
            assert get["path"] == path and ports.get(get["port"], get["port"]) == 3000, (probe, get)
