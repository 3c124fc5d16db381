"""ServedForecaster on a real model set (3 synthetic stores, Prophet): what serving asks of it."""

from __future__ import annotations

import pandas as pd
import pytest

from modelfactory.forecasting.model_set import forecast
from modelfactory.forecasting.served import (
    AGREEMENT_TOLERANCE,
    MAX_HORIZON_DAYS,
    ServedForecaster,
    UnknownStore,
)
from modelfactory.inference.schema import InputNotFound, InvalidInput
from modelfactory.inference.served import ServedModel


@pytest.fixture
def served(model_set):
    return ServedForecaster("store-sales", "3", model_set)


def test_is_a_served_model_with_store_and_horizon_in_and_daily_lists_out(served):
    assert isinstance(served, ServedModel)
    assert [(t.name, t.datatype, t.kind) for t in served.input_tensors()] == [
        ("store", "INT64", "integer"),
        ("horizon_days", "INT64", "integer"),
    ]
    outputs = {t.name: t for t in served.output_tensors()}
    assert {name: t.datatype for name, t in outputs.items()} == {
        "ds": "BYTES",
        "yhat": "FP64",
        "yhat_lower": "FP64",
        "yhat_upper": "FP64",
        "open": "BOOL",
    }
    assert all(
        t.length_from == "horizon_days" and t.as_metadata()["shape"] == [-1, -1]
        for t in outputs.values()
    )
    assert served.stores() == [1, 2, 3]


def test_predicts_each_records_daily_forecast_as_the_model_set_does(served, model_set):
    first, second = served.predict(
        [{"store": 2, "horizon_days": 10}, {"store": 3, "horizon_days": 3}]
    )
    assert [len(first[name]) for name in ("ds", "yhat", "yhat_lower", "yhat_upper", "open")] == [
        10
    ] * 5
    assert len(second["yhat"]) == 3
    frame = forecast(model_set.store_model(2), 10)
    assert list(first["ds"]) == [f"{d:%Y-%m-%d}" for d in frame["ds"]]
    assert list(first["yhat"]) == pytest.approx(
        frame["yhat"].tolist()
    )  # yhat has no sampling noise
    assert list(first["open"]) == frame["open"].tolist()
    assert all(
        lo <= y <= hi
        for lo, y, hi in zip(first["yhat_lower"], first["yhat"], first["yhat_upper"], strict=True)
    )
    closed = [y for y, is_open in zip(first["yhat"], first["open"], strict=True) if not is_open]
    assert closed and set(closed) == {0.0}
    assert all(type(v) is float for v in first["yhat"]) and all(
        type(v) is bool for v in first["open"]
    )


def test_answers_from_its_own_cache_the_second_time(served, model_set):
    other = ServedForecaster("store-sales", "4", model_set)
    first = served.predict([{"store": 1, "horizon_days": 7}])
    assert served.predict([{"store": 1, "horizon_days": 7}]) == first
    stats = served.cache.forecasts.stats()
    assert (stats.hits, stats.misses) == (1, 1) and served.cache.models.stats().misses == 1
    assert served.info["cache"] == {"models": 1, "forecasts": 1, "hits": 1, "misses": 1}
    other.predict([{"store": 1, "horizon_days": 7}])  # another version: its own cache
    assert other.cache.forecasts.stats().misses == 1 and served.cache.forecasts.stats().hits == 1


def test_says_it_would_block_only_until_the_forecasts_are_cached(served):
    """The HTTP app answers cached forecasts on the event loop and sends the rest to a thread."""
    wanted = [{"store": 1, "horizon_days": 7}, {"store": 2, "horizon_days": 7}]
    assert served.would_block(wanted)
    served.predict(wanted[:1])
    assert served.would_block(wanted) and not served.would_block(wanted[:1])
    served.predict(wanted)
    assert not served.would_block(wanted)
    # answered at once: refused records and stores without a model
    assert not served.would_block([{"store": 1, "horizon_days": 0}])
    assert not served.would_block([{"store": 99999, "horizon_days": 7}])


@pytest.mark.parametrize(
    ("records", "problems"),
    [
        (
            [{"store": 1, "horizon_days": 0}],
            ["records[0].horizon_days: expected 1 to 365 days, got 0"],
        ),
        (
            [{"store": 1, "horizon_days": 7}, {"store": 1, "horizon_days": MAX_HORIZON_DAYS + 1}],
            ["records[1].horizon_days: expected 1 to 365 days, got 366"],
        ),
        (
            [{"store": "1", "horizon_days": 1.5}],
            [
                'records[0].store: expected an integer, got "1"',
                "records[0].horizon_days: expected an integer, got 1.5",
            ],
        ),
        ([{"store": 1}], ["records[0].horizon_days: missing"]),
        ([], ["records: expected at least one record"]),
    ],
)
def test_refuses_bad_records_naming_the_record_and_field(served, records, problems):
    with pytest.raises(InvalidInput) as caught:
        served.predict(records)
    assert caught.value.problems == problems and caught.value.kind == "invalid"


def test_refuses_more_records_than_allowed(served):
    with pytest.raises(InvalidInput, match="at most 2 per request"):
        served.predict([{"store": 1, "horizon_days": 1}] * 3, max_records=2)


def test_an_unknown_store_is_not_found_naming_it(served):
    with pytest.raises(UnknownStore) as caught:
        served.predict([{"store": 1, "horizon_days": 7}, {"store": 77, "horizon_days": 7}])
    assert isinstance(caught.value, InputNotFound) and caught.value.kind == "not_found"
    assert caught.value.store == 77 and "store 77 has no model in store-sales version 3" in str(
        caught.value
    )
    assert len(served.cache.forecasts) == 0  # nothing predicted for a request that is refused


def test_summary_is_the_mean_daily_forecast(served):
    (prediction,) = served.predict([{"store": 2, "horizon_days": 14}])
    label, score = served.summarize(prediction)
    assert label == "forecast" and score == pytest.approx(sum(prediction["yhat"]) / 14)


def test_forecasts_agree_within_the_tolerance(served):
    (ours,) = served.predict([{"store": 2, "horizon_days": 14}])

    def scaled(factor):
        return {**ours, "yhat": tuple(y * factor for y in ours["yhat"])}

    inside, outside = 1 + AGREEMENT_TOLERANCE / 2, 1 + AGREEMENT_TOLERANCE * 2
    assert served.agrees([ours, ours, ours], [ours, scaled(inside), scaled(outside)]) == [
        True,
        True,
        False,
    ]
    assert served.agrees([ours], [{**ours, "yhat": ours["yhat"][:7]}]) == [False]


def test_single_forecasts_and_history_for_the_cli(served):
    frame = served.forecast(1, 21)
    assert (
        list(frame.columns) == ["ds", "yhat", "yhat_lower", "yhat_upper", "open"]
        and len(frame) == 21
    )
    assert pd.api.types.is_datetime64_any_dtype(frame["ds"])
    history = served.history(1)
    assert frame["ds"].min() == history["ds"].max() + pd.Timedelta(days=1)
    with pytest.raises(ValueError, match="between 1 and 365"):
        served.forecast(1, 0)
    with pytest.raises(UnknownStore, match="store 9"):
        served.history(9)
