"""Rollouts on one machine with real parts: an MLflow server, `bentoml serve` of the model, HTTP
load, and the rollout controller (`modelfactory rollout run`) reading the service's /metrics.

Each challenger is a real registered version: a good one (another training), one that raises on
a third of the records, one that takes 80 ms per call, one trained on the opposite labels.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import httpx
import pytest

from modelfactory.local.faults import register_faulty_version, sleep_80ms
from modelfactory.local.mlflow_server import EmbeddedMlflow
from modelfactory.local.ports import free_port
from modelfactory.local.rollouts import LocalRollouts, run_local
from modelfactory.local.serving import ServingProcess
from modelfactory.registry import CHALLENGER, CHAMPION, Registry
from modelfactory.rollout.controller import OUTCOME_TAGS
from modelfactory.rollout.spec import parse_spec
from modelfactory.rollout.state import clear_rollout
from tests.support.serving import Load, train_version

pytestmark = pytest.mark.integration
MODEL = "bank-marketing-rollouts"
SPEC = {
    "model": MODEL,
    "rollout": {
        "steps": [{"setWeight": 50}, {"analysis": {}}, {"setWeight": 100}, {"analysis": {}}],
        "budgetMs": 50,
        "progressDeadlineSeconds": 120,
    },
    "analysis": {
        "interval": "3s",
        "minRequests": 30,
        "inconclusiveLimit": 2,
        "metrics": [
            # Rates are judged by their anytime-valid bounds: 5% is shown in a few hundred
            # error-free requests, 1% would take a thousand and more.
            {"name": "error-rate", "max": 0.05},
            {"name": "fallback-rate", "max": 0.05},
            {"name": "latency-p99-ms", "max": 50},
            # Two small forests trained on different samples agree on ~90% of records.
            {"name": "agreement", "min": 0.8},
        ],
    },
}


def _faulty_version(uri: str, base_version: str, fault, tags: dict[str, str]) -> str:
    return register_faulty_version(uri, MODEL, base_version, fault, tags)


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory):
    """A registry of its own: one test stops it mid-rollout."""
    server = EmbeddedMlflow(tmp_path_factory.mktemp("rollouts-mlflow"), port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def versions(registry_server, tmp_path_factory):
    uri, work = registry_server.url, tmp_path_factory.mktemp("rollout-versions")
    champion = train_version(uri, work, seed=1, model=MODEL)
    good = train_version(uri, work, seed=2, model=MODEL)
    disagreeing = train_version(uri, work, seed=3, model=MODEL, flip_labels=True)

    def raises_on_a_third(frame):
        if (frame["age"] % 3 == 0).any():
            raise RuntimeError("challenger failure on this input")
        return frame

    erroring = _faulty_version(uri, champion, raises_on_a_third, {"fault": "raises"})
    slow_version = _faulty_version(uri, champion, sleep_80ms, {"fault": "slow"})
    return {
        "champion": champion,
        "good": good,
        "erroring": erroring,
        "slow": slow_version,
        "disagreeing": disagreeing,
    }


@pytest.fixture(scope="module")
def service(registry_server, versions, tmp_path_factory):
    home = tmp_path_factory.mktemp("rollout-serving")
    Registry(registry_server.url).set_alias(MODEL, CHAMPION, versions["champion"])
    process = ServingProcess(
        MODEL,
        registry_server.url,
        free_port(),
        workers=1,
        log_file=home / "serve.log",
        extra_env={
            "MODELFACTORY_HOME": str(home),
            "MODELFACTORY_ROLLOUT_POLL_SECONDS": "1",
            "MODELFACTORY_GRPC_ENABLED": "false",
            "MODELFACTORY_PREDICTION_LOG": "false",
        },
    )
    with process:
        yield process


def roll_out(
    registry_server, service, versions, challenger, tmp_path, load=True, timeout=90, spec=SPEC
):
    registry = Registry(registry_server.url)
    registry.set_alias(MODEL, CHAMPION, versions["champion"])
    clear_rollout(registry, MODEL)
    registry.set_alias(MODEL, CHALLENGER, versions[challenger])
    time.sleep(1.5)  # the service loads the new challenger at its next poll
    store = LocalRollouts(tmp_path / "rollouts")
    timeline = []
    run = lambda: run_local(  # noqa: E731
        parse_spec(spec),
        spec,
        store,
        registry_server.url,
        [service.metrics_url],
        tick_seconds=0.5,
        timeout=timeout,
        on_tick=lambda tick: timeline.append(tick),
    )
    if not load:
        return run(), timeline, None
    with Load(service.url) as traffic:
        status = run()
    return status, timeline, traffic


def test_a_good_challenger_goes_through_every_step_and_becomes_champion(
    registry_server, service, versions, tmp_path
):
    status, timeline, traffic = roll_out(registry_server, service, versions, "good", tmp_path)
    assert status.phase == "Healthy" and status.history[0].outcome == "promoted", status.message
    weights = [t.status.weight for t in timeline if t.status.challenger]
    assert 50 in weights and 100 in weights
    registry = Registry(registry_server.url)
    assert str(registry.version_by_alias(MODEL, CHAMPION).version) == versions["good"]
    assert registry.version_by_alias(MODEL, CHALLENGER) is None
    tags = registry.client.get_model_version(MODEL, versions["good"]).tags
    assert tags["rollout.outcome"] == "promoted" and set(OUTCOME_TAGS) <= set(tags)
    assert traffic.answers > 100 and traffic.failures == 0


@pytest.mark.parametrize(
    ("challenger", "metric"),
    [("erroring", "error-rate"), ("slow", "latency-p99-ms"), ("disagreeing", "agreement")],
)
def test_a_bad_challenger_is_rolled_back_on_its_metric_without_a_client_error(
    registry_server, service, versions, tmp_path, challenger, metric
):
    status, _, traffic = roll_out(registry_server, service, versions, challenger, tmp_path)
    assert status.phase == "Degraded" and status.history[0].outcome == "rolled-back"
    assert metric in status.message and "failureLimit 0" in status.message
    assert status.history[0].metrics[metric]["failed"] == 1
    registry = Registry(registry_server.url)
    assert str(registry.version_by_alias(MODEL, CHAMPION).version) == versions["champion"]
    assert registry.version_by_alias(MODEL, CHALLENGER) is None  # out of traffic
    tags = registry.client.get_model_version(MODEL, versions[challenger]).tags
    assert tags["rollout.outcome"] == "rolled-back" and metric in tags["rollout.reason"]
    assert traffic.answers > 50 and traffic.failures == 0  # the champion answered instead


def test_without_traffic_the_rollout_pauses_inconclusive_and_is_never_promoted(
    registry_server, service, versions, tmp_path
):
    status, _, _ = roll_out(
        registry_server, service, versions, "good", tmp_path, load=False, timeout=15
    )
    assert status.phase == "Paused" and "minRequests 30" in status.message
    assert status.challenger == versions["good"] and status.weight == 50
    registry = Registry(registry_server.url)
    assert str(registry.version_by_alias(MODEL, CHAMPION).version) == versions["champion"]


def test_a_registry_outage_mid_rollout_holds_it_and_it_resumes(
    registry_server, service, versions, tmp_path
):
    def outage():
        time.sleep(5)
        registry_server.stop()
        time.sleep(8)
        registry_server.start()

    thread = threading.Thread(target=outage)
    thread.start()
    status, timeline, traffic = roll_out(
        registry_server, service, versions, "good", tmp_path, timeout=180
    )
    thread.join()
    messages = [t.status.message for t in timeline]
    held = [m for m in messages if m.startswith("registry unreachable") and "holding" in m]
    assert held, "the controller never held: " + " / ".join(messages[:30])
    assert status.history[0].outcome == "promoted"
    assert traffic.failures == 0  # serving kept its last known state all along


@pytest.fixture(scope="module")
def prometheus(service, tmp_path_factory):
    """A real Prometheus (Debian's package) scraping the service's metrics port every second."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "prometheus not found: install Debian's prometheus package (.ci/run does)",
            pytrace=False,
        )
    work = tmp_path_factory.mktemp("prometheus")
    target = service.metrics_url.split("://", 1)[1]
    (work / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs: [{{job_name: serving, static_configs: [{{targets: ['{target}']}}]}}]\n"
    )
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=(work / "log").open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail(f"prometheus did not start: {(work / 'log').read_text()[-2000:]}")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_a_promql_metric_on_a_real_prometheus_rolls_a_slow_challenger_back(
    registry_server, service, versions, tmp_path, prometheus
):
    """The analysis asks Prometheus (which scrapes the service) for the challenger's p99, not the
    pods' counters: the slow version is rolled back on that metric alone."""
    p99 = (
        "histogram_quantile(0.99, sum by (le) (rate(modelfactory_challenger_latency_seconds_bucket"
        '{model="{{model}}",version="{{challenger}}"}[{{interval}}]))) * 1000'
    )
    spec = {
        **SPEC,
        "analysis": {
            **SPEC["analysis"],
            "interval": "4s",
            "prometheus": {"address": prometheus},
            "metrics": [
                {"name": "error-rate", "max": 0.01},
                {"name": "prometheus-p99-ms", "max": 50, "query": p99},
            ],
        },
    }
    status, _, traffic = roll_out(registry_server, service, versions, "slow", tmp_path, spec=spec)
    assert status.phase == "Degraded" and "prometheus-p99-ms" in status.message, status.message
    measured = status.history[0].metrics["prometheus-p99-ms"]
    assert measured["failed"] == 1 and measured["value"] > 80  # the version sleeps 80 ms a call
    assert traffic.failures == 0
