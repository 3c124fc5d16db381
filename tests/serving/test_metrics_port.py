"""Two services on one machine, started as a user starts them: `modelfactory serve` of a second
service on the first one's metrics or gRPC port stops at once, naming the variable that moves
it, and leaves the first serving; on ports of its own, every scrape reads its own counters.

Before, both started, their workers shared the port (SO_REUSEPORT), and a scrape read one
service or the other at random (`7 7 0 7 0 0 0 0 0 7 0 7` after 7 requests to the first)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from modelfactory.local.ports import free_port
from tests.support.serving import MODEL, served_for_real

pytestmark = pytest.mark.integration
SCRAPES = 12


@pytest.fixture(scope="module")
def first(registered, tmp_path_factory):
    uri, *_ = registered
    with served_for_real(MODEL, uri, tmp_path_factory.mktemp("first"), workers=2) as (p, _, _):
        yield p


def modelfactory_serve(uri: str, home: Path, grpc_port: int, metrics_port: int):
    """`modelfactory serve` in its own process, as a user types it; returns once it stops."""
    environment = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "MODELFACTORY_HOME": str(home),
        "MODELFACTORY_GRPC_PORT": str(grpc_port),
        "MODELFACTORY_METRICS_PORT": str(metrics_port),
    }
    command = [str(Path(sys.executable).with_name("modelfactory")), "serve", MODEL]
    return subprocess.run(
        [*command, "--port", str(free_port())],
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.parametrize(
    ("shared", "variable", "what"),
    [
        ("metrics", "MODELFACTORY_METRICS_PORT", "metrics"),
        ("grpc", "MODELFACTORY_GRPC_PORT", "v2 gRPC"),
    ],
)
def test_a_second_service_on_a_taken_port_stops_naming_the_variable(
    first, registered, tmp_path, shared, variable, what
):
    uri, *_ = registered
    grpc_port = first.grpc_port if shared == "grpc" else free_port()
    metrics_port = first.metrics_port if shared == "metrics" else free_port()
    second = modelfactory_serve(uri, tmp_path, grpc_port, metrics_port)
    port = metrics_port if shared == "metrics" else grpc_port
    assert second.returncode != 0
    assert (
        f"the {what} port {port} is taken by another modelfactory service on this machine: "
        f"set {variable} to a free port for this one"
    ) in second.stderr
    assert "Traceback" not in second.stderr
    assert first.running and first.is_ready()


def test_each_scrape_reads_its_own_services_counters(first, registered, tmp_path, sample_records):
    uri, *_ = registered
    with served_for_real(MODEL, uri, tmp_path, workers=2) as (second, _, _):
        first_before, second_before = (requests_counted(s.metrics_url) for s in (first, second))
        for record in sample_records[:7]:
            httpx.post(f"{first.url}/predict", json={"records": [record]}).raise_for_status()
        first_reads = [requests_counted(first.metrics_url) for _ in range(SCRAPES)]
        second_reads = [requests_counted(second.metrics_url) for _ in range(SCRAPES)]
    assert first_reads == [first_before + 7] * SCRAPES
    assert second_reads == [second_before] * SCRAPES


def requests_counted(metrics_url: str) -> float:
    """modelfactory_requests_total, summed over its labels, from one scrape of /metrics."""
    text = httpx.get(f"{metrics_url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("modelfactory_requests_total{")
    )
