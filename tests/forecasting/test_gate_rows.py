"""What the forecaster's gate compares on: each store's holdout forecast kept day by day, read
back beside its holdout rows, and the mean store MAPE over any subset of those store-days."""

import numpy as np
import pandas as pd
import pytest

from modelfactory.data.io import write_dataset
from modelfactory.forecasting.evaluation import (
    mape_difference_error,
    mean_store_mape,
    store_metrics,
)
from modelfactory.forecasting.features import split_by_store
from modelfactory.forecasting.steps import holdout_forecasts


def test_each_store_keeps_the_forecast_of_every_holdout_day_it_was_scored_on(synthetic_result):
    for outcome in synthetic_result.models.values():
        metrics = outcome.metrics
        assert len(metrics["yhat"]) == metrics["n"]  # synthetic stores sell on every open day
        assert all(isinstance(v, float) for v in metrics["yhat"])


def test_the_kept_forecast_gives_back_the_store_mape():
    y, yhat = np.array([100.0, 200.0, 0.0, 400.0]), np.array([110.0, 180.0, 5.0, 400.0])
    kept = store_metrics(y, yhat, np.full(4, 150.0))
    assert kept["yhat"] == [110.0, 180.0, 5.0, 400.0]
    assert mean_store_mape([1] * 4, y, kept["yhat"]) == (pytest.approx(kept["mape"]), 3)


def test_mean_store_mape_weighs_stores_alike_and_counts_negative_forecasts_as_zero():
    stores = [1, 1, 2]
    mape, days = mean_store_mape(stores, [100.0, 100.0, 10.0], [110.0, 90.0, -5.0])
    assert days == 3 and mape == pytest.approx((0.1 + 1.0) / 2)
    assert mean_store_mape([1], [0.0], [3.0]) == (pytest.approx(np.nan, nan_ok=True), 0)


def test_holdout_rows_are_read_back_with_their_store_forecasts(tmp_path):
    days = pd.date_range("2015-07-01", periods=3)
    holdout = pd.concat(
        [pd.DataFrame({"Store": store, "ds": days, "y": [1.0, 2.0, 3.0]}) for store in (1, 2, 3)]
    )
    write_dataset(holdout, str(tmp_path / "holdout"))
    per_store = {
        1: {"yhat": [1.5, 2.5, 3.5]},
        2: {"yhat": [9.0]},  # scored on another holdout: left out
        3: {"mape": 0.1},  # trained before forecasts were kept: left out
    }
    read_back = holdout_forecasts(str(tmp_path / "holdout"), per_store)
    assert read_back["Store"].tolist() == [1, 1, 1]
    assert read_back["yhat"].tolist() == [1.5, 2.5, 3.5]
    assert read_back["ds"].tolist() == list(split_by_store(holdout)[1]["ds"])


def test_the_noise_of_a_mape_difference_is_the_spread_of_the_stores_differences():
    stores = [1, 1, 2, 2, 3, 3]
    y = [100.0] * 6
    old = [100.0] * 6
    new = [110.0, 110.0, 120.0, 120.0, 130.0, 130.0]  # each store 0.1, 0.2, 0.3 worse
    assert mape_difference_error(stores, y, new, old) == pytest.approx(0.1 / np.sqrt(3))
    assert mape_difference_error([1, 1], [100.0, 100.0], [90.0, 90.0], [100.0, 100.0]) == 0.0
