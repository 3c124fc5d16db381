"""The forecaster's prediction drift on a real model set (3 synthetic stores, Prophet): forecast
days are the compared rows, each set against the same store's sales on the same weekday a year
before; honest forecasts do not drift, forecasts 10% off do."""

from __future__ import annotations

import pandas as pd
import pytest

from modelfactory.forecasting.features import prophet_frame
from modelfactory.forecasting.model_set import forecast
from modelfactory.forecasting.monitoring import forecast_days, reference_rows
from modelfactory.forecasting.served import as_prediction
from modelfactory.monitoring.drift import ColumnTest, DriftSettings, drift_report
from modelfactory.monitoring.reference import Reference
from modelfactory.use_cases import FORECASTING

REQUESTS = [(1, 42), (2, 42), (2, 14), (3, 7), (2, 28)] * 4


@pytest.fixture(scope="module")
def logged(model_set):
    """A window of logged forecast requests as the window reader decodes them (JSON lists)."""
    rows = []
    for store, horizon in REQUESTS:
        prediction = as_prediction(forecast(model_set.store_model(store), horizon))
        rows.append(
            {
                "store": float(store),
                "horizon_days": float(horizon),
                **{name: list(prediction[name]) for name in ("ds", "yhat", "open")},
            }
        )
    return pd.DataFrame(rows)


def test_one_compared_row_per_open_forecast_day(logged):
    days = forecast_days(logged)
    opened = sum(sum(row) for row in logged["open"])
    assert len(days) == opened and set(days["store"]) == {1.0, 2.0, 3.0}
    assert days["yhat"].notna().all()


def test_the_reference_is_each_forecast_days_sales_a_year_before(logged, synthetic_sales):
    training = prophet_frame(synthetic_sales)
    reference = reference_rows(Reference(training, logged, None))
    days = forecast_days(logged)
    assert len(reference) == len(days)  # the history covers the year before every forecast day
    assert reference["store"].tolist() == days["store"].tolist()  # same stores, same proportions
    first = days.iloc[0]
    year_before = pd.Timestamp(first["ds"]) - pd.Timedelta(days=364)
    sold = training.loc[
        (training["Store"] == first["store"]) & (training["ds"] == year_before), "y"
    ]
    assert reference["yhat"].iloc[0] == sold.item()


@pytest.mark.parametrize(("factor", "drifts"), [(1.0, False), (0.9, True), (1.1, True)])
def test_honest_forecasts_do_not_drift_and_forecasts_10_percent_off_do(
    logged, synthetic_sales, factor, drifts
):
    reference = reference_rows(Reference(prophet_frame(synthetic_sales), logged, None))
    changed = logged.assign(yhat=[[v * factor for v in row] for row in logged["yhat"]])
    method, threshold = FORECASTING.monitoring.output_test
    settings = DriftSettings(outputs=ColumnTest(method=method, threshold=threshold))
    report = drift_report(reference, forecast_days(changed), ("yhat",), (), ("yhat",), settings)
    assert (report.drifted_outputs == ["yhat"]) == drifts, report.as_dict()
