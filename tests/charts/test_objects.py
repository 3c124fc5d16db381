"""Labels, selectors and the optional objects (NetworkPolicy, HPA, PDB) of the chart."""

from __future__ import annotations

import re

import pytest

from .chartlib import (
    CHART,
    FULLNAME,
    RELEASE,
    VALUE_SETS,
    WORKLOAD_KINDS,
    named,
    of_kind,
    pod_labels,
    render,
    selector_matches,
)

STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "helm.sh/chart",
)


# Objects the operator makes carry one of these labels (and its managed-by).
OPERATOR_MADE = {"modelfactory.io/modeldeployment", "modelfactory.io/driftmonitor"}


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_object_and_pod_carries_the_standard_labels(helm, name):
    problems = []
    for obj in render(VALUE_SETS[name]):
        if obj["kind"] == "CustomResourceDefinition":
            continue  # crds/: one per cluster, no release's (Helm neither templates nor owns them)
        labels = obj["metadata"].get("labels", {})
        missing = [k for k in STANDARD_LABELS if k not in labels]
        if missing:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: missing {missing}")
        elif labels["app.kubernetes.io/instance"] != RELEASE or labels[
            "app.kubernetes.io/managed-by"
        ] != ("modelfactory-operator" if OPERATOR_MADE & set(labels) else "Helm"):
            problems.append(
                f"{obj['kind']}/{obj['metadata']['name']}: wrong instance/managed-by {labels}"
            )
        if obj["kind"] in WORKLOAD_KINDS:
            missing = [k for k in STANDARD_LABELS if k not in pod_labels(obj)]
            if missing:
                problems.append(f"{obj['kind']}/{obj['metadata']['name']} pods: missing {missing}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_selectors_select_exactly_their_own_pods(helm, name):
    objects = render(VALUE_SETS[name])
    workloads = of_kind(objects, "Deployment", "StatefulSet")
    for w in workloads:
        others = [o for o in workloads if o is not w]
        assert selector_matches(w["spec"]["selector"], pod_labels(w)), w["metadata"]["name"]
        for o in others:  # overlapping selectors make controllers fight over pods
            assert not selector_matches(w["spec"]["selector"], pod_labels(o)), (
                w["metadata"]["name"],
                o["metadata"]["name"],
            )
    for svc in of_kind(objects, "Service"):
        selected = [
            w
            for w in workloads
            if selector_matches({"matchLabels": svc["spec"]["selector"]}, pod_labels(w))
        ]
        assert len(selected) == 1, (
            f"Service {svc['metadata']['name']} selects {[w['metadata']['name'] for w in selected]}"
        )
        container_ports = {
            p["name"]
            for c in selected[0]["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in container_ports, (svc["metadata"]["name"], port)


def test_drift_checks_are_covered_by_their_policy_and_reach_the_prediction_log(helm):
    objects = render(VALUE_SETS["multi-model"])
    policy = named(objects, "NetworkPolicy", f"{FULLNAME}-drift-monitor")
    postgres = named(objects, "NetworkPolicy", f"{FULLNAME}-postgresql")
    crons = of_kind(objects, "CronJob")
    assert [c["metadata"]["name"] for c in crons] == ["bank-marketing-drift"]
    labels = pod_labels(crons[0])
    assert selector_matches(policy["spec"]["podSelector"], labels)
    assert policy["spec"]["ingress"] == []
    allowed = postgres["spec"]["ingress"][0]["from"][0]["podSelector"]
    assert selector_matches(allowed, labels)
    # The check reads the prediction log as serving does: the password joined in by the prefix.
    pod = crons[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"][:2] == ["/bin/sh", "-ec"]
    assert container["command"][-3:] == ["python3", "-m", "modelfactory.operator.monitor_job"]
    env = {e["name"] for e in container["env"]}
    assert {"DB_URL", "DB_PASSWORD_FILE", "MLFLOW_TRACKING_URI"} <= env
    assert "MODELFACTORY_HTTP_PORT" not in env and "ports" not in container
    assert pod["serviceAccountName"] == "bank-marketing-drift-monitor"


def test_pods_of_resources_applied_by_hand_are_the_releases_to_its_policies(helm):
    """A DriftMonitor and a ModelDeployment applied with kubectl, as the README shows (none of
    the release's labels): the pods the operator makes for them from the chart's templates are
    selected by their part's NetworkPolicy and admitted by PostgreSQL's, so drift checks, serving
    pods and replays reach the prediction log where policies are enforced."""
    import yaml

    from modelfactory.operator import monitors, replays, resources
    from modelfactory.rollout.actions import RunReplay

    objects = render()
    config = named(objects, "ConfigMap", f"{FULLNAME}-operator-serving-template")
    templates = {key: yaml.safe_load(text) for key, text in config["data"].items()}
    postgres = named(objects, "NetworkPolicy", f"{FULLNAME}-postgresql")
    admitted = [p["podSelector"] for rule in postgres["spec"]["ingress"] for p in rule["from"]]

    def by_hand(kind: str, name: str, spec: dict) -> dict:
        meta = {"name": name, "namespace": "models", "uid": f"uid-{name}"}
        return {
            "apiVersion": "modelfactory.io/v1alpha1",
            "kind": kind,
            "metadata": meta,
            "spec": spec,
        }

    monitor = by_hand("DriftMonitor", "bank-marketing", {"model": "bank-marketing"})
    model = by_hand("ModelDeployment", "bank-marketing", {"model": "bank-marketing"})
    image = "modelfactory-components:0.1.0"
    made = {
        "drift-monitor": monitors.cron_job(monitor, templates["drift-check.yaml"], image, {}),
        "serving": resources.deployment(model, templates["template.yaml"]),
        "rollout-replay": replays.replay_job(
            model, templates["rollout-replay.yaml"], image, RunReplay("2", "1", 100, 0.0), 600
        ),
    }
    for part, workload in made.items():
        labels = pod_labels(workload)
        policy = named(objects, "NetworkPolicy", f"{FULLNAME}-{part}")
        assert selector_matches(policy["spec"]["podSelector"], labels), (part, labels)
        assert any(selector_matches(s, labels) for s in admitted), (part, labels)
        assert labels["app.kubernetes.io/component"] == part
    # The objects themselves still carry the resource's own name as their instance.
    assert made["drift-monitor"]["metadata"]["labels"]["app.kubernetes.io/instance"] == (
        "bank-marketing"
    )


def test_network_policies_by_default(helm):
    objects = render()
    policies = {p["metadata"]["name"]: p for p in of_kind(objects, "NetworkPolicy")}
    assert set(policies) == {
        f"{FULLNAME}-postgresql",
        f"{FULLNAME}-mlflow",
        f"{FULLNAME}-serving",
        f"{FULLNAME}-operator",
        f"{FULLNAME}-operator-cleanup",
        f"{FULLNAME}-mlflow-db-upgrade",
        f"{FULLNAME}-mlflow-accounts",
        f"{FULLNAME}-tests",
        f"{FULLNAME}-drift-monitor",
        f"{FULLNAME}-rollout-replay",
    }
    # Every pod, the migration Job's and the helm test Pod too, is covered by a policy with
    # both directions.
    for w in of_kind(objects, *WORKLOAD_KINDS):
        covering = [
            p
            for p in policies.values()
            if selector_matches(p["spec"]["podSelector"], pod_labels(w))
        ]
        assert covering, w["metadata"]["name"]
        assert {"Ingress", "Egress"} <= set(covering[0]["spec"]["policyTypes"])
    # PostgreSQL opens no connection at all.
    assert policies[f"{FULLNAME}-postgresql"]["spec"]["egress"] == []
    # Serving may reach MLflow and PostgreSQL (and DNS), nothing more; its metrics port takes
    # only the operator.
    egress = policies[f"{FULLNAME}-serving"]["spec"]["egress"]
    ports = sorted(p["port"] for rule in egress for p in rule["ports"])
    assert ports == [53, 53, 5000, 5432]
    (metrics,) = [
        rule
        for rule in policies[f"{FULLNAME}-serving"]["spec"]["ingress"]
        if [p["port"] for p in rule["ports"]] == [8002]
    ]
    operator_pod = pod_labels(named(objects, "Deployment", f"{FULLNAME}-operator"))
    assert [selector_matches(peer["podSelector"], operator_pod) for peer in metrics["from"]] == [
        True
    ]
    # The operator reaches the API server, the registry, the serving pods' metrics and the
    # prediction log (the ground truth of a rollout's answers).
    egress = policies[f"{FULLNAME}-operator"]["spec"]["egress"]
    ports = sorted(p["port"] for rule in egress for p in rule["ports"])
    assert ports == [53, 53, 443, 5000, 5432, 6443, 8002, 9090]  # 9090: PromQL metrics
    # The migration and accounts Jobs reach only the database; the helm test Pod only what it
    # checks; the uninstall's cleanup Job only the API server.
    for name, expected in (
        ("mlflow-db-upgrade", [53, 53, 5432]),
        ("mlflow-accounts", [53, 53, 5432]),
        ("tests", [53, 53, 3000, 5000]),
        ("operator-cleanup", [53, 53, 443, 6443]),
        ("rollout-replay", [53, 53, 5000, 5432]),  # the log and the registry; no API server
    ):
        policy = policies[f"{FULLNAME}-{name}"]["spec"]
        assert policy["ingress"] == [], name
        assert sorted(p["port"] for rule in policy["egress"] for p in rule["ports"]) == expected


def test_network_policies_can_be_disabled(helm):
    assert of_kind(render(VALUE_SETS["networkpolicy-off"]), "NetworkPolicy") == []


def test_autoscaling_and_disruption_budgets_only_when_enabled(helm):
    defaults = render()
    assert of_kind(defaults, "HorizontalPodAutoscaler", "PodDisruptionBudget") == []
    assert (
        named(defaults, "Deployment", f"{FULLNAME}-serving-bank-marketing")["spec"]["replicas"] == 1
    )

    objects = render(VALUE_SETS["hpa-pdb"])
    hpas = {h["metadata"]["name"]: h for h in of_kind(objects, "HorizontalPodAutoscaler")}
    pdbs = {p["metadata"]["name"]: p for p in of_kind(objects, "PodDisruptionBudget")}
    on = {f"{FULLNAME}-serving-bank-marketing", f"{FULLNAME}-serving-store-sales"}
    assert set(hpas) == on and set(pdbs) == on  # taxi-anomalies turned both off explicitly
    for hpa in hpas.values():
        target = named(objects, "Deployment", hpa["spec"]["scaleTargetRef"]["name"])
        assert "replicas" not in target["spec"], "the HPA owns the replica count"
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
        assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    assert (
        named(objects, "Deployment", f"{FULLNAME}-serving-taxi-anomalies")["spec"]["replicas"] == 3
    )
    assert pdbs[f"{FULLNAME}-serving-bank-marketing"]["spec"] == {
        "minAvailable": 1,
        "selector": named(objects, "Deployment", f"{FULLNAME}-serving-bank-marketing")["spec"][
            "selector"
        ],
    }
    assert pdbs[f"{FULLNAME}-serving-store-sales"]["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in pdbs[f"{FULLNAME}-serving-store-sales"]["spec"]
    for pdb in pdbs.values():
        target = named(objects, "Deployment", pdb["metadata"]["name"])
        assert selector_matches(pdb["spec"]["selector"], pod_labels(target))


def test_per_model_overrides(helm):
    objects = render(VALUE_SETS["multi-model"])
    store = named(objects, "Deployment", f"{FULLNAME}-serving-store-sales")
    (c,) = store["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["MODELFACTORY_MODEL_ALIAS"] == "challenger"
    assert c["resources"]["limits"]["memory"] == "4Gi"
    assert env["LOG_LEVEL"] == "info"  # global extraEnv reaches every model
    assert "MODELFACTORY_FEATURE_FLAG" not in env  # a model's extraEnv stays its own
    bank = named(objects, "Deployment", f"{FULLNAME}-serving-bank-marketing")
    (c,) = bank["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["MODELFACTORY_WORKERS"] == "4" and env["MODELFACTORY_FEATURE_FLAG"] == "on"
    assert c["image"].endswith("@sha256:" + "0123456789abcdef" * 4)


def test_no_persistence_means_no_claims(helm):
    objects = render(VALUE_SETS["multi-model"])
    assert of_kind(objects, "PersistentVolumeClaim") == []
    assert (
        "volumeClaimTemplates"
        not in named(objects, "StatefulSet", f"{FULLNAME}-postgresql")["spec"]
    )


def test_claim_templates_do_not_change_with_chart_version_or_labels(helm):
    """A StatefulSet's volumeClaimTemplates are immutable: what differs between two releases
    of the chart (its version, commonLabels) must not reach them, or `helm upgrade` fails
    (the API server refused exactly that in tests/cluster)."""
    templates = []
    for sets in ((), ("commonLabels.team=ml",)):
        sts = named(render(sets=sets), "StatefulSet", f"{FULLNAME}-postgresql")
        templates.append(sts["spec"]["volumeClaimTemplates"])
    assert templates[0] == templates[1]
    labels = templates[0][0]["metadata"]["labels"]
    assert "helm.sh/chart" not in labels and "app.kubernetes.io/version" not in labels


def test_every_value_is_documented():
    """Each leaf of values.yaml has a `# --` comment on itself or on an enclosing key."""
    undocumented = []
    stack: list[tuple[int, str, bool]] = []  # (indent, key, documented)
    previous_comment = False
    for line in (CHART / "values.yaml").read_text().splitlines():
        stripped = line.strip()
        if not stripped:
            previous_comment = False
            continue
        if stripped.startswith("#"):
            previous_comment = previous_comment or stripped.startswith("# --")
            continue
        m = re.match(r"^(\s*)([A-Za-z][\w.-]*):(.*)$", line)
        if not m:  # list items and block content belong to the key above
            previous_comment = False
            continue
        indent, key, rest = len(m[1]), m[2], m[3].strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        documented = previous_comment or any(d for _, _, d in stack)
        is_leaf = rest not in ("",) and not rest.startswith("#")
        if is_leaf and not documented:
            undocumented.append(".".join([k for _, k, _ in stack] + [key]))
        stack.append((indent, key, documented))
        previous_comment = False
    assert not undocumented, f"values without a `# --` comment: {undocumented}"
