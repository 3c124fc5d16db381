"""An independent scanner over the rendered chart: checkov's Kubernetes checks, every values set.

checkov runs from its own virtual environment (.tools/checkov, tools/install-tools.d/
checkov.sh): it pins older packaging and python-dateutil than the product uses. A finding
fails the test; a check the chart fails on purpose carries a ``checkov.io/skipN``
annotation with its reason in the template, and only the checks listed in
ALLOWED_SKIPS may be skipped that way, so a new skip is a reviewed change here too.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from .chartlib import CHART, REPO, VALUE_SETS, operator_objects, run_helm

CHECKOV = REPO / ".tools" / "bin" / "checkov"

# The checks the chart fails on purpose; the reasons are in templates/_helpers.tpl.
ALLOWED_SKIPS = {
    "CKV_K8S_43": "image digests: the chart's images are built and kind-loaded locally",
    "CKV_K8S_15": "pull policy IfNotPresent: kind-loaded images are never pulled",
    "CKV_K8S_40": "uid 999 is the official PostgreSQL image's user",
    "CKV_K8S_8": "the helm test Pod runs once: no liveness probe",
    "CKV_K8S_9": "the helm test Pod runs once: no readiness probe",
    "CKV_K8S_38": "the operator's token: it talks to the API server with the least RBAC",
}
# Findings a values set asks for: networkpolicy-off turns NetworkPolicies off on purpose.
EXPECTED = {("networkpolicy-off", "CKV2_K8S_6")}


def _operator_made(manifests: str) -> str:
    """The objects the operator creates from the release's ModelDeployments and DriftMonitors,
    the workloads carrying their owner's reviewed checkov skips (the same image references as
    the chart's)."""
    documents = [d for d in yaml.safe_load_all(manifests) if d]
    made = []
    for obj in operator_objects(documents):
        made_by = obj["metadata"]["ownerReferences"][0]
        owner = next(
            d
            for d in documents
            if d["kind"] == made_by["kind"] and d["metadata"]["name"] == made_by["name"]
        )
        workload = obj["kind"] in ("Deployment", "CronJob", "Job")
        skips = {
            k: v
            for k, v in owner["metadata"].get("annotations", {}).items()
            if k.startswith("checkov.io/") and workload
        }
        if skips:
            obj["metadata"]["annotations"] = skips
        made.append(obj)
    return "".join("---\n" + yaml.safe_dump(obj) for obj in made)


@pytest.fixture(scope="module")
def scan(helm, tmp_path_factory) -> dict:
    """checkov's JSON report over every values set, each rendered as its own release."""
    if not CHECKOV.exists():
        pytest.fail(
            f"checkov not found at {CHECKOV}: run `make tools` (tools/install-tools.d/"
            "checkov.sh installs it from PyPI)",
            pytrace=False,
        )
    rendered = tmp_path_factory.mktemp("checkov")
    for name, values in VALUE_SETS.items():
        # One release name per values set: checkov's graph checks (a pod needs a
        # NetworkPolicy selecting it) match labels across all files of the scan.
        args = ["template", f"ck-{name}", str(CHART), "--namespace", "checkov"]
        for f in values:
            args += ["-f", str(f)]
        done = run_helm(*args)
        assert done.returncode == 0, done.stderr
        (rendered / f"{name}.yaml").write_text(done.stdout + _operator_made(done.stdout))
    done = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(rendered),
            "--framework",
            "kubernetes",
            "--output",
            "json",
            "--skip-download",
            "--compact",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    # checkov exits 1 when a check failed; the report says which.
    assert done.returncode in (0, 1), done.stderr[-2000:]
    report = json.loads(done.stdout)
    (report,) = report if isinstance(report, list) else [report]
    return report["results"]


def _values_set(result: dict) -> str:
    return result["file_path"].lstrip("/").removesuffix(".yaml")


def test_every_values_set_was_scanned(scan):
    scanned = {_values_set(r) for kind in ("passed_checks", "failed_checks") for r in scan[kind]}
    assert scanned == set(VALUE_SETS)


def test_checkov_finds_nothing_unexpected(scan):
    """Every finding is mended or skipped with its reason in the template."""
    findings = [
        f"{_values_set(r)}: {r['check_id']} {r['check_name']} ({r['resource']})"
        for r in scan["failed_checks"]
        if (_values_set(r), r["check_id"]) not in EXPECTED
    ]
    assert not findings, "checkov findings:\n" + "\n".join(sorted(set(findings)))


def test_only_reviewed_checks_are_skipped_and_each_says_why(scan):
    problems = []
    for r in scan["skipped_checks"]:
        where = f"{_values_set(r)}: {r['resource']}"
        if r["check_id"] not in ALLOWED_SKIPS:
            problems.append(f"{where} skips {r['check_id']}, which is not in ALLOWED_SKIPS")
        comment = r.get("check_result", {}).get("suppress_comment", "")
        if len(comment) < 40 or comment == "No comment provided":
            problems.append(f"{where} skips {r['check_id']} without a reason: {comment!r}")
    assert not problems, "\n".join(sorted(set(problems)))
