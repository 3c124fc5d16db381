"""The forecast API in process over a real model set (3 stores, Prophet): POST /forecast, JSON
/predict and v2 REST, all through the router and endpoint every model goes through (rollouts,
x-model-version, metrics per version, the prediction log); and the forecast service in the CLI."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from modelfactory.config import ServingSettings
from modelfactory.forecasting.model_set import forecast
from modelfactory.forecasting.rest import build_forecast_api
from modelfactory.forecasting.served import ServedForecaster
from modelfactory.forecasting.steps import parse_stores
from modelfactory.inference.endpoint import InferenceEndpoint
from modelfactory.inference.metrics import ServingMetrics
from modelfactory.inference.router import ModelRouter
from modelfactory.predictions.store import read_predictions
from modelfactory.predictions.writer import PredictionLog
from modelfactory.rollout import RolloutState

MODEL = "store-sales"
INFER = f"/v2/models/{MODEL}/infer"


class FewerStores:
    """A model set that lacks some of another's stores (a challenger trained on fewer)."""

    def __init__(self, model_set, stores):
        self.model_set, self._stores = model_set, list(stores)

    def stores(self):
        return self._stores

    def store_model(self, store):
        return self.model_set.store_model(store)


def higher_forecast(model, horizon, policy):
    """Version 2 forecasts 50% more than version 1: far outside the shadow agreement tolerance."""
    frame = forecast(model, horizon, policy)
    frame[["yhat", "yhat_lower", "yhat_upper"]] *= 1.5
    return frame


class Registry:
    """The rollout state as the router reads it from the registry; tests move it or take it down."""

    def __init__(self, state: RolloutState):
        self.state, self.down = state, False

    def __call__(self) -> RolloutState:
        if self.down:
            raise ConnectionError("registry down")
        return self.state


@pytest.fixture
def service(model_set, tmp_path):
    """A function building the forecast app over v1 (stores 1-3) and v2 (stores 1-2, 50% higher)."""
    built = []

    def load(version: str) -> ServedForecaster:
        if version == "1":
            return ServedForecaster(MODEL, "1", model_set)
        if version == "2":
            return ServedForecaster(
                MODEL, "2", FewerStores(model_set, [1, 2]), make_forecast=higher_forecast
            )
        raise LookupError(f"no version {version}")

    def make(
        champion: str | None = "1",
        challenger: str | None = "2",
        options: ServingSettings | None = None,
    ):
        registry = Registry(RolloutState(champion=champion, challenger=challenger))
        metrics_registry = CollectorRegistry()
        log_url = f"sqlite:///{tmp_path / 'predictions.db'}"
        prediction_log = PredictionLog(log_url, flush_seconds=0.05).start()
        router = ModelRouter(MODEL, read_state=registry, load=load)
        endpoint = InferenceEndpoint(
            router,
            options or ServingSettings(),
            ServingMetrics(metrics_registry),
            prediction_log,
            blocking_predictions=True,
        )
        router.refresh()
        api = build_forecast_api(MODEL)
        api.state.endpoint = endpoint
        made = SimpleNamespace(
            client=TestClient(api),
            endpoint=endpoint,
            router=router,
            registry=registry,
            log_url=log_url,
            prediction_log=prediction_log,
        )

        def metric(name, **labels):
            return metrics_registry.get_sample_value(name, {"model": MODEL, **labels}) or 0.0

        def move(**changes):
            registry.state = replace(registry.state, **changes)
            assert router.refresh()

        made.metric, made.move = metric, move
        built.append(made)
        return made

    yield make
    for made in built:
        made.router.stop()
        made.prediction_log.close()


def v2_inputs(stores, horizons):
    return {
        "inputs": [
            {"name": "store", "datatype": "INT64", "shape": [len(stores)], "data": stores},
            {
                "name": "horizon_days",
                "datatype": "INT64",
                "shape": [len(horizons), 1],
                "data": horizons,
            },
        ]
    }


