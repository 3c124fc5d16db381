"""Training the per-store model factory: isolation of failures, splits, baseline comparison."""

from __future__ import annotations

import pandas as pd
import pytest

from modelfactory.forecasting import factory as factory_module
from modelfactory.forecasting.config import ForecastConfig
from modelfactory.forecasting.evaluation import aggregate_metrics, seasonal_naive
from modelfactory.forecasting.factory import FactoryError, train_model_factory
from modelfactory.forecasting.features import prophet_frame, select_regressors, split_by_store
from modelfactory.forecasting.split import time_split


def test_every_synthetic_store_gets_a_model_that_beats_the_baseline(synthetic_result):
    assert sorted(synthetic_result.models) == [1, 2, 3]
    assert synthetic_result.failures == {}
    for outcome in synthetic_result.models.values():
        assert outcome.model_json and outcome.model_json.startswith("{")
        assert outcome.regressors[0] == "promo"
        assert outcome.open_weekdays == [0, 1, 2, 3, 4, 5]
        assert outcome.history_end == "2015-07-31"
    metrics = synthetic_result.metrics
    assert metrics["stores"] == 3
    assert metrics["mean_mape"] < metrics["baseline_mean_mape"]


def test_prophet_beats_seasonal_naive_on_real_rossmann_stores(real_sales):
    config = ForecastConfig(holdout_weeks=6, refit_full_history=False, uncertainty_samples=0)
    result = train_model_factory(real_sales, config, n_jobs=2)
    assert result.failures == {}
    metrics = result.metrics
    assert metrics["stores"] == 8
    # Seasonal naive copies last week, whose promo state is the opposite of this week's
    # in Rossmann's fortnightly promo rhythm; Prophet knows the promo calendar.
    assert metrics["mean_mape"] < 0.8 * metrics["baseline_mean_mape"]
    assert metrics["pooled_rmse"] < metrics["baseline_pooled_rmse"]
    assert metrics["share_better"] >= 0.75


def test_store_subset_and_unknown_store(synthetic_sales):
    config = ForecastConfig(holdout_weeks=4, refit_full_history=False, max_failure_share=0.5)
    result = train_model_factory(synthetic_sales, config, stores=[2, 42], backend="sequential")
    assert list(result.models) == [2]
    assert result.failures == {42: "no open days with sales in the data"}


def _fail_store_2(monkeypatch):
    real = factory_module.fit_store

    def flaky(store, split, config):
        if store == 2:
            return factory_module.StoreOutcome(store=2, error="RuntimeError: optimiser diverged")
        return real(store, split, config)

    monkeypatch.setattr(factory_module, "fit_store", flaky)


def test_a_failing_store_is_reported_and_does_not_sink_the_others(synthetic_sales, monkeypatch):
    _fail_store_2(monkeypatch)
    config = ForecastConfig(holdout_weeks=4, refit_full_history=False, max_failure_share=0.5)
    result = train_model_factory(synthetic_sales, config, backend="sequential")
    assert sorted(result.models) == [1, 3]
    assert result.failures == {2: "RuntimeError: optimiser diverged"}


def test_too_many_failures_raise_naming_the_stores(synthetic_sales, monkeypatch):
    _fail_store_2(monkeypatch)
    config = ForecastConfig(holdout_weeks=4, refit_full_history=False, max_failure_share=0.1)
    with pytest.raises(FactoryError, match="store 2: RuntimeError: optimiser diverged") as caught:
        train_model_factory(synthetic_sales, config, backend="sequential")
    assert caught.value.failures == {2: "RuntimeError: optimiser diverged"}
    assert "1 of 3 stores" in str(caught.value)


def test_fit_store_turns_an_exception_into_a_reason(synthetic_sales):
    frames = split_by_store(prophet_frame(synthetic_sales))
    split = time_split(frames, holdout_weeks=4, min_train_days=30).stores[1]
    split.train = split.train.drop(columns="y")
    outcome = factory_module.fit_store(1, split, ForecastConfig())
    assert outcome.model_json is None
    assert outcome.error.startswith("KeyError")


