"""helm lint --strict, helm template and Kubernetes schema validation of every values set."""

from __future__ import annotations

import re

import jsonschema
import pytest
import yaml
from kubernetes_validate import utils as kubernetes_validate

from .chartlib import CHART, VALUE_SETS, render, run_helm


def _supported_versions() -> list[str]:
    """Kubernetes minors that kubernetes-validate has schemas for and kubeVersion admits."""
    constraint = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    floor = re.fullmatch(r">=\s*(\d+)\.(\d+)(\.\d+)?(-0)?", constraint)
    assert floor, f"Chart.yaml kubeVersion {constraint!r}: expected a '>=1.N' lower bound"
    lowest = (int(floor[1]), int(floor[2]))
    versions = []
    for v in kubernetes_validate.all_versions():
        major, minor = (int(x) for x in v.split(".")[:2])
        if (major, minor) >= lowest:
            versions.append(f"{major}.{minor}.0")
    return sorted(set(versions), key=lambda v: tuple(int(x) for x in v.split(".")))


SUPPORTED = _supported_versions()


def test_chart_declares_supported_kubernetes_versions():
    assert SUPPORTED, "kubernetes-validate ships no schema for any version the chart supports"
    assert SUPPORTED[0] == "1.29.0", SUPPORTED


@pytest.mark.parametrize("name", VALUE_SETS)
def test_lint_strict(helm, name):
    args = ["lint", "--strict", str(CHART)]
    for f in VALUE_SETS[name]:
        args += ["-f", str(f)]
    proc = run_helm(*args)
    assert proc.returncode == 0, f"helm lint --strict ({name}):\n{proc.stdout}\n{proc.stderr}"


@pytest.mark.parametrize("version", SUPPORTED)
@pytest.mark.parametrize("name", VALUE_SETS)
def test_rendered_objects_pass_strict_schema_validation(helm, name, version):
    objects = render(VALUE_SETS[name], kube_version=version)
    assert objects
    errors = []
    custom = _custom_resource_schemas(objects)
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if (obj["apiVersion"], obj["kind"]) in custom:
            # Our own kinds: the CRD's schema (the API server checks the same on a cluster).
            validator = jsonschema.Draft7Validator(custom[obj["apiVersion"], obj["kind"]])
            errors += [
                f"{where}: {e.message} at {list(e.absolute_path)}"
                for e in validator.iter_errors(obj)
            ]
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{where}: {exc.message}")
    assert not errors, f"values {name}, Kubernetes {version}:\n" + "\n".join(errors)


def _json_schema(node):
    """A CRD's OpenAPI v3 schema as JSON Schema: nullable fields accept null, undeclared fields
    are refused; the x-kubernetes-* markers are the API server's own."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if "properties" in out and not node.get("x-kubernetes-preserve-unknown-fields"):
        # A structural schema: the API server refuses (server-side apply) or prunes the rest.
        out.setdefault("additionalProperties", False)
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else out["type"]
    if out.pop("exclusiveMinimum", False) is True:
        out["exclusiveMinimum"] = out.pop("minimum")
    return out


def _custom_resource_schemas(objects: list[dict]) -> dict[tuple[str, str], dict]:
    found = {}
    for crd in (o for o in objects if o["kind"] == "CustomResourceDefinition"):
        spec = crd["spec"]
        for version in spec["versions"]:
            key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
            found[key] = _json_schema(version["schema"]["openAPIV3Schema"])
    return found


def test_kube_version_below_the_declared_floor_is_refused(helm):
    proc = run_helm("template", "mf", str(CHART), "--kube-version", "1.28.0")
    assert proc.returncode != 0 and "kubeVersion" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "bad_set, complaint",
    [
        ("serving.models[0].name=Bank_Marketing", "does not match pattern"),
        ("mlflow.workerz=2", "additional properties"),
        ("serving.autoscaling.enabled=yes", "boolean"),
        ("images.serving.pullPolicy=Sometimes", "pullPolicy"),
    ],
)
def test_values_schema_rejects_mistakes(helm, bad_set, complaint):
    proc = run_helm("template", "mf", str(CHART), "--set", bad_set)
    assert proc.returncode != 0, f"--set {bad_set} was accepted"
    assert complaint.lower() in proc.stderr.lower(), proc.stderr


def test_external_database_without_secret_is_refused(helm):
    proc = run_helm(
        "template",
        "mf",
        str(CHART),
        "--set",
        "postgresql.enabled=false",
        "--set",
        "postgresql.external.host=db",
    )
    assert proc.returncode != 0 and "existingSecret" in proc.stderr, proc.stderr


def test_notes_tell_the_next_commands(helm):
    proc = run_helm(
        "install",
        "mf",
        str(CHART),
        "--dry-run=client",
        "--namespace",
        "ml",
        "-f",
        str(CHART / "values-kind.yaml"),
    )
    assert proc.returncode == 0, proc.stderr
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert "helm test mf -n ml" in notes
    assert "http://localhost:30500" in notes  # MLflow through kind's port mapping
    assert "curl http://localhost:30300/readyz" in notes
