"""A DriftMonitor's handler as kopf calls it, on fake objects: the CronJob that runs its checks,
the identity they run as, and a spec the checks could not read.

The checks themselves (``monitor_job``) and the objects on a real control plane are tested in
``tests/cluster/test_operator.py``."""

from __future__ import annotations

import json

import kopf
import yaml

from modelfactory.operator import handlers
from tests.operator.conftest import MODEL, drift_monitor, patched

ACCOUNT = "bank-drift-drift-monitor"


def apply_monitor(obj: dict) -> dict:
    """The handler on ``obj``; the object as the API server then holds it."""
    body = kopf.Body(obj)
    patch = kopf.Patch()
    handlers.apply_monitor(body=body, spec=body.spec, patch=patch)
    return patched(obj, patch)


def conditions(obj: dict) -> dict[str, dict]:
    return {c["type"]: c for c in obj["status"]["conditions"]}


def pod_of(cron_job: dict) -> dict:
    return cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def test_a_driftmonitor_gets_a_cronjob_that_checks_its_model_on_its_schedule(cluster):
    obj = apply_monitor(drift_monitor(schedule="*/30 * * * *", minRows=50))

    assert cluster.kinds() == ["ServiceAccount", "Role", "RoleBinding", "CronJob"]
    for owned in cluster.applied:
        (owner,) = owned["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"]) == (
            "DriftMonitor",
            "bank-drift",
            True,
        )
    cron = cluster.one("CronJob")
    assert cron["metadata"]["name"] == "bank-drift-drift"
    assert cron["spec"]["schedule"] == "*/30 * * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"  # a slow check is never overlapped
    pod = pod_of(cron)
    assert pod["serviceAccountName"] == ACCOUNT and pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["command"][-3:] == ["python3", "-m", "modelfactory.operator.monitor_job"]
    args = container["args"]
    assert args[:4] == ["--namespace", "models", "--name", "bank-drift"]
    # The check's configuration travels in the CronJob: a spec change reaches the next check.
    assert json.loads(args[args.index("--config") + 1]) == {"model": MODEL, "minRows": 50}

    scheduled = conditions(obj)["Scheduled"]
    assert scheduled["status"] == "True"
    assert scheduled["message"] == f"CronJob bank-drift-drift checks {MODEL} at '*/30 * * * *'"
    assert obj["status"]["model"] == MODEL and obj["status"]["observedGeneration"] == 1


def test_its_checks_may_read_and_write_their_monitors_status_and_nothing_else(cluster):
    apply_monitor(drift_monitor())
    account, role, binding = (cluster.one(k) for k in ("ServiceAccount", "Role", "RoleBinding"))
    assert account["metadata"]["name"] == ACCOUNT
    assert account["automountServiceAccountToken"] is False  # only the check's pods mount it
    assert role["rules"] == [
        {
            "apiGroups": ["modelfactory.io"],
            "resources": ["driftmonitors/status"],
            "resourceNames": ["bank-drift"],
            "verbs": ["get", "patch"],
        }
    ]
    assert binding["roleRef"]["name"] == ACCOUNT
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": ACCOUNT, "namespace": "models"}
    ]
    assert pod_of(cluster.one("CronJob"))["automountServiceAccountToken"] is True


def test_a_monitor_naming_a_modeldeployment_may_read_that_one_alone(cluster):
    monitor = drift_monitor(modelDeployment="bank")
    del monitor["spec"]["model"]
    obj = apply_monitor(monitor)

    rules = cluster.one("Role")["rules"]
    assert rules[1] == {
        "apiGroups": ["modelfactory.io"],
        "resources": ["modeldeployments"],
        "resourceNames": ["bank"],
        "verbs": ["get"],
    }
    assert conditions(obj)["Scheduled"]["message"] == (
        "CronJob bank-drift-drift checks the model of ModelDeployment bank at '0 * * * *'"
    )
    assert "model" not in obj["status"]  # each check writes the model it found


def test_a_spec_the_checks_could_not_read_applies_nothing_and_says_why(cluster):
    obj = apply_monitor(drift_monitor(window={"since": "soon"}))
    assert cluster.applied == []
    scheduled = conditions(obj)["Scheduled"]
    assert (scheduled["status"], scheduled["reason"]) == ("False", "InvalidSpec")
    assert scheduled["message"].startswith("invalid spec, no CronJob applied:")
    assert "window.since" in scheduled["message"]


def test_the_checks_run_the_serving_template_with_the_operators_image_and_kfp(
    cluster, environment, tmp_path
):
    """The chart's serving template starts a shell that joins the database password into the
    prediction store's URL: the check keeps that prefix and runs its own program after it."""
    template = tmp_path / "template.yaml"
    template.write_text(
        yaml.safe_dump(
            {
                "spec": {
                    "containers": [
                        {
                            "name": "serving",
                            "image": "modelfactory-serving:1",
                            "command": ["/bin/sh", "-c", 'exec "$@"', "--"]
                            + ["python3", "-m", "modelfactory_serving"],
                            "env": [
                                {"name": "MODELFACTORY_PREDICTION_STORE_URL", "value": "pg"},
                                {"name": "MODELFACTORY_HTTP_PORT", "value": "3000"},
                            ],
                            "ports": [{"name": "http", "containerPort": 3000}],
                            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}},
                        }
                    ]
                }
            }
        )
    )
    environment(
        MODELFACTORY_OPERATOR_SERVING_TEMPLATE=str(template),
        MODELFACTORY_OPERATOR_MONITOR_IMAGE="modelfactory-components:7",
        MODELFACTORY_MONITORING_KFP_HOST="http://kfp:8888",
    )
    apply_monitor(drift_monitor())

    (container,) = pod_of(cluster.one("CronJob"))["containers"]
    assert container["image"] == "modelfactory-components:7"
    assert container["command"] == [
        *("/bin/sh", "-c", 'exec "$@"', "--"),
        *("python3", "-m", "modelfactory.operator.monitor_job"),
    ]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MODELFACTORY_PREDICTION_STORE_URL"] == "pg"
    assert env["MODELFACTORY_MONITORING_KFP_HOST"] == "http://kfp:8888"  # retrains go to KFP
    assert "MODELFACTORY_HTTP_PORT" not in env  # the service's, not the check's
    assert not {"ports", "readinessProbe"} & set(container)