def test_short_history_is_warned_and_skipped(synthetic_sales):
    frames = split_by_store(prophet_frame(synthetic_sales))
    frames[3] = frames[3].tail(60)
    result = time_split(frames, holdout_weeks=4, min_train_days=180)
    assert sorted(result.stores) == [1, 2]
    assert 3 in result.skipped
    assert any(
        w.startswith("store 3: too little history") and "need 180" in w for w in result.warnings
    )
    cutoff = result.stores[1].cutoff
    assert result.stores[1].holdout["ds"].min() >= cutoff > result.stores[1].train["ds"].max()
    assert (result.stores[1].holdout["ds"].max() - cutoff).days == 27


def test_regressors_are_added_only_where_they_vary():
    train = pd.DataFrame(
        {
            "promo": [0, 1] * 50,
            "state_holiday": [0.0] * 100,
            "school_holiday": [1.0] * 3 + [0.0] * 97,
        }
    )
    assert select_regressors(train, ForecastConfig()) == ["promo"]
    assert select_regressors(train, ForecastConfig(regressor_policy="always")) == [
        "promo",
        "school_holiday",
    ]
    assert select_regressors(train, ForecastConfig(regressor_policy="never")) == []
    assert select_regressors(
        train, ForecastConfig(regressors=("school_holiday",), min_regressor_days=3)
    ) == ["school_holiday"]


def test_seasonal_naive_repeats_the_last_open_weekday():
    ds = pd.date_range("2015-07-01", "2015-07-14")  # Wed .. Tue
    train = pd.DataFrame({"ds": ds, "y": range(1, 15)}).query("ds.dt.dayofweek != 6")
    predicted = seasonal_naive(train, pd.Series(pd.date_range("2015-07-15", periods=8)))
    # Wed 15th -> Wed 8th (8); ... Sun 19th: never open -> mean of the last 7 rows.
    assert predicted[0] == 8 and predicted[1] == 9 and predicted[3] == 11
    assert predicted[4] == pytest.approx(train["y"].tail(7).mean())
    assert predicted[7] == 8  # next Wednesday again


def test_aggregate_metrics_definitions():
    per_store = {
        1: {"n": 1, "mape": 0.1, "sse": 100.0, "baseline_mape": 0.2, "baseline_sse": 400.0},
        2: {"n": 3, "mape": 0.3, "sse": 300.0, "baseline_mape": 0.2, "baseline_sse": 0.0},
    }
    metrics = aggregate_metrics(per_store)
    assert metrics["mean_mape"] == pytest.approx(0.2)
    assert metrics["pooled_rmse"] == pytest.approx(10.0)
    assert metrics["baseline_pooled_rmse"] == pytest.approx(10.0)
    assert metrics["share_better"] == 0.5


def test_config_round_trip_and_validation():
    config = ForecastConfig(regressors=["promo"], holdout_weeks=3)
    assert ForecastConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown \\['weather'\\]"):
        ForecastConfig(regressors=("weather",))
    with pytest.raises(ValueError, match="unknown field"):
        ForecastConfig.from_dict({"holdout_weeks": 2, "colour": "red"})


_real_fit_chunk = factory_module._fit_chunk


def _die_on_store_2(chunk, config):
    import os

    if any(store == 2 for store, _ in chunk):
        os._exit(1)  # a worker killed (OOM killer, segfault in a native library)
    return _real_fit_chunk(chunk, config)


def test_a_dead_worker_is_reported_per_store(synthetic_sales, monkeypatch):
    monkeypatch.setattr(factory_module, "_fit_chunk", _die_on_store_2)
    config = ForecastConfig(holdout_weeks=4, refit_full_history=False, max_failure_share=1.0)
    result = train_model_factory(synthetic_sales, config, n_jobs=2, backend="processes")
    assert 2 in result.failures
    assert result.failures[2].startswith("worker process failed: BrokenProcessPool")
