"""Ground truth over the real HTTP API: stored by request id beside the prediction log, a repeat
replaces, an unknown id is a 404 naming it, a bad value a 422 naming the field, and a refused
batch stores nothing."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from modelfactory.predictions.feedback import FeedbackStore, UnknownRequests, parse_feedback
from modelfactory.predictions.store import PredictionRow, feedback_table, insert_rows, metadata
from modelfactory.sql import engine as store_engine
from modelfactory.use_cases import CLASSIFICATION, FORECASTING


def stored(endpoint) -> dict:
    """(request_id, record) -> actual, as the feedback table holds them."""
    engine = store_engine(endpoint.prediction_log.url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.select(feedback_table)).all()
    finally:
        engine.dispose()
    return {(row.request_id, row.record): row.actual for row in rows}


def predict(client, endpoint, records, request_id=None) -> str:
    headers = {"x-request-id": request_id} if request_id else {}
    answer = client.post("/predict", json={"records": records}, headers=headers)
    assert answer.status_code == 200, answer.text
    endpoint.prediction_log.flush()
    return answer.headers["x-request-id"]


def test_ground_truth_is_stored_by_request_id_and_a_repeat_replaces_it(make_client, sample_records):
    client, endpoint = make_client()
    request_id = predict(client, endpoint, sample_records[:1], "customer-17")
    first = client.post("/feedback", json={"request_id": request_id, "actual": "yes"})
    assert first.status_code == 200, first.text
    assert first.json() == {"model": endpoint.name, "stored": 1, "replaced": 0}
    again = client.post("/feedback", json=[{"request_id": request_id, "actual": "no"}])
    assert again.json() == {"model": endpoint.name, "stored": 1, "replaced": 1}
    assert stored(endpoint) == {("customer-17", 0): 0}  # replaced, never counted twice


def test_every_answer_names_its_request_so_feedback_can_follow(make_client, sample_records):
    client, endpoint = make_client()
    generated = predict(client, endpoint, sample_records[:3])  # the caller sent no id
    assert len(generated) == 32
    items = [
        {"request_id": generated, "record": i, "actual": v} for i, v in enumerate([1, 0, True])
    ]
    assert client.post("/feedback", json=items).json()["stored"] == 3
    assert stored(endpoint) == {(generated, 0): 1, (generated, 1): 0, (generated, 2): 1}


def test_unknown_request_ids_are_a_404_naming_them_and_nothing_is_stored(
    make_client, sample_records
):
    client, endpoint = make_client()
    known = predict(client, endpoint, sample_records[:2], "known-1")
    answer = client.post(
        "/feedback",
        json=[
            {"request_id": known, "actual": "yes"},
            {"request_id": "never-served", "actual": "no"},
            {"request_id": known, "record": 7, "actual": "no"},
        ],
    )
    assert answer.status_code == 404
    body = answer.json()
    assert "request_id 'never-served'" in body["error"]
    assert body["problems"] == [
        "request_id 'never-served'",
        "request_id 'known-1' record 7 (it has 2)",
    ]
    assert stored(endpoint) == {}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            [{"request_id": "r", "actual": "yes"}, {"request_id": "r", "actual": "maybe"}],
            '[1].actual: expected "yes" or "no" (or true/false, 1/0), got "maybe"',
        ),
        ({"request_id": "r", "actual": 2}, 'actual: expected "yes" or "no"'),
        ({"actual": "yes"}, "request_id: expected the x-request-id of a prediction"),
        ({"request_id": "r"}, "actual: missing"),
        ({"request_id": "r", "actual": "no", "record": -1}, "record: expected an integer >= 0"),
        ({"request_id": "r", "actuall": "no"}, "actuall: unknown field"),
        ({"request_id": "x" * 65, "actual": "no"}, "request_id: expected the x-request-id"),
        ([], "body: expected"),
        (["yes"], '[0]: expected an object, got "yes"'),
    ],
    ids=[
        "bad label in a batch",
        "number not a label",
        "no request id",
        "no actual",
        "negative record",
        "misspelt field",
        "request id too long",
        "empty batch",
        "not an object",
    ],
)
def test_bad_values_are_a_422_naming_the_field_and_nothing_is_stored(
    make_client, sample_records, body, problem
):
    client, endpoint = make_client()
    predict(client, endpoint, sample_records[:1], "r")
    answer = client.post("/feedback", json=body)
    assert answer.status_code == 422, answer.text
    assert any(p.startswith(problem) for p in answer.json()["problems"]), answer.json()
    assert stored(endpoint) == {}


def test_a_body_that_is_not_json_is_a_422(make_client):
    client, _ = make_client()
    answer = client.post("/feedback", content=b"{nope")
    assert answer.status_code == 422 and "not valid JSON" in answer.json()["error"]


def test_a_batch_of_10000(make_client, sample_records):
    client, endpoint = make_client()
    records = (sample_records * 20)[:1000]
    ids = [predict(client, endpoint, records, f"batch-{k}") for k in range(10)]
    items = [
        {"request_id": request_id, "record": i, "actual": "yes" if i % 9 == 0 else "no"}
        for request_id in ids
        for i in range(1000)
    ]
    answer = client.post("/feedback", json=items)
    assert answer.status_code == 200, answer.text[:500]
    assert answer.json()["stored"] == 10_000
    kept = stored(endpoint)
    assert len(kept) == 10_000 and kept[("batch-3", 9)] == 1 and kept[("batch-3", 10)] == 0
    too_many = client.post("/feedback", json=items + items[:1])
    assert too_many.status_code == 422
    assert "10001 items; at most 10000 per request" in too_many.json()["problems"][0]


def test_no_feedback_is_taken_where_predictions_are_not_logged(make_client):
    client, _ = make_client(log_url=False)
    answer = client.post("/feedback", json={"request_id": "r", "actual": "yes"})
    assert answer.status_code == 404 and "takes no feedback" in answer.json()["error"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([1200, None, 0.0], [1200.0, None, 0.0]),
        ({"2015-08-01": 5263}, {"2015-08-01": 5263.0}),
    ],
)
def test_a_forecasts_ground_truth_is_daily_sales(value, expected):
    [item] = parse_feedback(
        {"request_id": "f", "actual": value}, FORECASTING.monitoring.check_actual
    )
    assert item.actual == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ([1200, -3], "actual[1]: expected sales >= 0 or null, got -3"),
        ({"01/08/2015": 10}, "actual['01/08/2015']: expected a date YYYY-MM-DD"),
        ("lots", "actual: expected the sales of the forecast's days"),
    ],
)
def test_bad_daily_sales_are_named(value, problem):
    from modelfactory.predictions.feedback import InvalidFeedback

    with pytest.raises(InvalidFeedback) as refused:
        parse_feedback({"request_id": "f", "actual": value}, FORECASTING.monitoring.check_actual)
    [found] = refused.value.problems
    assert found.startswith(problem)


def test_the_store_upserts_in_one_transaction_on_sqlite_and_postgresql(prediction_store_url):
    store_url = prediction_store_url
    engine = store_engine(store_url)
    metadata.create_all(engine)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as connection:
        insert_rows(
            connection,
            [
                PredictionRow(now, f"r{i}", "m", "1", "served", {"x": i}, {"probability": 0.5})
                for i in range(3)
            ]
            + [PredictionRow(now, "r0", "m", "2", "shadow", {"x": 0}, {"probability": 0.1})],
        )
    store = FeedbackStore(store_url, "m")
    check = CLASSIFICATION.monitoring.check_actual
    try:
        assert store.record(parse_feedback([{"request_id": "r0", "actual": "yes"}], check)) == {
            "stored": 1,
            "replaced": 0,
        }
        batch = [{"request_id": f"r{i}", "actual": "no"} for i in range(3)]
        assert store.record(parse_feedback(batch, check)) == {"stored": 3, "replaced": 1}
        with pytest.raises(UnknownRequests, match="request_id 'r9'"):
            store.record(parse_feedback([*batch, {"request_id": "r9", "actual": 1}], check))
        other_model = FeedbackStore(store_url, "another-model")
        with pytest.raises(UnknownRequests):  # request ids belong to their model
            other_model.record(parse_feedback(batch[:1], check))
        other_model.close()
        with engine.connect() as connection:
            rows = connection.execute(sa.select(feedback_table)).all()
        assert sorted((r.request_id, r.record, r.actual) for r in rows) == [
            ("r0", 0, 0),
            ("r1", 0, 0),
            ("r2", 0, 0),
        ]
    finally:
        store.close()
        engine.dispose()
