"""Forecasting use case: one Prophet model per store (a "model factory"), evaluated
against a seasonal-naive baseline, saved as a lazily loadable model set, served with a
bounded forecast cache.

Typical flow (what the KFP components and the forecast API call)::

    from modelfactory.data.rossmann import load_rossmann
    from modelfactory.forecasting import (
        ForecastConfig, train_model_factory, save_model_set, load_store_model, forecast,
    )

    sales = load_rossmann("train.csv.gz", stores=[1, 2, 3])
    result = train_model_factory(sales, ForecastConfig(holdout_weeks=6))
    save_model_set("out/model_set", result)
    frame = forecast(load_store_model("out/model_set", 1), horizon_days=42)
"""

from modelfactory.forecasting.cache import ForecastCache, LRUCache
from modelfactory.forecasting.config import ForecastConfig
from modelfactory.forecasting.evaluation import aggregate_metrics, seasonal_naive
from modelfactory.forecasting.factory import (
    FactoryError,
    FactoryResult,
    StoreOutcome,
    train_model_factory,
)
from modelfactory.forecasting.model_set import (
    ModelSetError,
    StoreModel,
    forecast,
    list_stores,
    load_store_model,
    read_manifest,
    save_model_set,
)

__all__ = [
    "FactoryError",
    "FactoryResult",
    "ForecastCache",
    "ForecastConfig",
    "LRUCache",
    "ModelSetError",
    "StoreModel",
    "StoreOutcome",
    "aggregate_metrics",
    "forecast",
    "list_stores",
    "load_store_model",
    "read_manifest",
    "save_model_set",
    "seasonal_naive",
    "train_model_factory",
]