def test_forecast_route_answers_a_store_and_repeats_from_the_cache(service):
    s = service()
    ok = s.client.post("/forecast", json={"store": 2, "horizon_days": 42})
    assert ok.status_code == 200, ok.text
    assert ok.headers["x-model-version"] == "1"
    body = ok.json()
    assert body["store"] == 2 and body["model_version"] == "1" and len(body["forecast"]) == 42
    assert set(body["forecast"][0]) == {"ds", "yhat", "yhat_lower", "yhat_upper", "open"}
    assert all(d["yhat_lower"] <= d["yhat"] <= d["yhat_upper"] for d in body["forecast"])

    assert s.client.post("/forecast", json={"store": 2, "horizon_days": 42}).json() == body
    model = s.client.get("/model").json()
    assert model["version"] == "1" and model["stores"] == 3
    assert model["cache"]["hits"] == 1 and model["cache"]["misses"] == 1  # Prophet ran once
    assert model["rollout"]["served_versions"] == ["1", "2"]


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"store": 2, "horizon_days": 0}, "horizon_days"),
        ({"store": 2, "horizon_days": 10000}, "horizon_days"),
        ({"store": "2", "horizon_days": 5}, "store"),
        ({"store": 2, "horizon_days": 1.5}, "horizon_days"),
        ({"store": 2}, "horizon_days"),
        ({"store": 2, "horizon_days": 5, "days": 5}, "days"),
    ],
)
def test_forecast_route_refuses_bad_fields_naming_them(service, bad, field):
    s = service()
    answer = s.client.post("/forecast", json=bad)
    assert answer.status_code == 422, bad
    assert answer.json()["problems"][0].startswith(field), answer.json()
    invalid = {"version": "", "reason": "invalid", "protocol": "json"}
    assert s.metric("modelfactory_request_errors_total", **invalid) == 1


def test_forecast_route_refuses_unknown_stores_naming_them(service):
    s = service()
    missing = s.client.post("/forecast", json={"store": 99999, "horizon_days": 42})
    assert missing.status_code == 404
    assert "store 99999" in missing.json()["error"] and missing.json()["store"] == 99999
    assert (
        s.metric(
            "modelfactory_request_errors_total", version="", reason="not_found", protocol="json"
        )
        == 1
    )
    assert (
        s.metric("modelfactory_requests_total", version="1", route="champion", protocol="json") == 0
    )


