"""The BentoML service of a forecasting model set (ForecastService): one Prophet model per store.

Run it with ``bentoml serve serving.forecast_service:ForecastService`` (``modelfactory
serve store-sales`` does). It serves like the classifier service, through the same
wiring (:class:`serving.registry_service.RegistryModelService`): the Open Inference
Protocol v2 over REST (``/v2/...``) and gRPC (``MODELFACTORY_GRPC_PORT``), JSON
``/predict`` and ``/model``, the model router (champion and challenger from the
registry's aliases and ``rollout.*`` tags: canary, shadow, ``x-model-version``, fallback
to the champion), per-version ``/metrics`` and the prediction log; plus ``POST
/forecast`` (:mod:`serving.forecast_app`). Each version is a
:class:`~modelfactory.forecasting.served.ServedForecaster`.

Which registered model set it serves comes from ``MODELFACTORY_MODEL_NAME`` (default
``store-sales``), the registry from ``MLFLOW_TRACKING_URI``; the rollout state is polled
every ``MODELFACTORY_ROLLOUT_POLL_SECONDS`` (default 5), and a version that stops
serving takes its caches with it. ``MODELFACTORY_FORECAST_CACHE_MODELS`` (default 32)
bounds the loaded store models and ``MODELFACTORY_FORECAST_CACHE_MB`` (default 64) the
cached forecasts, per version and worker (the champion and a challenger each have their
own). ``/readyz`` answers 200 once a champion is loaded.
"""

from __future__ import annotations

import os

import bentoml

from modelfactory.config import get_settings
from modelfactory.inference.options import ServingOptions
from serving.forecast_app import build_forecast_api
from serving.registry_service import RegistryModelService

settings = get_settings()
options = ServingOptions.from_env()
MODEL_NAME = os.environ.get("MODELFACTORY_MODEL_NAME") or "store-sales"
CACHE_MODELS = int(os.environ.get("MODELFACTORY_FORECAST_CACHE_MODELS", "32"))
CACHE_MB = int(os.environ.get("MODELFACTORY_FORECAST_CACHE_MB", "64"))

api = build_forecast_api(MODEL_NAME)


@bentoml.service(
    name="modelfactory-forecast",
    workers=settings.workers,
    traffic={"timeout": 60},
    logging={"access": {"enabled": options.access_log}},
)
@bentoml.asgi_app(api, path="/")
class ForecastService(RegistryModelService):
    app = api
    model_name = MODEL_NAME
    blocking_predictions = True  # a cold forecast runs Prophet: 100 ms and more

    def load_version(self, name: str, version: str, tracking_uri: str):
        from modelfactory.forecasting.served import ServedForecaster

        return ServedForecaster.load(
            name,
            version,
            tracking_uri,
            max_models=CACHE_MODELS,
            max_forecast_bytes=CACHE_MB * 1024 * 1024,
        )
