"""The compiled YAML under pipelines/ is what users upload to the KFP UI: it must match the code."""

from pathlib import Path

import yaml

from pipelines.compile import HERE, PIPELINES, compile_pipeline


def test_compiled_pipelines_are_up_to_date(tmp_path, monkeypatch):
    monkeypatch.delenv("MODELFACTORY_COMPONENT_IMAGE", raising=False)
    for name in PIPELINES:
        fresh = compile_pipeline(name, tmp_path / f"{name}.yaml")
        committed = HERE / f"{name}.yaml"
        assert committed.exists(), f"{committed} is missing: run `make pipelines`"
        assert yaml.safe_load(fresh.read_text()) == yaml.safe_load(committed.read_text()), (
            f"{committed} is out of date with pipelines/{name}.py: run `make pipelines` and commit it")


def test_every_component_runs_in_the_component_image():
    spec = yaml.safe_load((HERE / "classification.yaml").read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 6
    assert {e["container"]["image"] for e in executors.values()} == {"modelfactory-components:0.1.0"}
    # The local runner and the cluster must not pip-install kfp at start-up: the image has it.
    assert not any("pip install" in " ".join(e["container"]["command"]) for e in executors.values())
