"""The chart on a real API server: install into a Pod Security "restricted" namespace,
every object present, workloads at their replicas, Services with endpoints, upgrade (the
generated Secret kept), rollback, uninstall (only what is kept on purpose remains).

One release goes through its life in file order; each test checks one step of it. On the
local control plane no container runs: each test's docstring ends with what that leaves out.
"""

from __future__ import annotations

import sys

import pytest
import yaml

from modelfactory.local.mlflow_server import EmbeddedMlflow
from modelfactory.local.ports import free_port

from .helmrelease import (
    RESTRICTED,
    WORKLOADS,
    Release,
    eventually,
    kept_on_uninstall,
    uninstall_problems,
)
from .operator_process import running_operator

pytestmark = pytest.mark.cluster

# The upgrade's changed values: a second model, two replicas each, a label on every object.
UPGRADE_VALUES = {
    "commonLabels": {"modelfactory.io/test-revision": "two"},
    "serving": {"replicaCount": 2, "models": [{"name": "bank-marketing"}, {"name": "store-sales"}]},
}


@pytest.fixture(scope="module")
def release(cluster, tmp_path_factory) -> Release:
    """The chart with its default values, installed into a namespace enforcing "restricted", and
    its operator running (on this machine, as the chart's operator ServiceAccount: no container
    runs here), so the serving Deployments of its ModelDeployments exist. The operator reads a
    registry of its own, empty: no rollout starts."""
    namespace = cluster.create_namespace("mf-chart", RESTRICTED)
    rel = Release(cluster, "mf", namespace)
    installed = rel.install()
    rel.install_output = installed.stdout + installed.stderr
    work = tmp_path_factory.mktemp("lifecycle-operator")
    registry = EmbeddedMlflow(work / "mlflow", port=free_port())
    registry.start()
    with running_operator(cluster, namespace, f"{rel.fullname}-operator", registry.url, work):
        eventually(rel.rollout_problems, 120, "the release's serving Deployments")
        yield rel
        cluster.helm("uninstall", rel.name, "--namespace", namespace, check=False)
    registry.stop()
    cluster.delete_namespace(namespace)


def test_install_is_admitted_in_a_restricted_namespace(release):
    """helm install of the defaults succeeds where Pod Security enforces "restricted", with
    no PodSecurity warning for any pod template.
    Not covered on the local control plane: whether the images really run as that user."""
    assert release.status()["info"]["status"] == "deployed"
    assert "PodSecurity" not in release.install_output, release.install_output
    namespace = release.cluster.get("namespace", release.namespace)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_object_of_the_release_exists(release):
    """Every object in the release's manifest exists in the API, owned by the release.
    Not covered on the local control plane: nothing the objects do once containers run."""
    manifest = release.manifest()
    live = release.live(manifest)
    assert sorted((o["kind"], o["metadata"]["name"]) for o in live) == sorted(
        (o["kind"], o["metadata"]["name"]) for o in manifest
    )
    for o in live:
        annotations = o["metadata"].get("annotations", {})
        assert annotations.get("meta.helm.sh/release-name") == release.name, o["metadata"]
    kinds = {o["kind"] for o in live}
    assert {
        "Deployment",
        "StatefulSet",
        "Service",
        "Secret",
        "ConfigMap",
        "ServiceAccount",
        "PersistentVolumeClaim",
        "NetworkPolicy",
    } <= kinds


def test_workloads_reach_their_replicas_and_claims_bind(release):
    """Deployments and the StatefulSet have their replicas Ready (kwok stands in for the
    kubelet), scheduled to nodes, and every PersistentVolumeClaim is Bound.
    Not covered on the local control plane: probes (kwok reports Ready without running them)
    and volume contents (PVs are fake)."""
    release.wait_rolled_out()
    claims = release.cluster.get("pvc", "--namespace", release.namespace)["items"]
    names = {c["metadata"]["name"]: c["status"].get("phase") for c in claims}
    assert names == {
        f"{release.fullname}-mlflow-artifacts": "Bound",
        f"data-{release.fullname}-postgresql-0": "Bound",
    }


def test_services_get_endpoints_of_their_pods(release):
    """Every Service's EndpointSlices list exactly the pods its selector picks, on its ports.
    Not covered on the local control plane: traffic (no kube-proxy, no CNI, no DNS)."""
    release.wait_rolled_out()
    services = [o for o in release.manifest() if o["kind"] == "Service"]
    assert services

    def problems() -> list[str]:
        found = []
        for svc in services:
            name = svc["metadata"]["name"]
            pods = {p["metadata"]["name"] for p in release.pods(svc["spec"]["selector"])}
            slices = release.cluster.get(
                "endpointslices",
                "--namespace",
                release.namespace,
                "-l",
                f"kubernetes.io/service-name={name}",
            )["items"]
            endpoints = [e for s in slices for e in s.get("endpoints") or []]
            targets = {e["targetRef"]["name"] for e in endpoints}
            ports = {p["name"] for s in slices for p in s.get("ports") or []}
            if targets != pods:
                found.append(f"Service {name}: endpoints {sorted(targets)}, pods {sorted(pods)}")
            if ports != {p["name"] for p in svc["spec"]["ports"]}:
                found.append(f"Service {name}: endpoint ports {sorted(ports)}")
            serving = svc["spec"]["selector"].get("app.kubernetes.io/component") == "serving"
            if release.cluster.fake_nodes or not serving:
                not_ready = [
                    e["targetRef"]["name"] for e in endpoints if not e["conditions"].get("ready")
                ]
                if not_ready:
                    found.append(f"Service {name}: endpoints not ready: {not_ready}")
        return found

    eventually(problems, 120, "endpoints of every Service")


