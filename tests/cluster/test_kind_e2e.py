"""modelfactory on a real Kubernetes cluster: chart, Kubeflow Pipelines run, registry, served model.

Made for the cluster `make kind-up` builds (kind + Kubeflow Pipelines + the chart with
values-kind.yaml); `make kind-e2e` runs it against that cluster. On the local control plane
`make test` starts, every test here is skipped, saying why: no container runs there. The
tests share one pipeline run and are meant to run in file order.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass

import httpx
import pytest
from mlflow import MlflowClient

from modelfactory.data.bank_marketing import FEATURES, generate_bank_marketing

from .conftest import FULLNAME, MODEL, NAMESPACE, RELEASE, tool

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(3600)]


# Session scope: it must run before the session fixtures these tests use (mlflow_url, ...).
@pytest.fixture(autouse=True, scope="session")
def _needs_a_cluster_that_runs_images(cluster):
    if cluster.fake_nodes:
        pytest.skip(
            f"needs a cluster that runs the images, with Kubeflow Pipelines and the "
            f"chart from `make kind-up`: {cluster.name} has only kwok nodes, which run "
            "no container, and no KFP; on kind: make kind-up && make kind-e2e"
        )


@pytest.fixture(autouse=True, scope="session")
def _as_the_mlflow_admin(_needs_a_cluster_that_runs_images, kube):
    """The chart's MLflow asks for an account: these checks read and compare as its admin (the
    password from the Secret the chart generated; docs/adr/0016)."""
    import base64

    secret = kube.core.read_namespaced_secret(f"{FULLNAME}-mlflow-accounts", NAMESPACE)
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"] = "admin"
    os.environ["MLFLOW_TRACKING_PASSWORD"] = base64.b64decode(
        secret.data["admin-password"]
    ).decode()
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# Where the pipeline's steps, running in the kubeflow namespace, find the chart's MLflow.
IN_CLUSTER_MLFLOW = f"http://{FULLNAME}-mlflow.{NAMESPACE}.svc.cluster.local:5000"
RUN_TIMEOUT = int(os.environ.get("MODELFACTORY_E2E_RUN_TIMEOUT", "3600"))
# Sent as "Authorization: Bearer ..." when serving requires a token (MODELFACTORY_AUTH_TOKEN).
AUTH_TOKEN = os.environ.get("MODELFACTORY_E2E_AUTH_TOKEN")


def _registry(mlflow_url: str) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)


def _versions(mlflow_url: str) -> dict[str, object]:
    return {v.version: v for v in _registry(mlflow_url).search_model_versions(f"name='{MODEL}'")}


def _champion(mlflow_url: str):
    try:
        return _registry(mlflow_url).get_model_version_by_alias(MODEL, "champion")
    except Exception:  # no model or no alias yet
        return None


@dataclass
class PipelineOutcome:
    run_id: str
    state: str
    error: str | None
    champion_before: str | None
    new_versions: list[str]


@pytest.fixture(scope="module")
def pipeline_outcome(kfp_host, mlflow_url, tmp_path_factory) -> PipelineOutcome:
    """Compile the classification pipeline, submit it to KFP, wait for it to finish."""
    import kfp
    from kfp import compiler
    from modelfactory_pipelines.classification import classification_pipeline

    package = tmp_path_factory.mktemp("kfp") / "classification.yaml"
    compiler.Compiler().compile(classification_pipeline, str(package))
    before = _versions(mlflow_url)
    champion_before = _champion(mlflow_url)

    client = kfp.Client(host=kfp_host)
    submitted = client.create_run_from_pipeline_package(
        str(package),
        arguments={"mlflow_tracking_uri": IN_CLUSTER_MLFLOW, "model_name": MODEL},
        run_name=f"e2e-classification-{time.strftime('%Y%m%d-%H%M%S')}",
        experiment_name="modelfactory-e2e",
        enable_caching=False,  # a cached run would register nothing new
    )
    run = client.wait_for_run_completion(submitted.run_id, timeout=RUN_TIMEOUT, sleep_duration=10)
    error = getattr(run, "error", None)
    new_versions = sorted(set(_versions(mlflow_url)) - set(before), key=int)
    return PipelineOutcome(
        submitted.run_id,
        str(run.state),
        str(error) if error else None,
        champion_before.version if champion_before else None,
        new_versions,
    )


def test_chart_is_deployed_and_mlflow_is_healthy(mlflow_url):
    """the Helm release is deployed and its MLflow answers /health, and the registry API to an
    account only."""
    status = subprocess.run(
        [tool("helm"), "status", RELEASE, "-n", NAMESPACE, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["info"]["status"] == "deployed"

    health = httpx.get(f"{mlflow_url}/health", timeout=10)
    assert health.status_code == 200 and health.text.strip() == "OK", health.text
    api = f"{mlflow_url}/api/2.0/mlflow/registered-models/search"
    anonymous = httpx.get(api, params={"max_results": 1}, timeout=10)
    assert anonymous.status_code == 401, anonymous.text  # the registry asks for an account
    admin = (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"])
    search = httpx.get(api, params={"max_results": 1}, auth=admin, timeout=10)
    assert search.status_code == 200, search.text


def test_kfp_run_of_classification_pipeline_registers_a_champion(pipeline_outcome, mlflow_url):
    """the classification pipeline compiled and run by Kubeflow Pipelines registers a champion."""
    outcome = pipeline_outcome
    assert outcome.state == "SUCCEEDED", (
        f"KFP run {outcome.run_id} ended {outcome.state}: {outcome.error}"
    )
    assert len(pipeline_outcome.new_versions) == 1, pipeline_outcome
    new = _versions(mlflow_url)[pipeline_outcome.new_versions[0]]
    assert new.run_id, "the version names the MLflow run that trained it"
    champion = _champion(mlflow_url)
    assert champion is not None, f"no champion after the run; gate said: {new.tags}"
    if pipeline_outcome.champion_before is None:
        # A first model that beats its baseline becomes champion (the promotion gate).
        assert champion.version == new.version, f"gate said: {new.tags}"


def _headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {AUTH_TOKEN}"} if AUTH_TOKEN else {}


def test_served_champion_answers_predict(kube, service_url, pipeline_outcome, mlflow_url):
    """the chart's serving Deployment loads the champion from MLflow and answers POST /predict."""
    assert pipeline_outcome.state == "SUCCEEDED", "no pipeline run to serve from"
    deployment = f"{FULLNAME}-serving-{MODEL}"
    # Not ready until a champion exists; it loads it within its retry interval once one does.
    kube.wait_available(deployment, NAMESPACE, timeout=900)
    url = service_url(deployment, NAMESPACE, "http")
    champion = _champion(mlflow_url).version
    records = generate_bank_marketing(3, seed=11)[list(FEATURES)].to_dict(orient="records")

    # Serving follows the registry: wait (bounded) until it answers with the current champion.
    deadline = time.monotonic() + 180
    while True:
        answer = httpx.post(
            f"{url}/predict", json={"records": records}, headers=_headers(), timeout=30
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if body["model_version"] == champion or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert body["model"] == MODEL
    served = body["model_version"]
    assert served == champion, f"serving v{served} while the champion is v{champion}"
    assert len(body["predictions"]) == len(records)
    assert all(0.0 <= p["probability"] <= 1.0 for p in body["predictions"])

    bad = httpx.post(
        f"{url}/predict",
        json={"records": [{**records[0], "age": "forty"}]},
        headers=_headers(),
        timeout=30,
    )
    assert bad.status_code == 422, bad.text
