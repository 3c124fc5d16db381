"""The real forecast service: `bentoml serve` of ForecastService over two registered model sets,
called with tritonclient over v2 HTTP and gRPC, the rollout driven through the registry, /metrics
and the prediction store."""

from __future__ import annotations

from dataclasses import replace

import httpx
import numpy as np
import pytest

from modelfactory.predictions.store import read_predictions
from modelfactory.registry import Registry
from modelfactory.rollout import clear_rollout, set_rollout
from tests.support.serving import served_for_real, until

pytestmark = pytest.mark.integration
MODEL = "store-sales-protocols"


def _register(uri: str, directory) -> str:
    import mlflow

    from modelfactory.forecasting.registered import log_model_set

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("forecast-service-tests")
    with mlflow.start_run() as run:
        info = log_model_set(directory)
    return str(
        Registry(uri).register(MODEL, info.model_uri, run.info.run_id, "forecasting").version
    )


@pytest.fixture(scope="module")
def service(mlflow_server, model_set_dir, synthetic_result, tmp_path_factory):
    """Version 1 (stores 1-3) is the champion, version 2 (stores 1-2 only) the challenger."""
    from modelfactory.forecasting.model_set import save_model_set

    fewer = tmp_path_factory.mktemp("model_set_fewer")
    models = {s: m for s, m in synthetic_result.models.items() if s in (1, 2)}
    save_model_set(fewer, replace(synthetic_result, models=models))
    champion, challenger = _register(mlflow_server, model_set_dir), _register(mlflow_server, fewer)
    registry = Registry(mlflow_server)
    registry.set_alias(MODEL, "champion", champion)
    registry.set_alias(MODEL, "challenger", challenger)

    home = tmp_path_factory.mktemp("forecast-serving-home")
    served = served_for_real(MODEL, mlflow_server, home, workers=1)
    with served as (process, target, store):
        import tritonclient.grpc as grpcclient

        yield {
            "http": process.url,
            "metrics": process.metrics_url,
            "grpc": grpcclient.InferenceServerClient(target),
            "store": store,
            "registry": registry,
            "champion": champion,
            "challenger": challenger,
        }
    clear_rollout(registry, MODEL)


def _inputs(module, stores, horizons):
    tensors = []
    for name, values in (("store", stores), ("horizon_days", horizons)):
        tensor = module.InferInput(name, [len(values)], "INT64")
        tensor.set_data_from_numpy(np.array(values, dtype=np.int64))
        tensors.append(tensor)
    return tensors


def test_tritonclient_http_and_grpc_agree_with_the_forecast_route(service):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    plain = httpx.post(f"{service['http']}/forecast", json={"store": 2, "horizon_days": 14})
    assert plain.status_code == 200, plain.text
    days = plain.json()["forecast"]

    http = httpclient.InferenceServerClient(service["http"].removeprefix("http://"))
    assert http.is_server_live() and http.is_server_ready() and http.is_model_ready(MODEL)
    meta = http.get_model_metadata(MODEL)
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("store", "INT64"),
        ("horizon_days", "INT64"),
    ]
    assert {o["name"]: o["shape"] for o in meta["outputs"]} == {
        name: [-1, -1] for name in ("ds", "yhat", "yhat_lower", "yhat_upper", "open")
    }
    by_http = http.infer(MODEL, _inputs(httpclient, [2, 1], [14, 14]))
    grpc = service["grpc"]
    grpc_meta = grpc.get_model_metadata(MODEL)
    assert {o.name: list(o.shape) for o in grpc_meta.outputs} == {
        o["name"]: o["shape"] for o in meta["outputs"]
    }
    by_grpc = grpc.infer(MODEL, _inputs(grpcclient, [2, 1], [14, 14]))
    assert by_grpc.get_response().model_version == service["champion"]
    for result in (by_http, by_grpc):
        yhat, ds, is_open = (result.as_numpy(n) for n in ("yhat", "ds", "open"))
        assert yhat.shape == ds.shape == is_open.shape == (2, 14)
        np.testing.assert_allclose(yhat[0], [d["yhat"] for d in days])
        np.testing.assert_allclose(
            result.as_numpy("yhat_upper")[0], [d["yhat_upper"] for d in days]
        )
        assert [d.decode() for d in ds[0]] == [d["ds"] for d in days]
        assert is_open.dtype == np.bool_ and is_open[0].tolist() == [d["open"] for d in days]
    pinned = grpc.infer(MODEL, _inputs(grpcclient, [1], [7]), model_version=service["challenger"])
    assert pinned.get_response().model_version == service["challenger"]
    assert pinned.as_numpy("yhat").shape == (1, 7)


