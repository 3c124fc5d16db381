"""The API server judges the rendered chart: server-side dry-run of every ci values file in a
Pod Security "restricted" namespace, and a deliberate regression that the PodSecurity
admission plugin, not a check of ours, refuses.
"""

from __future__ import annotations

import re
import shutil

import pytest

from .helmrelease import CHART, CI_VALUES, RESTRICTED, Release, eventually

pytestmark = pytest.mark.cluster

POD_SECURITY_WARNING = "would violate PodSecurity"


@pytest.fixture(scope="module")
def restricted_namespace(cluster):
    namespace = cluster.create_namespace("mf-dry-run", RESTRICTED)
    yield namespace
    cluster.delete_namespace(namespace)


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name.removesuffix("-values.yaml"))
def test_rendered_manifests_pass_server_side_dry_run(cluster, restricted_namespace, values):
    """Every object rendered with this values file, hooks and the test Pod included, passes
    the API server's schema validation (strict fields), defaulting and admission as a
    server-side apply dry run, with no PodSecurity warning for any pod template.
    Not covered on the local control plane: nothing of a dry run runs anything anyway."""
    rendered = cluster.helm(
        "template",
        "mf",
        str(CHART),
        "--namespace",
        restricted_namespace,
        "-f",
        str(values),
        "--kube-version",
        cluster.server_version,
    ).stdout
    documents = [doc for doc in rendered.split("\n---") if re.search(r"^kind:", doc, re.M)]
    # A Pod is admitted only if its ServiceAccount exists (the ServiceAccount admission
    # plugin), and a dry run creates none: create the chart's ServiceAccounts for real first.
    accounts = [doc for doc in documents if re.search(r"^kind: ServiceAccount$", doc, re.M)]
    if accounts:
        cluster.kubectl(
            "apply",
            "--server-side",
            "--field-manager=modelfactory-tests",
            "--namespace",
            restricted_namespace,
            "-f",
            "-",
            input="\n---\n".join(accounts),
        )
    done = cluster.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--validate=strict",
        "--field-manager=modelfactory-tests",
        "--namespace",
        restricted_namespace,
        "-f",
        "-",
        input=rendered,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert POD_SECURITY_WARNING not in done.stderr, done.stderr
    applied = [line for line in done.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(applied) == len(documents), done.stdout


def _chart_with_privilege_escalation(tmp_path):
    """A copy of the chart whose serving container alone allows privilege escalation."""
    chart = tmp_path / "modelfactory"
    shutil.copytree(CHART, chart)
    template = chart / "templates" / "serving" / "_podtemplate.tpl"
    source = template.read_text()
    secure = "{{- toYaml $.Values.containerSecurityContext | nindent 8 }}"
    assert source.count(secure) == 1
    template.write_text(
        source.replace(
            secure,
            '{{- toYaml (merge (dict "allowPrivilegeEscalation" '
            "true) $.Values.containerSecurityContext) "
            "| nindent 8 }}",
        )
    )
    return chart


def test_privilege_escalation_is_refused_by_pod_security_admission(cluster, tmp_path):
    """A chart whose serving container sets allowPrivilegeEscalation: true fails helm install
    in a "restricted" namespace: the API server warns on the Deployment, and the PodSecurity
    admission plugin refuses its pods (its message in the Deployment's ReplicaFailure
    condition). The same chart in a namespace without that label gets its pods, so the
    namespace's policy refused them, not the chart, helm or a test of ours.
    Not covered on the local control plane: what the container could do with the privilege."""
    chart = _chart_with_privilege_escalation(tmp_path)
    rendered = cluster.helm("template", "mf", str(chart), "--set", "operator.enabled=false").stdout
    assert rendered.count("allowPrivilegeEscalation: true") == 1, "the regression is one container"
    serving = "mf-modelfactory-serving-bank-marketing"
    verdict = (
        'PodSecurity "restricted:latest": allowPrivilegeEscalation != false '
        '(container "serving" must set securityContext.allowPrivilegeEscalation=false)'
    )

    namespace = cluster.create_namespace("mf-regression", RESTRICTED)
    permissive = cluster.create_namespace("mf-regression-control")
    try:
        refused = Release(cluster, "mf", namespace, chart)
        # The chart's own serving Deployment (no operator), so helm waits on its pods.
        static = ["operator.enabled=false"]
        done = refused.install(sets=static, wait=True, timeout="20s", check=False)
        assert done.returncode != 0, "helm install succeeded in the restricted namespace"
        # The API server's warning on the Deployment (the namespace's warn label), which helm
        # prints (its logger escapes the quotes).
        output = (done.stdout + done.stderr).replace("\\", "")
        assert f"would violate {verdict}" in output, output

        def refusal() -> list[str]:
            conditions = refused.get("deployment", serving).get("status", {}).get("conditions", [])
            failures = [c["message"] for c in conditions if c["type"] == "ReplicaFailure"]
            if not any(f"is forbidden: violates {verdict}" in m for m in failures):
                return [f"no ReplicaFailure from PodSecurity yet: {conditions}"]
            return []

        eventually(refusal, 60, "the PodSecurity refusal")
        assert refused.pods({"app.kubernetes.io/component": "serving"}) == []
        # Only the regressed container was refused: MLflow's pod was admitted.
        assert refused.pods({"app.kubernetes.io/component": "mlflow"})

        # The control: the same chart where the namespace enforces nothing gets its pod.
        allowed = Release(cluster, "mf", permissive, chart)
        allowed.install(sets=static, wait=False)
        eventually(
            lambda: (
                []
                if allowed.pods({"app.kubernetes.io/component": "serving"})
                else ["no serving pod"]
            ),
            60,
            "the serving pod in the unrestricted namespace",
        )
    finally:
        for name in (namespace, permissive):
            cluster.helm("uninstall", "mf", "--namespace", name, check=False)
            cluster.delete_namespace(name)
