"""A ModelDeployment's handlers as kopf calls them, on fake objects: the objects it owns, each
rollout tick's status and registry writes, a user's action annotation, its deletion.

The same handlers run for real on a control plane in ``tests/cluster/test_operator.py``; these
check a handler change in seconds."""

from __future__ import annotations

import kopf
import pytest

from modelfactory.operator import handlers
from tests.operator.conftest import MODEL, model_deployment, reconcile

STEPS = {"steps": [{"setWeight": 20}, {"analysis": {}}, {"setWeight": 100}]}
ACTION = "modelfactory.io/action"


def env_of(deployment: dict) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def apply_owned(obj: dict) -> None:
    body = kopf.Body(obj)
    handlers.apply_owned(body=body, logger=kopf.LocalObjectLogger(body=body, settings=None))


def test_a_modeldeployment_gets_a_deployment_and_service_serving_its_model(cluster):
    apply_owned(model_deployment(replicas=3, workers=4))
    assert cluster.kinds() == ["Deployment", "Service"]
    for obj in cluster.applied:
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "modelfactory.io/v1alpha1",
                "kind": "ModelDeployment",
                "name": "bank",
                "uid": "uid-bank",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]  # deleting the ModelDeployment deletes them
    deployment = cluster.one("Deployment")
    assert deployment["spec"]["replicas"] == 3
    env = env_of(deployment)
    assert env["MODELFACTORY_MODEL_NAME"] == MODEL and env["MODELFACTORY_WORKERS"] == "4"
    ports = {p["name"]: p["port"] for p in cluster.one("Service")["spec"]["ports"]}
    assert ports == {"http": 3000, "grpc": 8001, "metrics": 8002}
    # Neither autoscaling nor a disruption budget asked for: any left from before goes.
    assert [(kind, name) for _, kind, name in cluster.deleted] == [
        ("autoscaling/v2/HorizontalPodAutoscaler", "bank"),
        ("policy/v1/PodDisruptionBudget", "bank"),
    ]


def test_autoscaling_on_applies_an_autoscaler_and_leaves_replicas_to_it(cluster):
    apply_owned(
        model_deployment(
            autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 6},
            podDisruptionBudget={"enabled": True},
        )
    )
    assert cluster.kinds() == [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ]
    autoscaler = cluster.one("HorizontalPodAutoscaler")["spec"]
    assert (autoscaler["minReplicas"], autoscaler["maxReplicas"]) == (2, 6)
    assert autoscaler["scaleTargetRef"]["name"] == "bank"
    assert "replicas" not in cluster.one("Deployment")["spec"]  # the autoscaler's to set
    assert cluster.deleted == []


def test_a_new_challenger_starts_the_rollout_in_the_registry_and_the_status(
    mlflow, cluster, events
):
    obj, _ = reconcile(model_deployment(rollout=STEPS))
    assert obj["status"]["phase"] == "Healthy" and obj["status"]["champion"] == "1"
    assert events.posted == []

    mlflow.set_registered_model_alias(MODEL, "challenger", "2")
    obj, _ = reconcile(obj)

    status = obj["status"]
    assert (status["phase"], status["challenger"], status["weight"], status["step"]) == (
        "Progressing",
        "2",
        20,
        1,
    )
    # What every serving pod polls: v2 gets 20% of requests as a canary.
    tags = mlflow.models[MODEL]["tags"]
    assert (tags["rollout.mode"], tags["rollout.weight"], tags["rollout.version"]) == (
        "canary",
        "20",
        "2",
    )
    assert events.reasons() == ["RolloutStarted"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"Available": "False", "Progressing": "True", "Promoted": "False"}


def test_ready_serving_pods_make_the_modeldeployment_available(mlflow, cluster):
    cluster.available = (2, 3)
    obj, _ = reconcile(model_deployment())
    assert obj["status"]["availableReplicas"] == 2
    (available,) = [c for c in obj["status"]["conditions"] if c["type"] == "Available"]
    assert available["status"] == "True" and available["message"] == "2 of 3 serving pods available"


def test_an_unreachable_registry_holds_the_rollout_and_says_why_in_the_status(
    mlflow, cluster, events
):
    mlflow.set_registered_model_alias(MODEL, "challenger", "2")
    obj, _ = reconcile(model_deployment(rollout=STEPS))
    tags_before = dict(mlflow.models[MODEL]["tags"])

    mlflow.down = True
    obj, _ = reconcile(obj)  # no exception: kopf would retry the handler, not hold the rollout

    status = obj["status"]
    assert status["phase"] == "Progressing" and status["weight"] == 20
    assert status["message"].startswith(
        "registry unreachable (Connection refused: http://mlflow:5000): holding"
    )
    mlflow.down = False
    assert mlflow.models[MODEL]["tags"] == tags_before
    assert events.reasons() == ["RolloutStarted"]


def test_an_invalid_spec_degrades_the_status_naming_the_field(mlflow, cluster):
    obj, _ = reconcile(model_deployment(rollout={"steps": [{"setWeight": 150}]}))
    assert obj["status"]["phase"] == "Degraded"
    assert obj["status"]["message"] == (
        "invalid spec: spec.rollout.steps[0].setWeight: 150 is outside 0 to 100"
    )
    assert mlflow.models[MODEL]["tags"] == {}  # nothing claimed, nothing moved


