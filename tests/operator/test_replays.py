"""A ModelDeployment's replay step on a cluster, as kopf calls the handler: the operator starts a
Job that replays the champion's log (the prediction log is read in that pod, never in the
serving path), and judges the result the Job records on the challenger's version."""

from __future__ import annotations

import time

from modelfactory.rollout.replay import TAG, ReplayResult
from tests.operator.conftest import MODEL, model_deployment, reconcile

STEPS = {"steps": [{"replay": {"lastRequests": 5000}}, {"setWeight": 50}, {"analysis": {}}]}


def test_a_replay_step_starts_a_job_and_gives_the_challenger_no_traffic(mlflow, cluster):
    mlflow.set_registered_model_alias(MODEL, "challenger", "2")
    obj, _ = reconcile(model_deployment(rollout=STEPS))
    job = cluster.one("Job")
    assert job["metadata"]["name"].startswith("bank-replay-")
    assert job["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    pod = job["spec"]["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "rollout-replay"
    assert pod["spec"]["automountServiceAccountToken"] is False  # it needs no Kubernetes API
    container = pod["spec"]["containers"][0]
    assert container["command"][-3:] == ["python3", "-m", "modelfactory.operator.replay_job"]
    args = dict(zip(container["args"][::2], container["args"][1::2], strict=True))
    assert (args["--model"], args["--challenger"], args["--champion"]) == (MODEL, "2", "1")
    assert args["--last"] == "5000" and float(args["--since"]) < time.time() - 86_000
    assert "readinessProbe" not in container and "ports" not in container
    status = obj["status"]
    assert (status["phase"], status["weight"], status["replay"]["version"]) == (
        "Progressing",
        0,
        "2",
    )
    assert "replaying" in status["message"]
    assert "rollout.mode" not in mlflow.models[MODEL]["tags"]  # no traffic tags: no traffic


def test_a_failed_replay_recorded_by_the_job_rolls_the_challenger_back(mlflow, cluster):
    mlflow.set_registered_model_alias(MODEL, "challenger", "2")
    obj, _ = reconcile(model_deployment(rollout=STEPS))
    shuffled = ReplayResult(
        "2", "1", 5000, rows=5000, compared=5000, agreed=2400, finished_at=time.time()
    )
    mlflow.set_model_version_tag(MODEL, "2", TAG, shuffled.as_tag())
    obj, _ = reconcile(obj)
    status = obj["status"]
    assert status["phase"] == "Degraded" and status["replay"]["verdict"] == "Failed"
    assert "agreement 0.48 [" in status["message"]
    assert "challenger" not in mlflow.models[MODEL]["aliases"]  # out of any rollout
    assert mlflow.version_tags[(MODEL, "2")]["rollout.outcome"] == "rolled-back"


def test_a_replay_job_still_running_holds_the_step(mlflow, cluster):
    mlflow.set_registered_model_alias(MODEL, "challenger", "2")
    obj, _ = reconcile(model_deployment(rollout=STEPS))
    obj, _ = reconcile(obj)
    assert obj["status"]["phase"] == "Progressing" and obj["status"]["weight"] == 0
    assert cluster.kinds().count("Job") == 1  # asked once; the Job runs