def test_unknown_stores_and_mixed_horizons_are_refused_naming_them(service):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    grpc = service["grpc"]

    def refused(call) -> tuple[str, str]:
        with pytest.raises(InferenceServerException) as caught:
            call()
        return str(caught.value.status()), caught.value.message()

    code, message = refused(lambda: grpc.infer(MODEL, _inputs(grpcclient, [1, 99999], [7, 7])))
    assert code == "StatusCode.NOT_FOUND" and "store 99999" in message
    code, message = refused(
        lambda: grpc.infer(
            MODEL, _inputs(grpcclient, [3], [7]), model_version=service["challenger"]
        )
    )
    assert code == "StatusCode.NOT_FOUND"
    assert f"store 3 has no model in {MODEL} version {service['challenger']}" in message
    code, message = refused(lambda: grpc.infer(MODEL, _inputs(grpcclient, [1, 2], [7, 14])))
    assert code == "StatusCode.INVALID_ARGUMENT" and "input 'horizon_days'" in message
    code, message = refused(lambda: grpc.infer(MODEL, _inputs(grpcclient, [1], [400])))
    assert code == "StatusCode.INVALID_ARGUMENT" and "records[0].horizon_days" in message

    http = httpclient.InferenceServerClient(service["http"].removeprefix("http://"))
    code, message = refused(lambda: http.infer(MODEL, _inputs(httpclient, [1, 2], [7, 14])))
    assert code == "422" and "input 'horizon_days'" in message
    unknown = httpx.post(f"{service['http']}/forecast", json={"store": 99999, "horizon_days": 7})
    assert unknown.status_code == 404 and unknown.json()["store"] == 99999


def test_the_registry_rollout_reaches_the_forecasts_with_metrics_and_the_log(service):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    url = f"{service['http']}/forecast"
    champion, challenger = service["champion"], service["challenger"]
    httpclient.InferenceServerClient(service["http"].removeprefix("http://")).infer(
        MODEL, _inputs(httpclient, [1], [7])
    )
    service["grpc"].infer(MODEL, _inputs(grpcclient, [2], [7]))
    service["grpc"].infer(MODEL, _inputs(grpcclient, [2], [7]), model_version=challenger)
    set_rollout(service["registry"], MODEL, "canary", 100, budget_ms=60_000)
    until(
        lambda: (
            httpx.post(url, json={"store": 1, "horizon_days": 7}).headers.get("x-model-version")
            == challenger
        )
    )
    # The challenger has no model for store 3: the champion answers, and the fallback is counted.
    lacking = httpx.post(url, json={"store": 3, "horizon_days": 7})
    assert lacking.status_code == 200 and lacking.json()["model_version"] == champion
    clear_rollout(service["registry"], MODEL)
    until(
        lambda: (
            httpx.post(url, json={"store": 1, "horizon_days": 7}).headers.get("x-model-version")
            == champion
        )
    )

    metrics = httpx.get(f"{service['metrics']}/metrics").text
    for version, route, protocol in (
        (challenger, "canary", "json"),
        (champion, "champion", "json"),
        (champion, "champion", "v2_rest"),
        (champion, "champion", "v2_grpc"),
        (challenger, "explicit", "v2_grpc"),
    ):
        assert (
            f'modelfactory_requests_total{{model="{MODEL}",protocol="{protocol}",route="{route}",'
            f'version="{version}"}}' in metrics
        ), (version, route, protocol)
    fallbacks = f'challenger="{challenger}",model="{MODEL}",reason="rejected"'
    assert f"modelfactory_fallbacks_total{{{fallbacks}}} 1.0" in metrics

    def logged_store_3():
        rows = read_predictions(service["store"], MODEL)
        return [r for r in rows if r["features"] == {"store": 3, "horizon_days": 7}] and rows

    rows = until(logged_store_3)
    assert {r["model_version"] for r in rows} == {champion, challenger}
    (row,) = [r for r in rows if r["features"] == {"store": 3, "horizon_days": 7}]
    assert row["model_version"] == champion and len(row["output"]["yhat"]) == 7


def test_a_loaded_version_removes_its_downloaded_model_set_once_dropped(service, mlflow_server):
    """A long-running service drops versions as rollouts move on; their files must not pile up."""
    import gc

    from modelfactory.forecasting.served import ServedForecaster

    served = ServedForecaster.load(MODEL, service["champion"], mlflow_server)
    directory = served.model_set.directory
    assert directory.is_dir() and any(directory.rglob("*"))
    assert served.predict([{"store": 1, "horizon_days": 3}])[0]["yhat"]
    del served
    gc.collect()
    assert not directory.exists()
