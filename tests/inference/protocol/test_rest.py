"""The HTTP API in process, over two real registered versions: JSON and v2 REST, routing, refusals,
metrics and the prediction log."""

from __future__ import annotations

import time

import pytest

from modelfactory.config import ServingSettings
from modelfactory.predictions.store import read_predictions
from tests.support.serving import MODEL, metric, v2_body


def test_plain_json_and_v2_rest_give_the_same_answer(make_client, sample_records, served_models):
    client, endpoint = make_client()
    records = sample_records[:5]
    plain = client.post("/predict", json={"records": records})
    assert (
        plain.status_code == 200
        and plain.headers["x-model-version"] == endpoint.router.state.champion
    )
    v2 = client.post(f"/v2/models/{MODEL}/infer", json={"id": "req-1", **v2_body(records)})
    assert v2.status_code == 200, v2.text
    body = v2.json()
    outputs = {o["name"]: o for o in body["outputs"]}
    assert body["id"] == "req-1" and outputs["probability"]["shape"] == [5]
    assert outputs["probability"]["data"] == [p["probability"] for p in plain.json()["predictions"]]
    assert outputs["class"]["data"] == [p["class"] for p in plain.json()["predictions"]]


def test_v2_metadata_and_health(make_client):
    client, endpoint = make_client()
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    meta = client.get(f"/v2/models/{MODEL}").json()
    assert {"name": "age", "datatype": "INT64", "shape": [-1]} in meta["inputs"]
    assert {"name": "job", "datatype": "BYTES", "shape": [-1]} in meta["inputs"]
    assert [o["name"] for o in meta["outputs"]] == ["class", "probability"]
    assert sorted(meta["versions"]) == sorted(endpoint.router.served_versions)
    assert client.get(f"/v2/models/{MODEL}/ready").json()["ready"] is True
    assert client.get("/v2/models/nope").status_code == 404
    assert client.get(f"/v2/models/{MODEL}/versions/99/ready").status_code == 404


def _without_age(body: dict) -> dict:
    return {**body, "inputs": [t for t in body["inputs"] if t["name"] != "age"]}


@pytest.mark.parametrize(
    ("make_body", "status", "fragment"),
    [
        (lambda r: _without_age(v2_body(r)), 422, "input 'age': missing"),
        (
            lambda r: v2_body(r, {"age": "FP64"}),
            422,
            "input 'age': datatype FP64 not accepted; send INT64",
        ),
        (lambda r: v2_body(r, {"age": "INT32", "euribor3m": "FP32"}), 200, None),  # widened
        (lambda r: v2_body(r, {"job": "INT64"}), 422, "input 'job': datatype INT64 not accepted"),
        (
            lambda r: {"inputs": [{**t, "shape": [2, 2]} for t in v2_body(r)["inputs"]]},
            422,
            "shape [2, 2]",
        ),
    ],
    ids=["missing input", "wider datatype", "narrower datatypes", "string as int", "2-d shape"],
)
def test_v2_tensors_that_do_not_fit_are_a_422_naming_the_input(
    make_client, sample_records, make_body, status, fragment
):
    client, _ = make_client()
    answer = client.post(f"/v2/models/{MODEL}/infer", json=make_body(sample_records[:2]))
    assert answer.status_code == status, answer.text
    if fragment:
        assert fragment in answer.json()["error"]


def test_bad_input_is_a_4xx_naming_the_input(make_client, sample_records):
    client, _ = make_client(options=ServingSettings(max_request_bytes=20_000))
    records = sample_records[:2]
    assert client.post("/v2/models/other/infer", json=v2_body(records)).status_code == 404
    big = client.post(f"/v2/models/{MODEL}/infer", json=v2_body(sample_records * 20))
    assert big.status_code == 413
    assert client.post("/predict", json={"records": sample_records * 20}).status_code == 413
    bad = client.post("/predict", json={"records": [{**records[0], "age": "forty"}]})
    assert bad.status_code == 422 and bad.json()["problems"] == [
        'records[0].age: expected an integer, got "forty"'
    ]
    assert client.post("/predict", content=b"{not json").status_code == 422
    assert (
        client.post(
            f"/v2/models/{MODEL}/infer", headers={"x-model-version": "99"}, json=v2_body(records)
        ).status_code
        == 404
    )


def test_bearer_token(make_client, sample_records):
    client, endpoint = make_client(options=ServingSettings(auth_token="s3cret"))
    body = {"records": sample_records[:1]}
    assert client.post("/predict", json=body).status_code == 401
    assert (
        client.post("/predict", json=body, headers={"authorization": "Bearer wrong"}).status_code
        == 401
    )
    assert (
        client.post("/predict", json=body, headers={"authorization": "Bearer s3cret"}).status_code
        == 200
    )
    assert client.get(f"/v2/models/{MODEL}").status_code == 401
    assert client.get("/v2/health/ready").status_code == 200  # probes stay open
    assert (
        metric(
            endpoint,
            "modelfactory_request_errors_total",
            model=MODEL,
            version="",
            reason="unauthenticated",
            protocol="v2_rest",
        )
        == 1
    )