def test_service_accounts_get_no_api_access(release):
    """No ServiceAccount of the chart may read anything through the API (RBAC grants none).
    Not covered on the local control plane: whether a token would be mounted (no kubelet)."""
    accounts = [o["metadata"]["name"] for o in release.manifest() if o["kind"] == "ServiceAccount"]
    assert len(accounts) >= 3
    for account in accounts:
        subject = f"system:serviceaccount:{release.namespace}:{account}"
        for verb, resource in (("get", "secrets"), ("list", "pods"), ("list", "configmaps")):
            done = release.cluster.kubectl(
                "auth",
                "can-i",
                verb,
                resource,
                "--namespace",
                release.namespace,
                "--as",
                subject,
                check=False,
            )
            assert done.stdout.strip() == "no", (account, verb, resource, done.stdout)


def test_upgrade_with_changed_values_keeps_the_generated_secret(release, tmp_path):
    """helm upgrade (a second model, two replicas, a new label) rolls out, runs the schema
    migration hook and the registry accounts' hook, and leaves the generated database and MLflow
    account passwords as they were.
    Not covered on the local control plane: the migration and the reconcile themselves (their
    pods never run)."""
    secret = f"{release.fullname}-postgresql"
    accounts = f"{release.fullname}-mlflow-accounts"
    before = release.secret_data(secret)
    accounts_before = release.secret_data(accounts)
    values = tmp_path / "upgrade-values.yaml"
    values.write_text(yaml.safe_dump(UPGRADE_VALUES))
    release.upgrade([values])
    release.wait_rolled_out()

    status = release.status()
    assert (status["version"], status["info"]["status"]) == (2, "deployed")
    assert release.secret_data(secret) == before, "the upgrade changed the database passwords"
    assert release.secret_data(accounts) == accounts_before, "the upgrade changed MLflow's"
    for model in ("bank-marketing", "store-sales"):
        deployment = release.get("deployment", f"{release.fullname}-serving-{model}")
        assert deployment["spec"]["replicas"] == 2, model
    for o in release.live(release.manifest()):
        assert o["metadata"]["labels"]["modelfactory.io/test-revision"] == "two", o["metadata"]
    # The pre-upgrade (schema) and post-upgrade (accounts) hook Jobs ran to completion (and were
    # deleted, per their delete policy).
    for job in (f"{release.fullname}-mlflow-db-upgrade", f"{release.fullname}-mlflow-accounts"):
        events = release.cluster.get(
            "events",
            "--namespace",
            release.namespace,
            "--field-selector",
            f"involvedObject.kind=Job,involvedObject.name={job}",
        )["items"]
        assert "Completed" in {e["reason"] for e in events}, (job, [e["message"] for e in events])


def test_rollback_restores_the_first_revision(release):
    """helm rollback to revision 1 removes the second model, scales back, drops the label,
    and still keeps the passwords.
    Not covered on the local control plane: containers restarting with the old settings."""
    secret = f"{release.fullname}-postgresql"
    before = release.secret_data(secret)
    release.rollback(1)
    status = release.status()
    assert (status["version"], status["info"]["status"]) == (3, "deployed")
    assert "Rollback to 1" in status["info"]["description"]

    def problems() -> list[str]:
        found = release.rollout_problems()
        names = {
            d["metadata"]["name"]
            for d in release.cluster.get("deployments", "--namespace", release.namespace)["items"]
        }
        if f"{release.fullname}-serving-store-sales" in names:
            found.append("the second model's Deployment is still there")
        return found

    eventually(problems, 300, "the first revision")
    deployment = release.get("deployment", f"{release.fullname}-serving-bank-marketing")
    assert deployment["spec"]["replicas"] == 1
    assert "modelfactory.io/test-revision" not in deployment["metadata"]["labels"]
    assert release.secret_data(secret) == before


def test_uninstall_leaves_only_what_is_kept_on_purpose(release):
    """helm uninstall removes every object but the database and MLflow accounts Secrets and the
    artifacts PVC (helm.sh/resource-policy: keep) and the database's PVC (StatefulSets keep their
    claims).
    The ModelDeployments go first (the chart's pre-delete hook), finalized by the operator.
    Not covered on the local control plane: the data on those volumes (PVs are fake), and the
    hook's Job container (kwok completes it unrun: its program runs here first)."""
    cleanup = release.cluster.run(
        [
            sys.executable,
            "-m",
            "modelfactory.operator.cleanup",
            f"--namespace={release.namespace}",
            f"--selector=app.kubernetes.io/instance={release.name},app.kubernetes.io/component=serving",
        ],
        timeout=360,
    )
    assert "deleted the ModelDeployments" in cleanup.stdout
    release.uninstall()
    eventually(
        lambda: uninstall_problems(release.cluster, release.namespace, release.fullname),
        120,
        "an uninstalled release",
    )
    assert all(kind not in WORKLOADS for kind, _ in kept_on_uninstall(release.fullname))
