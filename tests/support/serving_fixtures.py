"""Fixtures of the serving tests: two small registered classifier versions, endpoints and HTTP
clients over them. Loaded by tests/conftest.py (``pytest_plugins``)."""

from __future__ import annotations

import socket

import pytest

from modelfactory.data.bank_marketing import FEATURES, generate_bank_marketing
from modelfactory.use_cases import CLASSIFICATION
from tests.support.serving import MODEL, Rollout, train_version


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
def registered(mlflow_server, tmp_path_factory):
    """(tracking uri, champion version, challenger version)."""
    from modelfactory.registry import Registry

    workdir = tmp_path_factory.mktemp("train")
    first = train_version(mlflow_server, workdir, seed=1)
    second = train_version(mlflow_server, workdir, seed=2)
    registry = Registry(mlflow_server)
    registry.set_alias(MODEL, "champion", first)
    registry.set_alias(MODEL, "challenger", second)
    return mlflow_server, first, second


@pytest.fixture(scope="session")
def served_models(registered):
    """{version: ServedClassifier} for both versions, loaded once."""
    from modelfactory.classification.served import ServedClassifier

    uri, first, second = registered
    return {v: ServedClassifier.load(MODEL, version=v, tracking_uri=uri) for v in (first, second)}


@pytest.fixture(scope="session")
def sample_records():
    return generate_bank_marketing(50, seed=99)[list(FEATURES)].to_dict(orient="records")


@pytest.fixture
def make_endpoint(served_models, tmp_path):
    """A function building an InferenceEndpoint over the two real versions (own metrics
    registry)."""
    from prometheus_client import CollectorRegistry

    from modelfactory.config import ServingSettings
    from modelfactory.inference.endpoint import InferenceEndpoint
    from modelfactory.inference.metrics import ServingMetrics
    from modelfactory.inference.router import ModelRouter
    from modelfactory.predictions.writer import PredictionLog

    made = []

    def make(options: ServingSettings | None = None, log_url: str | None = None, **log_kw):
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
        endpoint = InferenceEndpoint(
            router,
            options or ServingSettings(),
            metrics,
            plog,
            check_actual=CLASSIFICATION.monitoring.check_actual,
        )
        router.refresh()
        endpoint.rollout, endpoint.metrics_registry = rollout, registry
        made.append(endpoint)
        return endpoint

    yield make
    for endpoint in made:
        endpoint.close()


@pytest.fixture
def make_client(make_endpoint):
    """A function building (TestClient, endpoint) for the HTTP app."""
    from fastapi.testclient import TestClient

    from modelfactory.inference.protocol.rest import build_api

    def make(**kw):
        endpoint = make_endpoint(**kw)
        api = build_api(MODEL)
        api.state.endpoint = endpoint
        return TestClient(api), endpoint

    return make
