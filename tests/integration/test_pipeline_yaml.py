"""The compiled YAML under pipelines/ is what users upload to the KFP UI and what `modelfactory run`
runs on one machine: it must match the code."""

import pytest
import yaml
from modelfactory_pipelines.compile import HERE, PIPELINES, compile_pipeline


def pipeline_spec(text: str) -> list[dict]:
    """The pipeline spec a user uploads (and the Kubernetes settings of its tasks, the second
    document), without the SDK's version stamp: a kfp patch release changes the stamp, never the
    pipeline."""
    documents = [d for d in yaml.safe_load_all(text) if d]
    documents[0].pop("sdkVersion", None)
    return documents


@pytest.mark.parametrize("name", PIPELINES)
def test_compiled_pipeline_is_up_to_date(name, tmp_path, monkeypatch):
    monkeypatch.delenv("MODELFACTORY_COMPONENT_IMAGE", raising=False)
    committed = HERE / f"{name}.yaml"
    assert committed.exists(), f"{committed} is missing: run `make pipelines`"
    fresh = compile_pipeline(name, tmp_path / f"{name}.yaml")
    assert pipeline_spec(fresh.read_text()) == pipeline_spec(committed.read_text()), (
        f"{committed} is out of date with pipelines/{name}.py: run `make pipelines` and commit it"
    )


def test_every_component_runs_in_the_component_image():
    spec = pipeline_spec((HERE / "classification.yaml").read_text())[0]
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 6
    assert {e["container"]["image"] for e in executors.values()} == {
        "modelfactory-components:0.1.0"
    }
    # The local runner and the cluster must not pip-install kfp at start-up: the image has it.
    assert not any("pip install" in " ".join(e["container"]["command"]) for e in executors.values())