def test_canary_and_explicit_version_over_http(make_client, sample_records):
    client, endpoint = make_client()
    champion, challenger = endpoint.router.state.champion, endpoint.router.state.challenger
    endpoint.rollout.set(mode="canary", weight=100.0)
    endpoint.router.refresh()
    body = {"records": sample_records[:1]}
    assert {client.post("/predict", json=body).headers["x-model-version"] for _ in range(5)} == {
        challenger
    }
    pinned = client.post("/predict", json=body, headers={"x-model-version": champion})
    assert pinned.headers["x-model-version"] == champion
    endpoint.rollout.set(weight=50.0)
    endpoint.router.refresh()
    sticky = {
        client.post("/predict", json=body, headers={"x-request-key": "cust-42"}).headers[
            "x-model-version"
        ]
        for _ in range(10)
    }
    assert len(sticky) == 1
    seen = {client.post("/predict", json=body).headers["x-model-version"] for _ in range(60)}
    assert seen == {champion, challenger}
    assert (
        metric(
            endpoint,
            "modelfactory_requests_total",
            model=MODEL,
            version=challenger,
            route="canary",
            protocol="json",
        )
        >= 5
    )


def test_shadow_counts_disagreements_and_logs_both_answers(make_client, sample_records, tmp_path):
    url = f"sqlite:///{tmp_path / 'shadow.db'}"
    client, endpoint = make_client(log_url=url)
    champion, challenger = endpoint.router.state.champion, endpoint.router.state.challenger
    endpoint.rollout.set(mode="shadow", weight=100.0)
    endpoint.router.refresh()
    answer = client.post(
        "/predict", json={"records": sample_records}, headers={"x-request-id": "shadow-1"}
    )
    assert answer.headers["x-model-version"] == champion
    endpoint.router.drain()
    endpoint.prediction_log.flush()
    assert (
        metric(endpoint, "modelfactory_shadow_predictions_total", model=MODEL, version=challenger)
        == 50
    )
    disagreements = metric(
        endpoint, "modelfactory_shadow_disagreements_total", model=MODEL, version=challenger
    )
    champion_classes = [p["class"] for p in answer.json()["predictions"]]
    rows = read_predictions(url, MODEL)
    shadow_rows = [r for r in rows if r["role"] == "shadow"]
    served_rows = [r for r in rows if r["role"] == "served"]
    assert len(shadow_rows) == len(served_rows) == 50
    assert {r["request_id"] for r in rows} == {"shadow-1"}
    shadow_classes = [r["output"]["class"] for r in sorted(shadow_rows, key=lambda r: r["id"])]
    assert disagreements == sum(
        a != b for a, b in zip(champion_classes, shadow_classes, strict=True)
    )


def test_a_blocked_prediction_store_never_slows_or_fails_requests(
    make_client, sample_records, hung_store_url
):
    client, endpoint = make_client(log_url=hung_store_url, max_queue=20)
    statuses = [
        client.post("/predict", json={"records": sample_records[:5]}).status_code for _ in range(30)
    ]
    assert statuses == [200] * 30
    dropped = metric(endpoint, "modelfactory_prediction_log_dropped_total", reason="queue_full")
    assert dropped >= 150 - 20 - 5  # queue of 20 rows; maybe one batch taken by the (stuck) writer


def test_metrics_per_version_and_rejections(make_client, sample_records):
    client, endpoint = make_client()
    champion = endpoint.router.state.champion
    client.post("/predict", json={"records": sample_records[:3]})
    client.post(f"/v2/models/{MODEL}/infer", json=v2_body(sample_records[:2]))
    client.post("/predict", json={"records": [{"age": 1}]})
    assert (
        metric(
            endpoint,
            "modelfactory_requests_total",
            model=MODEL,
            version=champion,
            route="champion",
            protocol="json",
        )
        == 1
    )
    assert (
        metric(
            endpoint,
            "modelfactory_requests_total",
            model=MODEL,
            version=champion,
            route="champion",
            protocol="v2_rest",
        )
        == 1
    )
    assert (
        metric(
            endpoint, "modelfactory_predict_latency_seconds_count", model=MODEL, version=champion
        )
        == 2
    )
    assert (
        metric(endpoint, "modelfactory_prediction_score_count", model=MODEL, version=champion) == 5
    )
    assert (
        metric(
            endpoint,
            "modelfactory_request_errors_total",
            model=MODEL,
            version="",
            reason="invalid",
            protocol="json",
        )
        == 1
    )


def test_registry_outage_keeps_serving(make_client, sample_records):
    client, endpoint = make_client()

    def down():
        raise ConnectionError("registry unreachable")

    endpoint.router._read_state = down
    assert not endpoint.router.refresh()
    started = time.perf_counter()
    assert client.post("/predict", json={"records": sample_records[:1]}).status_code == 200
    assert time.perf_counter() - started < 5
    assert metric(endpoint, "modelfactory_rollout_refresh_failures_total", model=MODEL) == 1
