"""The BentoML service for the forecast API: ``bentoml serve serving.forecast_service:ForecastService``.

Which registered model set it serves comes from ``MODELFACTORY_MODEL_NAME`` (default
``store-sales``), the registry from ``MLFLOW_TRACKING_URI``; it follows the champion
alias every ``MODELFACTORY_FORECAST_POLL_SECONDS`` (default 5) and empties its caches
when the champion changes. ``MODELFACTORY_FORECAST_CACHE_MODELS`` (default 32) bounds the
loaded store models and ``MODELFACTORY_FORECAST_CACHE_MB`` (default 64) the cached
forecasts, per worker. ``/readyz`` answers 200 once a champion is loaded. The routes are
the FastAPI app of :mod:`serving.forecast_app`, mounted at "/".
"""

from __future__ import annotations

import os

import bentoml

from modelfactory.config import get_settings
from serving.forecast_app import build_forecast_api

settings = get_settings()
MODEL_NAME = os.environ.get("MODELFACTORY_MODEL_NAME") or "store-sales"
POLL_SECONDS = float(os.environ.get("MODELFACTORY_FORECAST_POLL_SECONDS", "5"))
CACHE_MODELS = int(os.environ.get("MODELFACTORY_FORECAST_CACHE_MODELS", "32"))
CACHE_MB = int(os.environ.get("MODELFACTORY_FORECAST_CACHE_MB", "64"))

api = build_forecast_api(MODEL_NAME)


@bentoml.service(
    name="modelfactory-forecast",
    workers=settings.workers,
    traffic={"timeout": 60},
    logging={"access": {"enabled": os.environ.get("MODELFACTORY_ACCESS_LOG", "").lower() == "true"}},
)
@bentoml.asgi_app(api, path="/")
class ForecastService:
    def __init__(self) -> None:
        from modelfactory.forecasting.champion import registry_forecaster

        self.forecaster = registry_forecaster(
            MODEL_NAME, poll_seconds=POLL_SECONDS, alias=settings.model_alias, max_models=CACHE_MODELS,
            max_forecast_bytes=CACHE_MB * 1024 * 1024).start()
        api.state.forecaster = self.forecaster

    def __is_ready__(self) -> bool:
        return self.forecaster.ready

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        self.forecaster.stop()
