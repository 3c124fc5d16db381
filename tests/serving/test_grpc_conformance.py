"""The v2 gRPC port of a real `bentoml serve` against h2spec, the HTTP/2 conformance suite
(tools/h2spec/build.sh; `make test` builds it): every case passes, strict ones included, and
afterwards the same worker answers a tritonclient inference and the log has no traceback.

h2spec sends plain HTTP requests (GET): the port answers them 405 with a line saying it serves
gRPC, and the cases that need a response body use that line.
"""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tests.support.serving import MODEL, served_for_real, triton_inputs

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def h2spec() -> str:
    bin_dir = subprocess.run(
        ["bash", str(REPO / "tools" / "h2spec" / "build.sh"), "--bin-dir"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    binary = Path(bin_dir) / "h2spec"
    if not binary.exists():
        pytest.fail(f"h2spec is not built at {binary}: run `make h2spec`", pytrace=False)
    return str(binary)


def cases(report: Path) -> dict[str, str]:
    """{'http2/5.1.2 Sends HEADERS frames that ...': 'passed' | 'failed: ...' | 'skipped'}."""
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        name = f"{case.get('package')} {case.get('classname')}"
        failure = case.find("error") if case.find("error") is not None else case.find("failure")
        if failure is not None:
            expected_actual = " / ".join((failure.text or "").split("\n"))
            outcomes[name] = f"failed (expected / actual): {expected_actual}"
        elif case.find("skipped") is not None:
            outcomes[name] = "skipped"
        else:
            outcomes[name] = "passed"
    return outcomes


@pytest.fixture(scope="module")
def service(registered, tmp_path_factory):
    """One worker, so the worker that took every case is the one asked to predict after."""
    uri, *_ = registered
    home = tmp_path_factory.mktemp("grpc-conformance")
    with served_for_real(MODEL, uri, home, workers=1) as (process, target, _store):
        yield process, target, home / "serve.log"


def test_every_http2_conformance_case_passes_and_the_port_serves_on(
    service, tmp_path, sample_records
):
    import tritonclient.grpc as grpcclient

    process, target, log = service
    host, port = target.rsplit(":", 1)
    report = tmp_path / "h2spec.xml"
    run = subprocess.run(
        [h2spec(), "--strict", "-h", host, "-p", port, "-o", "5", "-j", str(report)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    outcomes = cases(report)
    not_passed = {name: outcome for name, outcome in outcomes.items() if outcome != "passed"}
    assert not not_passed, not_passed
    assert len(outcomes) >= 146, f"h2spec ran only {len(outcomes)} cases"  # 145 + 1 strict
    assert run.returncode == 0

    client = grpcclient.InferenceServerClient(target)
    assert client.is_server_live() and client.is_model_ready(MODEL)
    result = client.infer(MODEL, triton_inputs(grpcclient, sample_records[:3]))
    assert result.as_numpy("probability").shape == (3,)
    assert np.all((result.as_numpy("probability") >= 0) & (result.as_numpy("probability") <= 1))
    assert process.running
    served_log = log.read_text(errors="replace")
    assert "Traceback" not in served_log and "Fatal error" not in served_log
