"""The real thing: `bentoml serve` with two workers, v2 over HTTP and gRPC from tritonclient, the
rollout driven through the registry, /metrics, and the prediction store."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from modelfactory.predictions.store import read_predictions
from modelfactory.registry import Registry
from modelfactory.rollout import clear_rollout, set_rollout
from tests.support.serving import MODEL, served_for_real, triton_inputs, until

pytestmark = pytest.mark.integration
TOKEN = "integration-token"


def auth() -> dict:  # a new dict per call: tritonclient writes its own headers into the one it gets
    return {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def service(registered, tmp_path_factory):
    uri, champion, challenger = registered
    home = tmp_path_factory.mktemp("serving-home")
    env = {"MODELFACTORY_AUTH_TOKEN": TOKEN, "MODELFACTORY_MAX_REQUEST_BYTES": "200000"}
    with served_for_real(MODEL, uri, home, workers=2, env=env) as (process, grpc, store):
        yield {
            "http": process.url,
            "metrics": process.metrics_url,
            "grpc": grpc,
            "store": store,
            "uri": uri,
            "champion": champion,
            "challenger": challenger,
            "log": home / "serve.log",
        }
    clear_rollout(Registry(uri), MODEL)


def test_tritonclient_http_and_grpc_agree_with_the_json_route(service, sample_records):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    records = sample_records[:4]
    plain = httpx.post(
        f"{service['http']}/predict", json={"records": records}, headers=auth()
    ).json()
    expected = np.array([p["probability"] for p in plain["predictions"]])
    classes = [p["class"].encode() for p in plain["predictions"]]

    http = httpclient.InferenceServerClient(service["http"].removeprefix("http://"))
    assert http.is_server_live() and http.is_server_ready()
    assert http.is_model_ready(MODEL, headers=auth())
    meta = http.get_model_metadata(MODEL, headers=auth())
    assert {i["name"] for i in meta["inputs"]} == set(records[0])
    for binary in (True, False):
        result = http.infer(MODEL, triton_inputs(httpclient, records, binary), headers=auth())
        np.testing.assert_allclose(result.as_numpy("probability"), expected)
        assert list(result.as_numpy("class")) == classes

    grpc = grpcclient.InferenceServerClient(service["grpc"])
    assert grpc.is_server_live() and grpc.is_server_ready()
    assert grpc.is_model_ready(MODEL, headers=auth())
    assert {i.name for i in grpc.get_model_metadata(MODEL, headers=auth()).inputs} == set(
        records[0]
    )
    result = grpc.infer(MODEL, triton_inputs(grpcclient, records), headers=auth())
    np.testing.assert_allclose(result.as_numpy("probability"), expected)
    assert list(result.as_numpy("class")) == classes
    assert result.get_response().model_version == service["champion"]


def test_grpc_refusals_have_the_right_codes(service, sample_records):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    grpc = grpcclient.InferenceServerClient(service["grpc"])
    records = sample_records[:2]

    def status(call) -> tuple[str, str]:
        with pytest.raises(InferenceServerException) as caught:
            call()
        return caught.value.status(), caught.value.message()

    code, message = status(lambda: grpc.infer(MODEL, triton_inputs(grpcclient, records)))
    assert code == "StatusCode.UNAUTHENTICATED"
    code, message = status(
        lambda: grpc.infer(MODEL, triton_inputs(grpcclient, records)[1:], headers=auth())
    )
    assert code == "StatusCode.INVALID_ARGUMENT" and "input 'age': missing" in message
    wrong = triton_inputs(grpcclient, records)
    wrong[0] = grpcclient.InferInput("age", [2], "FP64")
    wrong[0].set_data_from_numpy(np.array([30.0, 40.0]))
    code, message = status(lambda: grpc.infer(MODEL, wrong, headers=auth()))
    assert code == "StatusCode.INVALID_ARGUMENT" and "input 'age': datatype FP64" in message
    code, _ = status(
        lambda: grpc.infer("no-such-model", triton_inputs(grpcclient, records), headers=auth())
    )
    assert code == "StatusCode.NOT_FOUND"
    code, _ = status(
        lambda: grpc.infer(
            MODEL, triton_inputs(grpcclient, records), model_version="99", headers=auth()
        )
    )
    assert code == "StatusCode.NOT_FOUND"
    code, _ = status(
        lambda: grpc.infer(MODEL, triton_inputs(grpcclient, sample_records * 100), headers=auth())
    )
    assert code == "StatusCode.RESOURCE_EXHAUSTED"
    too_big = httpx.post(
        f"{service['http']}/predict", json={"records": sample_records * 100}, headers=auth()
    )
    assert too_big.status_code == 413


def test_rollout_from_the_registry_reaches_every_worker(service, sample_records):
    registry = Registry(service["uri"])
    body = {"records": sample_records[:1]}
    url = f"{service['http']}/predict"
    set_rollout(registry, MODEL, "canary", 100)
    until(
        lambda: all(
            httpx.post(url, json=body, headers=auth()).headers["x-model-version"]
            == service["challenger"]
            for _ in range(8)
        )
    )
    pinned = httpx.post(url, json=body, headers={**auth(), "x-model-version": service["champion"]})
    assert pinned.headers["x-model-version"] == service["champion"]
    set_rollout(registry, MODEL, "shadow", 100)
    until(
        lambda: all(
            httpx.post(url, json=body, headers=auth()).headers["x-model-version"]
            == service["champion"]
            for _ in range(8)
        )
    )
    for _ in range(10):
        httpx.post(url, json=body, headers=auth())
    clear_rollout(registry, MODEL)
    time.sleep(1.5)
    metrics = httpx.get(f"{service['metrics']}/metrics").text
    assert (
        f'modelfactory_requests_total{{model="{MODEL}",protocol="json",route="canary",'
        f'version="{service["challenger"]}"}}' in metrics
    )
    assert (
        f'modelfactory_shadow_predictions_total{{model="{MODEL}",version="{service["challenger"]}"}}'
        in metrics
    )
    assert "modelfactory_prediction_log_written_total" in metrics
    assert "modelfactory_predict_latency_seconds_bucket" in metrics
    rows = until(lambda: read_predictions(service["store"], MODEL))
    assert {r["role"] for r in rows} == {"served", "shadow"}
    assert {r["model_version"] for r in rows} == {service["champion"], service["challenger"]}
