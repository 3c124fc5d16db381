"""Every serving pod gets a writable volume for its workers' prediction spools, whoever renders it
(the chart's static Deployment, the operator from a ModelDeployment or from its own default
template): an emptyDir holding every worker's spool at its bound, or the claim the values name."""

from __future__ import annotations

import copy

from modelfactory.operator.resources import deployment, load_serving_template
from tests.charts.chartlib import of_kind, render


def spool_of(made: dict) -> tuple[dict, dict[str, str]]:
    """(the spool's volume, the container's environment); the volume is where the setting says."""
    pod = made["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    (mount,) = [
        m
        for m in container["volumeMounts"]
        if m["mountPath"] == env["MODELFACTORY_PREDICTION_SPOOL_DIR"]
    ]
    assert not mount.get("readOnly")
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    return volume, env


def serving_deployment(objects) -> dict:
    (found,) = [
        d
        for d in of_kind(objects, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "serving"
    ]
    return found


def test_the_chart_spools_on_an_emptydir_holding_every_worker_at_its_bound():
    for sets in (("operator.enabled=false",), ()):  # static, or made by the operator
        made = serving_deployment(render(sets=(*sets, "serving.workers=3")))
        volume, env = spool_of(made)
        assert env["MODELFACTORY_PREDICTION_SPOOL_MAX_MB"] == "256"
        assert volume["emptyDir"] == {"sizeLimit": f"{3 * 256 + 64}Mi"}


def test_a_modeldeployment_with_more_workers_gets_a_larger_spool_volume():
    (body,) = of_kind(render(), "ModelDeployment")
    body = copy.deepcopy(body)
    body["metadata"]["uid"] = "uid-bank"
    body["spec"]["workers"] = 5
    volume, _ = spool_of(deployment(body, {}))
    assert volume["emptyDir"] == {"sizeLimit": f"{5 * 256 + 64}Mi"}


def test_a_claim_named_in_the_values_holds_the_spools_instead():
    sets = (
        "operator.enabled=false",
        "serving.predictionSpool.existingClaim=prediction-spools",
        "serving.predictionSpool.maxMB=1024",
        "serving.predictionSpool.fsync=true",
    )
    volume, env = spool_of(serving_deployment(render(sets=sets)))
    assert volume["persistentVolumeClaim"] == {"claimName": "prediction-spools"}
    assert env["MODELFACTORY_PREDICTION_SPOOL_MAX_MB"] == "1024"
    assert env["MODELFACTORY_PREDICTION_SPOOL_FSYNC"] == "true"


def test_the_operators_default_template_spools_on_an_emptydir_too():
    body = {
        "metadata": {"name": "bank", "namespace": "ml", "uid": "uid-bank"},
        "spec": {"model": "bank-marketing", "workers": 2},
    }
    volume, _ = spool_of(deployment(body, load_serving_template()))
    assert volume["emptyDir"] == {"sizeLimit": f"{2 * 256 + 64}Mi"}