def test_promote_full_makes_the_challenger_champion_and_the_annotation_is_consumed(
    mlflow, cluster, events
):
    mlflow.set_registered_model_alias(MODEL, "challenger", "2")
    obj, _ = reconcile(model_deployment(rollout=STEPS))
    obj["metadata"]["annotations"] = {ACTION: "promote-full"}

    obj, patch = reconcile(obj)

    assert patch["metadata"]["annotations"] == {ACTION: None}  # removed: acted on once
    assert ACTION not in obj["metadata"]["annotations"]
    assert mlflow.models[MODEL]["aliases"] == {"champion": "2"}
    assert not any(key.startswith("rollout.") for key in mlflow.models[MODEL]["tags"])
    assert mlflow.version_tags[(MODEL, "2")]["rollout.outcome"] == "promoted"
    status = obj["status"]
    assert (status["phase"], status["champion"], status.get("challenger")) == ("Healthy", "2", None)
    assert status["history"][0]["outcome"] == "promoted"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Promoted"] == "True"
    assert events.reasons() == ["RolloutStarted", "Promoted"]


def test_abort_rolls_the_challenger_back_and_retry_rolls_it_out_again(mlflow, cluster, events):
    mlflow.set_registered_model_alias(MODEL, "challenger", "2")
    obj, _ = reconcile(model_deployment(rollout=STEPS))
    obj["metadata"]["annotations"] = {ACTION: "abort"}

    obj, _ = reconcile(obj)

    assert mlflow.models[MODEL]["aliases"] == {"champion": "1"}
    assert mlflow.version_tags[(MODEL, "2")]["rollout.reason"] == "aborted by a user"
    status = obj["status"]
    assert (status["phase"], status["lastOutcome"], status["message"]) == (
        "Degraded",
        "aborted",
        "v2 aborted: aborted by a user",
    )
    assert events.posted[-1] == ("Warning", "Aborted", "v2 aborted: aborted by a user")

    obj["metadata"]["annotations"] = {ACTION: "retry"}
    obj, _ = reconcile(obj)
    assert mlflow.models[MODEL]["aliases"] == {"champion": "1", "challenger": "2"}
    assert obj["status"]["phase"] == "Progressing" and obj["status"]["challenger"] == "2"
    assert events.reasons()[-1] == "RolloutStarted"


def test_an_unknown_action_is_warned_about_and_consumed(mlflow, cluster, events):
    obj = model_deployment()
    obj["metadata"]["annotations"] = {ACTION: "promote-now"}
    obj, patch = reconcile(obj)
    assert patch["metadata"]["annotations"] == {ACTION: None}
    assert events.posted == [("Warning", "UnknownAction", "ignored action 'promote-now'")]
    assert obj["status"]["phase"] == "Healthy"


def test_a_model_another_modeldeployment_drives_is_served_but_not_moved(mlflow, cluster):
    mlflow.set_registered_model_tag(MODEL, "modelfactory.deployment", "staging/bank")
    mlflow.set_registered_model_alias(MODEL, "challenger", "2")
    obj, _ = reconcile(model_deployment(rollout=STEPS))
    assert "driven by staging/bank" in obj["status"]["message"]
    assert not any(key.startswith("rollout.") for key in mlflow.models[MODEL]["tags"])


def test_a_steady_modeldeployment_is_not_patched_again(mlflow, cluster):
    obj, _ = reconcile(model_deployment())
    _, patch = reconcile(obj)
    assert dict(patch) == {}


def clear_rollout_tags(obj: dict) -> None:
    body = kopf.Body(obj)
    handlers.clear_rollout_tags(
        spec=body.spec, meta=body.meta, logger=kopf.LocalObjectLogger(body=body, settings=None)
    )


def test_deleting_a_modeldeployment_clears_its_models_rollout_and_releases_it(mlflow, cluster):
    mlflow.set_registered_model_alias(MODEL, "challenger", "2")
    obj, _ = reconcile(model_deployment(rollout=STEPS))
    assert mlflow.models[MODEL]["tags"]["rollout.weight"] == "20"

    clear_rollout_tags(obj)

    # Serving falls back to the champion alone; another ModelDeployment may take the model.
    assert mlflow.models[MODEL]["tags"] == {}
    assert mlflow.models[MODEL]["aliases"] == {"champion": "1", "challenger": "2"}


def test_deleting_leaves_a_rollout_another_modeldeployment_drives(mlflow, cluster):
    tags = {"modelfactory.deployment": "staging/bank", "rollout.weight": "50"}
    mlflow.models[MODEL]["tags"].update(tags)
    clear_rollout_tags(model_deployment())
    assert mlflow.models[MODEL]["tags"] == tags


def test_deleting_a_modeldeployment_of_an_unregistered_model_clears_nothing(mlflow, cluster):
    clear_rollout_tags(model_deployment(model="never-registered"))
    assert list(mlflow.models) == [MODEL]


def test_deleting_while_the_registry_is_down_is_retried_keeping_the_finalizer(mlflow, cluster):
    mlflow.models[MODEL]["tags"].update(
        {"modelfactory.deployment": "models/bank", "rollout.weight": "50"}
    )
    mlflow.down = True
    with pytest.raises(kopf.TemporaryError, match="registry unreachable, rollout tags kept"):
        clear_rollout_tags(model_deployment())
    mlflow.down = False
    assert mlflow.models[MODEL]["tags"]["rollout.weight"] == "50"


def test_the_status_written_is_the_status_read_back(mlflow, cluster):
    """A tick resumes from the status the last one wrote (a restarted operator goes on)."""
    mlflow.set_registered_model_alias(MODEL, "challenger", "2")
    obj, _ = reconcile(model_deployment(rollout=STEPS))
    again, _ = reconcile(obj)
    assert again["status"]["rolloutStartedAt"] == obj["status"]["rolloutStartedAt"]
    assert again["status"]["message"] == (  # on to the analysis step, not started over
        "step 2/3 (analysis (1 interval)) of v2, weight 20%; no analysis interval closed yet"
    )
