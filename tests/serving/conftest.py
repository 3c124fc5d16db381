"""Shared fixtures: one MLflow server per session with two small bank-marketing versions registered.

Version 1 is the champion and version 2 the challenger (aliases set explicitly, whatever the
promotion gate said), both small forests so the session starts in well under a minute.
"""

from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from modelfactory.classification import ClassifierConfig
from modelfactory.data.bank_marketing import FEATURES, generate_bank_marketing
from modelfactory.mlflow_server import EmbeddedMlflow, free_port
from modelfactory.serving_process import ServingProcess

MODEL = "bank-marketing"
# MLflow's telemetry thread sets and unsets an environment variable while other threads read the
# environment (urllib's proxy lookup), which fails requests at random: no telemetry in tests.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture
def hung_store_url():
    """A PostgreSQL URL whose server accepts connections and never answers (a hung database).

    Connecting gives up after 3 s (``connect_timeout``), so a test can also see the rows a
    hung store held being dropped.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    yield f"postgresql+psycopg://u:secret@127.0.0.1:{listener.getsockname()[1]}/db?connect_timeout=3"
    listener.close()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("mlflow-home")
    server = EmbeddedMlflow(home, port=free_port())
    url = server.start()
    yield url
    server.stop()


def _train_version(uri: str, workdir: Path, seed: int) -> str:
    from modelfactory.steps import classification as steps
    from modelfactory.steps.common import write_dataset

    data = workdir / f"data-{seed}.parquet"
    write_dataset(generate_bank_marketing(3000, seed=seed), str(data))
    train, holdout = (
        str(workdir / f"train-{seed}.parquet"),
        str(workdir / f"holdout-{seed}.parquet"),
    )
    steps.split(str(data), train, holdout, seed=seed)
    info = steps.train(
        train,
        str(workdir / f"model-{seed}.json"),
        tracking_uri=uri,
        config=ClassifierConfig(n_estimators=25, imbalance="class_weight", seed=seed, n_jobs=1),
    )
    steps.evaluate(info, holdout, tracking_uri=uri)
    return steps.register(info, holdout, MODEL, tracking_uri=uri)["version"]


@pytest.fixture(scope="session")
def registered(mlflow_server, tmp_path_factory):
    """(tracking uri, champion version, challenger version)."""
    from modelfactory.registry import Registry

    workdir = tmp_path_factory.mktemp("train")
    first = _train_version(mlflow_server, workdir, seed=1)
    second = _train_version(mlflow_server, workdir, seed=2)
    registry = Registry(mlflow_server)
    registry.set_alias(MODEL, "champion", first)
    registry.set_alias(MODEL, "challenger", second)
    return mlflow_server, first, second


@pytest.fixture(scope="session")
def served_models(registered):
    """{version: ServedClassifier} for both versions, loaded once."""
    from modelfactory.inference.classifier import ServedClassifier

    uri, first, second = registered
    return {v: ServedClassifier.load(MODEL, version=v, tracking_uri=uri) for v in (first, second)}


@pytest.fixture(scope="session")
def sample_records():
    return generate_bank_marketing(50, seed=99)[list(FEATURES)].to_dict(orient="records")


class Rollout:
    """A rollout state the test changes at will, read by the router like the registry would be."""

    def __init__(self, champion: str, challenger: str):
        from modelfactory.routing import RolloutState

        self.state = RolloutState(champion=champion, challenger=challenger)

    def set(self, **changes):
        from dataclasses import replace

        self.state = replace(self.state, **changes)

    def __call__(self):
        return self.state


@pytest.fixture
def make_endpoint(served_models, tmp_path):
    """A function building an InferenceEndpoint over the two real versions (own metrics registry)."""
    from prometheus_client import CollectorRegistry

    from modelfactory.inference.endpoint import InferenceEndpoint
    from modelfactory.inference.metrics import ServingMetrics
    from modelfactory.inference.options import ServingOptions
    from modelfactory.prediction_log import PredictionLog
    from modelfactory.routing import ModelRouter

    made = []

    def make(options: ServingOptions | None = None, log_url: str | None = None, **log_kw):
        champion, challenger = sorted(served_models, key=int)
        rollout = Rollout(champion, challenger)
        registry = CollectorRegistry()
        metrics = ServingMetrics(registry)
        plog = None
        if log_url is not False:
            plog = PredictionLog(
                log_url or f"sqlite:///{tmp_path / 'predictions.db'}",
                flush_seconds=0.05,
                on_drop=lambda n, r: metrics.log_dropped.labels(r).inc(n),
                on_write=metrics.log_written.inc,
                **log_kw,
            ).start()
        router = ModelRouter(MODEL, read_state=rollout, load=served_models.__getitem__)
        endpoint = InferenceEndpoint(router, options or ServingOptions(), metrics, plog)
        router.refresh()
        endpoint.rollout, endpoint.metrics_registry = rollout, registry
        made.append(endpoint)
        return endpoint

    yield make
    for endpoint in made:
        endpoint.router.stop()
        if endpoint.prediction_log:
            endpoint.prediction_log.close()


@pytest.fixture
def make_client(make_endpoint):
    """A function building (TestClient, endpoint) for the HTTP app."""
    from fastapi.testclient import TestClient

    from serving.app import build_api

    def make(**kw):
        endpoint = make_endpoint(**kw)
        api = build_api(MODEL)
        api.state.endpoint = endpoint
        return TestClient(api), endpoint

    return make


def metric(endpoint, name: str, **labels) -> float:
    return endpoint.metrics_registry.get_sample_value(name, labels) or 0.0


def v2_body(records, datatypes=None):
    from modelfactory.data.bank_marketing import CATEGORIES

    inputs = []
    for column in records[0]:
        values = [r[column] for r in records]
        kind = (
            "BYTES" if column in CATEGORIES else ("INT64" if isinstance(values[0], int) else "FP64")
        )
        inputs.append(
            {
                "name": column,
                "shape": [len(values)],
                "datatype": (datatypes or {}).get(column, kind),
                "data": values,
            }
        )
    return {"inputs": inputs}


@contextmanager
def served_for_real(model: str, uri: str, home: Path, **options):
    """`bentoml serve` of ``model`` with v2 gRPC, its own home and sqlite prediction store,
    polling the rollout every second; yields (process, gRPC target, store URL) once gRPC answers.

    ``options``: ``service`` and ``workers`` for ServingProcess, ``env`` for more environment.
    """
    import tritonclient.grpc as grpcclient

    grpc_port = free_port()
    store = f"sqlite:///{home / 'predictions.db'}"
    extra_env = {
        "MODELFACTORY_HOME": str(home),
        "MODELFACTORY_GRPC_PORT": str(grpc_port),
        "MODELFACTORY_ROLLOUT_POLL_SECONDS": "1",
        "MODELFACTORY_PREDICTION_STORE_URL": store,
        **options.pop("env", {}),
    }
    process = ServingProcess(
        model, uri, free_port(), log_file=home / "serve.log", extra_env=extra_env, **options
    )
    with process:
        target = f"127.0.0.1:{grpc_port}"
        until(grpcclient.InferenceServerClient(target).is_server_ready)
        yield process, target, store


def until(check, timeout: float = 30):
    """Poll ``check()`` until it returns something truthy (errors count as not yet); return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except Exception:
            found = None
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError("condition not reached in time")
