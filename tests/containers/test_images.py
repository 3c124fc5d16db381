"""The project's images run for real: the pipeline in the component image, the model in serving.

Containers use the host network: the MLflow server these tests start listens on the
host's 127.0.0.1, and so do the serving containers (on a free port), so no traffic
leaves the loopback interface.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from modelfactory.data.bank_marketing import FEATURES, generate_bank_marketing, write_bank_marketing
from modelfactory.local.ports import free_port

pytestmark = pytest.mark.integration

MODEL_NAME = "bank-marketing"
APP_UID = "10001"  # the uid the Dockerfiles create and the chart's securityContext names
COMPILERS = ("gcc", "cc", "g++", "c++", "clang", "x86_64-linux-gnu-gcc")


def _run_pipeline_in_docker(pipeline_root: Path, tracking_uri: str, labels: dict[str, str]) -> dict:
    """The classification pipeline under kfp's DockerRunner: a container per step."""
    import kfp.local
    from modelfactory_pipelines.classification import classification_pipeline

    pipeline_root.mkdir(parents=True, exist_ok=True)
    # The steps run as uid 10001 and write their outputs into this bind-mounted folder.
    pipeline_root.chmod(0o777)
    kfp.local.init(
        runner=kfp.local.DockerRunner(network_mode="host", labels=labels),
        pipeline_root=str(pipeline_root),
    )
    # The data the demo trains on (a file the steps read through the bind mount): on it the
    # forest beats the logistic baseline, so the promotion gate makes the first version champion.
    data = generate_bank_marketing(20000, seed=0)
    source = write_bank_marketing(data, pipeline_root / "bank.csv")
    source.chmod(0o644)
    log_path = pipeline_root / "pipeline.log"
    with (
        open(log_path, "w") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        try:
            task = classification_pipeline(
                source=str(source), seed=42, model_name=MODEL_NAME, mlflow_tracking_uri=tracking_uri
            )
        except RuntimeError as exc:
            failure = exc
        else:
            failure = None
    if failure is not None:
        tail = "\n".join(log_path.read_text().splitlines()[-60:])
        pytest.fail(
            f"the pipeline failed in the component image: {failure}\n--- last lines of "
            f"{log_path} ---\n{tail}",
            pytrace=False,
        )
    return json.loads(task.output)


@pytest.fixture(scope="module")
def pipeline_summary(tmp_path_factory, mlflow_server, images, session_label) -> dict:
    root = tmp_path_factory.mktemp("pipeline-root")
    return _run_pipeline_in_docker(root, mlflow_server, session_label)


@pytest.mark.timeout(1800)
def test_pipeline_runs_in_component_image_and_registers_a_champion(pipeline_summary, mlflow_server):
    assert pipeline_summary["model_name"] == MODEL_NAME
    assert pipeline_summary["alias"] == "champion", json.dumps(pipeline_summary)
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert champion.version == str(pipeline_summary["version"])
    # The steps logged the holdout metrics of the run that made the version.
    metrics = client.get_run(champion.run_id).data.metrics
    assert 0.5 < metrics["holdout_roc_auc"] <= 1.0, metrics


@pytest.fixture(scope="module")
def serving_url(docker_client, images, mlflow_server, pipeline_summary, session_label):
    """The serving image as the chart runs it: uid 10001, read-only root, no capabilities."""
    port, grpc_port = free_port(), free_port()
    container = docker_client.containers.run(
        images.serving,
        detach=True,
        labels=session_label,
        network_mode="host",
        user=f"{APP_UID}:{APP_UID}",
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        # The chart mounts emptyDirs (group-writable via fsGroup) at exactly these two paths.
        tmpfs={
            "/tmp": "rw,mode=1777,size=512m",
            "/home/app": f"rw,size=1g,uid={APP_UID},gid={APP_UID}",
        },
        environment={
            "MLFLOW_TRACKING_URI": mlflow_server,
            "MODELFACTORY_MODEL_NAME": MODEL_NAME,
            "MODELFACTORY_MODEL_ALIAS": "champion",
            "MODELFACTORY_HTTP_HOST": "127.0.0.1",
            "MODELFACTORY_HTTP_PORT": str(port),
            "MODELFACTORY_GRPC_PORT": str(grpc_port),
            "MODELFACTORY_WORKERS": "1",
        },
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            container.reload()
            if container.status == "exited":
                code = container.attrs["State"]["ExitCode"]
                pytest.fail(
                    f"the serving container exited ({code}):\n"
                    f"{container.logs(tail=60).decode(errors='replace')}",
                    pytrace=False,
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the serving container was not ready in 300 s:\n"
                    f"{container.logs(tail=60).decode(errors='replace')}",
                    pytrace=False,
                )
            time.sleep(1)
        yield url
    finally:
        container.remove(force=True)


def _customers(n: int) -> list[dict]:
    return generate_bank_marketing(n, seed=123)[list(FEATURES)].to_dict(orient="records")


@pytest.mark.timeout(1800)
def test_serving_image_predicts_with_the_champion(serving_url, pipeline_summary):
    records = _customers(3)
    answer = httpx.post(f"{serving_url}/predict", json={"records": records}, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == MODEL_NAME
    assert body["model_version"] == str(pipeline_summary["version"])
    assert len(body["predictions"]) == len(records)
    for prediction in body["predictions"]:
        assert prediction["class"] in ("yes", "no")
        assert 0.0 <= prediction["probability"] <= 1.0


@pytest.mark.timeout(1800)
def test_serving_image_refuses_bad_records_with_422(serving_url):
    record = {**_customers(1)[0], "age": "forty"}
    answer = httpx.post(f"{serving_url}/predict", json={"records": [record]}, timeout=30)
    assert answer.status_code == 422, answer.text
    assert any("age" in problem for problem in answer.json()["problems"])

    no_records = httpx.post(f"{serving_url}/predict", json={"rows": []}, timeout=30)
    assert no_records.status_code == 422, no_records.text


# Runs as root inside the image only to look everywhere; the image's own user is checked apart.
_HYGIENE_SCRIPT = f"""
import glob, json, os, shutil
print(json.dumps({{
    "compilers": [c for c in {COMPILERS!r} if shutil.which(c)],
    "pip_caches": [p for p in ("/root/.cache/pip", "/home/app/.cache/pip", "/tmp/pip-cache")
                   if os.path.exists(p)] + glob.glob("/tmp/pip-*"),
    "build_leftovers": [p for p in ("/src", "/wheelhouse") if os.path.exists(p)],
}}))
"""


@pytest.mark.parametrize("which", ["components", "serving"])
def test_image_runs_as_non_root_without_compiler_or_pip_cache(
    docker_client, images, session_label, which
):
    image = getattr(images, which)
    config = docker_client.images.get(image).attrs["Config"]
    assert config["User"].split(":")[0] == APP_UID, f"{image} runs as {config['User']!r}"

    whoami = docker_client.containers.run(
        image, ["id", "-u"], entrypoint=[], remove=True, network_mode="none", labels=session_label
    )
    assert whoami.decode().strip() == APP_UID

    found = json.loads(
        docker_client.containers.run(
            image,
            ["python3", "-c", _HYGIENE_SCRIPT],
            entrypoint=[],
            user="0",
            remove=True,
            network_mode="none",
            labels=session_label,
        ).decode()
    )
    assert found == {"compilers": [], "pip_caches": [], "build_leftovers": []}, f"{image}: {found}"


def test_component_image_imports_what_the_steps_need(docker_client, images, session_label):
    """The venv holds the package, kfp and mlflow; pipelines and components import from /opt."""
    script = (
        "import kfp, mlflow, modelfactory, modelfactory_pipelines.classification, "
        "modelfactory_components.ingest_data.component; print(modelfactory.__version__)"
    )
    out = docker_client.containers.run(
        images.components,
        ["python3", "-c", script],
        entrypoint=[],
        remove=True,
        network_mode="none",
        labels=session_label,
        environment={"HOME": "/home/app"},
    )
    from modelfactory import __version__

    assert out.decode().strip().splitlines()[-1] == __version__
