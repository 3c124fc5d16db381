"""Forecasting use case: one Prophet model per store (a "model factory"), evaluated
against a seasonal-naive baseline, saved as a lazily loadable model set, served with a
bounded forecast cache.

``FORECASTING`` describes the use case. The flow (what the KFP components and the forecast
API call)::

    from modelfactory.data.rossmann import load_rossmann
    from modelfactory.forecasting.config import ForecastConfig
    from modelfactory.forecasting.factory import train_model_factory
    from modelfactory.forecasting.model_set import forecast, load_store_model, save_model_set

    sales = load_rossmann("train.csv.gz", stores=[1, 2, 3])
    result = train_model_factory(sales, ForecastConfig(holdout_weeks=6))
    save_model_set("out/model_set", result)
    frame = forecast(load_store_model("out/model_set", 1), horizon_days=42)
"""

from modelfactory.data import rossmann
from modelfactory.promotion import GateMetric
from modelfactory.use_case import (
    BatchSpec,
    DataFormat,
    LoggedColumn,
    MonitoringSpec,
    ServingSpec,
    UseCase,
    lazy,
)


def _load_forecaster(name: str, version: str, tracking_uri: str, settings):
    from modelfactory.forecasting.served import ServedForecaster

    return ServedForecaster.load(
        name,
        version,
        tracking_uri,
        max_models=settings.forecast_cache.models,
        max_forecast_bytes=settings.forecast_cache.mb * 1024 * 1024,
    )


def _load_batch(name: str, version: str, tracking_uri: str, options: dict):
    from modelfactory.forecasting.batch import BatchForecaster

    return BatchForecaster.load(name, version, tracking_uri, int(options.get("horizon_days", 42)))


MONITORS = "modelfactory.forecasting.monitoring"
MONITORING = MonitoringSpec(
    logged=(
        LoggedColumn("store", "features", "number"),
        LoggedColumn("horizon_days", "features", "number"),
        LoggedColumn("ds", "output", "json"),
        LoggedColumn("yhat", "output", "json"),
        LoggedColumn("open", "output", "json"),
    ),
    numeric=("yhat",),
    categorical=(),
    outputs=("yhat",),
    check_actual=lazy(MONITORS, "check_actual"),
    reference=lazy(MONITORS, "reference_rows"),
    performance=lazy(MONITORS, "performance"),
    compared=lazy(MONITORS, "forecast_days"),
    output_test=("wasserstein", 0.3),  # forecasting.monitoring.OUTPUT_TEST (ADR 0008)
)

FORECASTING = UseCase(
    name="forecasting",
    model_name="store-sales",
    data=DataFormat(
        load=rossmann.load_sales,
        validate=rossmann.validate_sales,
        generate=rossmann.generate_sales,
        write=rossmann.write_sales,
        file_name="train.csv",
    ),
    synthetic_rows=5_000,  # about 5 stores of daily sales
    # Judged on 30 store-days at least; 0.01 worse on the champion's holdout is noise (ADR 0014).
    gate_metric=GateMetric("mape", higher_is_better=False, min_rows=30, tolerance=0.01),
    serving=ServingSpec(
        load=_load_forecaster,
        build_api=lazy("modelfactory.forecasting.rest", "build_forecast_api"),
        route="POST /forecast",
        blocking_predictions=True,  # a cold forecast runs Prophet: 100 ms and more
        timeout_seconds=60,
    ),
    batch=BatchSpec(load=_load_batch),
    monitoring=MONITORING,
)