def test_a_token_guards_the_forecast_route_as_every_route(service):
    s = service(options=ServingSettings(auth_token="s3cret"))
    body = {"store": 1, "horizon_days": 3}
    assert s.client.post("/forecast", json=body).status_code == 401
    wrong = s.client.post("/forecast", json=body, headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert s.client.post(INFER, json=v2_inputs([1], [3])).status_code == 401
    ok = s.client.post("/forecast", json=body, headers={"authorization": "Bearer s3cret"})
    assert ok.status_code == 200
    refused = s.metric(
        "modelfactory_request_errors_total", version="", reason="unauthenticated", protocol="json"
    )
    assert refused == 2


def test_no_request_makes_a_server_error(service):
    """Fuzz every route from the app's own OpenAPI document, as test_fuzz_openapi.py does."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    s = service(options=ServingSettings(max_request_bytes=4096, max_records=5))
    schema = schemathesis.openapi.from_asgi("/openapi.json", s.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert "/forecast" in {operation.path for operation in operations}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def run(case):
            if "name" in (case.path_parameters or {}):
                case.path_parameters["name"] = MODEL  # reach inference, not only the 404
            case.call_and_validate(checks=[not_a_server_error])

        run()


def test_not_ready_without_a_champion(service):
    s = service(champion=None, challenger=None)
    assert s.client.post("/forecast", json={"store": 1, "horizon_days": 3}).status_code == 503
    assert (
        s.client.post("/predict", json={"records": [{"store": 1, "horizon_days": 3}]}).status_code
        == 503
    )
    assert s.client.post(INFER, json=v2_inputs([1], [3])).status_code == 503
    assert s.client.get("/v2/health/ready").status_code == 503


def test_v2_infer_answers_one_row_of_days_per_record(service):
    s = service()
    meta = s.client.get(f"/v2/models/{MODEL}").json()
    assert meta["inputs"] == [
        {"name": "store", "datatype": "INT64", "shape": [-1]},
        {"name": "horizon_days", "datatype": "INT64", "shape": [-1]},
    ]
    assert {o["name"]: (o["datatype"], o["shape"]) for o in meta["outputs"]} == {
        "ds": ("BYTES", [-1, -1]),
        "yhat": ("FP64", [-1, -1]),
        "yhat_lower": ("FP64", [-1, -1]),
        "yhat_upper": ("FP64", [-1, -1]),
        "open": ("BOOL", [-1, -1]),
    }

    one = s.client.post(INFER, json=v2_inputs([1], [14]))
    assert one.status_code == 200, one.text
    outputs = {o["name"]: o for o in one.json()["outputs"]}
    assert {name: o["shape"] for name, o in outputs.items()} == {name: [1, 14] for name in outputs}
    plain = s.client.post("/forecast", json={"store": 1, "horizon_days": 14}).json()["forecast"]
    for name in ("ds", "yhat", "yhat_lower", "yhat_upper", "open"):
        assert outputs[name]["data"] == [day[name] for day in plain], name

    two = {
        o["name"]: o for o in s.client.post(INFER, json=v2_inputs([2, 3], [5, 5])).json()["outputs"]
    }
    assert two["yhat"]["shape"] == [2, 5] and len(two["yhat"]["data"]) == 10
    by_json = s.client.post(
        "/predict",
        json={"records": [{"store": 2, "horizon_days": 5}, {"store": 3, "horizon_days": 5}]},
    ).json()
    assert two["yhat"]["data"] == [y for p in by_json["predictions"] for y in p["yhat"]]


def test_v2_refuses_mixed_horizons_and_unknown_stores_naming_them(service):
    s = service()
    mixed = s.client.post(INFER, json=v2_inputs([1, 2], [7, 14]))
    assert mixed.status_code == 422
    assert "input 'horizon_days': rows ask for different values (7, 14)" in mixed.json()["error"]
    unknown = s.client.post(INFER, json=v2_inputs([1, 99999], [7, 7]))
    assert unknown.status_code == 404 and "store 99999" in unknown.json()["error"]
    too_far = s.client.post(INFER, json=v2_inputs([1], [400]))
    assert (
        too_far.status_code == 422
        and "records[0].horizon_days: expected 1 to 365" in too_far.json()["error"]
    )
    unknown_json = s.client.post(
        "/predict", json={"records": [{"store": 99999, "horizon_days": 7}]}
    )
    assert unknown_json.status_code == 404 and "store 99999" in unknown_json.json()["error"]
    # The JSON route has no rectangular tensors: mixed horizons are fine there.
    mixed_json = s.client.post(
        "/predict",
        json={"records": [{"store": 1, "horizon_days": 3}, {"store": 2, "horizon_days": 5}]},
    )
    assert [len(p["ds"]) for p in mixed_json.json()["predictions"]] == [3, 5]
    assert (
        s.metric(
            "modelfactory_request_errors_total", version="", reason="invalid", protocol="v2_rest"
        )
        == 2
    )
    assert (
        s.metric(
            "modelfactory_request_errors_total", version="", reason="not_found", protocol="v2_rest"
        )
        == 1
    )
    assert (
        s.metric("modelfactory_requests_total", version="1", route="champion", protocol="v2_rest")
        == 0
    )


def test_x_model_version_and_a_canary_route_forecasts_and_unknown_stores_fall_back(service):
    s = service()
    champion = s.client.post("/forecast", json={"store": 1, "horizon_days": 7}).json()
    pinned = s.client.post(
        "/forecast", json={"store": 1, "horizon_days": 7}, headers={"x-model-version": "2"}
    )
    assert pinned.headers["x-model-version"] == "2" and pinned.json()["model_version"] == "2"
    assert [d["yhat"] for d in pinned.json()["forecast"]] == pytest.approx(
        [d["yhat"] * 1.5 for d in champion["forecast"]]
    )
    # The answer cache is per answering version: the champion's answer is still its own.
    assert s.client.post("/forecast", json={"store": 1, "horizon_days": 7}).json() == champion
    by_v2 = s.client.post(f"/v2/models/{MODEL}/versions/2/infer", json=v2_inputs([1], [7]))
    assert by_v2.json()["model_version"] == "2"
    assert (
        s.client.post(
            "/forecast", json={"store": 1, "horizon_days": 7}, headers={"x-model-version": "9"}
        ).status_code
        == 404
    )
    explicit_unknown = s.client.post(
        "/forecast", json={"store": 3, "horizon_days": 7}, headers={"x-model-version": "2"}
    )
    assert (
        explicit_unknown.status_code == 404
        and "store 3 has no model in store-sales version 2" in (explicit_unknown.json()["error"])
    )

    s.move(
        mode="canary", weight=100.0, budget_ms=60_000
    )  # a cold challenger runs Prophet: no "late"
    canary = s.client.post("/forecast", json={"store": 2, "horizon_days": 7})
    assert canary.headers["x-model-version"] == "2"
    lacking = s.client.post("/forecast", json={"store": 3, "horizon_days": 7})  # v2 has no store 3
    assert lacking.status_code == 200 and lacking.headers["x-model-version"] == "1"
    assert s.metric("modelfactory_fallbacks_total", challenger="2", reason="rejected") == 1
    assert (
        s.metric("modelfactory_requests_total", version="2", route="canary", protocol="json") == 1
    )
    assert (
        s.metric("modelfactory_requests_total", version="2", route="explicit", protocol="v2_rest")
        == 1
    )


def test_shadow_logs_both_answers_and_counts_the_disagreement(service):
    s = service()
    s.move(mode="shadow", weight=100.0)
    for _ in range(3):
        answer = s.client.post(
            "/forecast", json={"store": 1, "horizon_days": 7}, headers={"x-request-id": "r1"}
        )
        assert answer.headers["x-model-version"] == "1"
    s.router.drain()
    assert s.metric("modelfactory_shadow_predictions_total", version="2") == 3
    assert s.metric("modelfactory_shadow_disagreements_total", version="2") == 3
    s.prediction_log.flush()
    rows = read_predictions(s.log_url, MODEL)
    assert (
        sorted((r["role"], r["model_version"]) for r in rows)
        == [("served", "1")] * 3 + [("shadow", "2")] * 3
    )
    assert {r["request_id"] for r in rows} == {"r1"}
    served = next(r for r in rows if r["role"] == "served")
    assert served["features"] == {"store": 1, "horizon_days": 7}
    assert len(served["output"]["yhat"]) == 7 and set(served["output"]) == {
        "ds",
        "yhat",
        "yhat_lower",
        "yhat_upper",
        "open",
    }


def test_metrics_count_every_protocol_per_version(service):
    s = service()
    s.client.post("/forecast", json={"store": 1, "horizon_days": 7})
    s.client.post(
        "/predict",
        json={"records": [{"store": 1, "horizon_days": 7}, {"store": 2, "horizon_days": 3}]},
    )
    s.client.post(INFER, json=v2_inputs([3], [10]))
    assert (
        s.metric("modelfactory_requests_total", version="1", route="champion", protocol="json") == 2
    )
    assert (
        s.metric("modelfactory_requests_total", version="1", route="champion", protocol="v2_rest")
        == 1
    )
    assert s.metric("modelfactory_predictions_total", version="1", label="forecast") == 4
    assert s.metric("modelfactory_predict_latency_seconds_count", version="1") == 3
    assert s.metric("modelfactory_prediction_score_count", version="1") == 4
    assert s.metric("modelfactory_prediction_score_sum", version="1") > 0  # mean daily sales
    s.prediction_log.flush()
    rows = read_predictions(s.log_url, MODEL)
    assert sorted((r["features"]["store"], len(r["output"]["ds"])) for r in rows) == [
        (1, 7),
        (1, 7),
        (2, 3),
        (3, 10),
    ]


def test_a_new_champion_answers_with_fresh_caches_and_a_registry_outage_keeps_it(service):
    s = service(challenger=None)
    assert (
        s.client.post("/forecast", json={"store": 1, "horizon_days": 7}).json()["model_version"]
        == "1"
    )
    s.move(champion="2")
    answer = s.client.post("/forecast", json={"store": 1, "horizon_days": 7})
    assert answer.json()["model_version"] == "2" and s.router.served_versions == ["2"]
    model = s.client.get("/model").json()
    assert model["version"] == "2" and model["cache"] == {
        "models": 1,
        "forecasts": 1,
        "hits": 0,
        "misses": 1,
    }
    s.registry.down = True
    assert s.router.refresh() is False
    assert (
        s.client.post("/forecast", json={"store": 2, "horizon_days": 3}).json()["model_version"]
        == "2"
    )


def test_cli_refuses_a_mistyped_store_list_without_a_traceback():
    from typer.testing import CliRunner

    from modelfactory.local.cli import app

    result = CliRunner().invoke(app, ["run", "forecasting", "--stores", "1,x"])
    assert result.exit_code == 1 and "'x' is not a store id" in result.output
    assert "Traceback" not in result.output


def test_parse_stores():
    assert parse_stores("3, 1,2,,3") == [1, 2, 3]
    assert parse_stores("") is None
    with pytest.raises(ValueError, match="'x7' is not a store id"):
        parse_stores("1,x7")
