"""The forecast API's core and HTTP layer with fake model sets: caching, champion changes, 404/422."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from modelfactory.forecasting.champion import ChampionForecaster, UnknownStore
from modelfactory.steps.forecasting import parse_stores
from serving.forecast_app import build_forecast_api


class FakeSet:
    def __init__(self, version: str, stores=(1, 2)):
        self.version, self._stores, self.loaded = version, list(stores), []

    def stores(self):
        return self._stores

    def store_model(self, store):
        self.loaded.append(store)
        return (self.version, store)


def fake_forecast(model, horizon, policy):
    version, store = model
    ds = pd.date_range("2015-08-01", periods=horizon, freq="D")
    yhat = float(store) * 100 + (0 if version == "1" else 1)
    return pd.DataFrame({"ds": ds, "yhat": yhat, "yhat_lower": yhat - 10, "yhat_upper": yhat + 10,
                         "open": True})


class Registry:
    def __init__(self):
        self.champion: str | None = "1"
        self.sets: dict[str, FakeSet] = {}
        self.fail = False

    def read(self):
        if self.fail:
            raise ConnectionError("registry down")
        return self.champion

    def load(self, version):
        return self.sets.setdefault(version, FakeSet(version))


@pytest.fixture
def registry():
    return Registry()


@pytest.fixture
def forecaster(registry):
    f = ChampionForecaster("store-sales", registry.read, registry.load, poll_seconds=60,
                           make_forecast=fake_forecast)
    f.refresh()
    return f


def test_forecasts_and_models_are_cached_until_the_champion_changes(forecaster, registry):
    version, first = forecaster.forecast(1, 7)
    assert version == "1" and first["yhat"].iloc[0] == 100
    forecaster.forecast(1, 7)
    assert registry.sets["1"].loaded == [1]  # the model loaded once, the forecast computed once
    assert forecaster.cache.forecasts.stats().hits == 1

    registry.champion = "2"
    assert forecaster.refresh() is True
    assert len(forecaster.cache.forecasts) == 0 and len(forecaster.cache.models) == 0
    version, second = forecaster.forecast(1, 7)
    assert version == "2" and second["yhat"].iloc[0] == 101


def test_an_unreachable_registry_keeps_the_last_champion(forecaster, registry):
    registry.fail = True
    assert forecaster.refresh() is False
    assert forecaster.forecast(2, 3)[0] == "1"


def test_unknown_store_and_horizon_out_of_range(forecaster):
    with pytest.raises(UnknownStore, match="store 77"):
        forecaster.forecast(77, 7)
    with pytest.raises(ValueError, match="between 1 and 365"):
        forecaster.forecast(1, 0)


def test_http_api_answers_forecasts_404_and_422(forecaster):
    api = build_forecast_api("store-sales")
    api.state.forecaster = forecaster
    client = TestClient(api)
    ok = client.post("/forecast", json={"store": 2, "horizon_days": 42})
    assert ok.status_code == 200
    body = ok.json()
    assert body["store"] == 2 and body["model_version"] == "1" and len(body["forecast"]) == 42
    assert set(body["forecast"][0]) >= {"ds", "yhat", "yhat_lower", "yhat_upper"}

    assert client.post("/forecast", json={"store": 2, "horizon_days": 42}).json() == body
    assert client.get("/model").json()["cache"]["hits"] == 1

    missing = client.post("/forecast", json={"store": 99999, "horizon_days": 42})
    assert missing.status_code == 404 and "99999" in missing.json()["error"]
    for bad in ({"store": 2, "horizon_days": 0}, {"store": 2, "horizon_days": 10000},
                {"store": "2", "horizon_days": 5}, {"store": 2, "horizon_days": 1.5}, {"store": 2}):
        answer = client.post("/forecast", json=bad)
        assert answer.status_code == 422, bad
        assert answer.json()["problems"]


def test_not_ready_without_a_champion(registry):
    registry.champion = None
    forecaster = ChampionForecaster("store-sales", registry.read, registry.load, make_forecast=fake_forecast)
    forecaster.refresh()
    assert not forecaster.ready
    api = build_forecast_api("store-sales")
    api.state.forecaster = forecaster
    assert TestClient(api).post("/forecast", json={"store": 1, "horizon_days": 3}).status_code == 503


def test_store_sales_is_served_by_the_forecast_service():
    from modelfactory.serving_process import FORECAST_SERVICE, SERVICE, ServingProcess, service_for

    assert service_for("store-sales") == FORECAST_SERVICE and service_for("bank-marketing") == SERVICE
    command = ServingProcess("store-sales", "http://mlflow", service=FORECAST_SERVICE).command()
    assert "serving.forecast_service:ForecastService" in command
    assert "serving.service:ModelService" in ServingProcess("bank-marketing", "http://mlflow").command()


def test_cli_refuses_a_mistyped_store_list_without_a_traceback():
    from typer.testing import CliRunner

    from modelfactory.cli import app

    result = CliRunner().invoke(app, ["run", "forecasting", "--stores", "1,x"])
    assert result.exit_code == 1 and "'x' is not a store id" in result.output
    assert "Traceback" not in result.output


def test_parse_stores():
    assert parse_stores("3, 1,2,,3") == [1, 2, 3]
    assert parse_stores("") is None
    with pytest.raises(ValueError, match="'x7' is not a store id"):
        parse_stores("1,x7")
