"""What every model service runs in each BentoML worker, whatever the model it serves.

:class:`RegistryModelService` is the base of the BentoML services,
:class:`serving.service.ModelService` (the classifier) and
:class:`serving.forecast_service.ForecastService` (the store forecaster). A subclass
names the FastAPI app it mounts (``app``) and how to load one version of its model
(``load_version`` -> a :class:`~modelfactory.inference.served.ServedModel`); this base
wires, in every worker, the same parts for both:

- the :class:`~modelfactory.routing.ModelRouter` following the registry
  (:func:`registry_router`: champion and challenger aliases, ``rollout.*`` tags);
- the :class:`~modelfactory.inference.endpoint.InferenceEndpoint` (JSON, v2 REST and v2
  gRPC all go through it) with its Prometheus metrics and the prediction log;
- v2 gRPC on ``MODELFACTORY_GRPC_PORT`` (:mod:`serving.grpc_server`), on the worker's
  event loop;
- readiness (``/readyz``: the champion is loaded) and an orderly shutdown.

BentoML finds the startup and shutdown hooks and ``__is_ready__`` on the subclass by
inheritance.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

import bentoml

from modelfactory.config import get_settings
from modelfactory.inference.options import ServingOptions

if TYPE_CHECKING:
    from fastapi import FastAPI

    from modelfactory.inference.served import ServedModel
    from modelfactory.routing import ModelRouter

log = logging.getLogger("modelfactory.serving")


class VersionLoader(Protocol):
    def __call__(self, name: str, version: str, tracking_uri: str) -> ServedModel: ...


class RegistryModelService:
    """Subclasses set ``app`` and ``model_name`` and implement ``load_version``."""

    app: FastAPI  # the HTTP routes, mounted at "/"; they read ``app.state.endpoint``
    model_name: str
    # Predictions that may stall an event loop (cold Prophet forecasts) run in worker threads.
    blocking_predictions: bool = False

    def load_version(self, name: str, version: str, tracking_uri: str) -> ServedModel:
        raise NotImplementedError

    def __init__(self) -> None:
        # Imported now, not at module import: BentoML sets up multiprocess Prometheus metrics
        # for this worker after importing the service module, and only metrics made afterwards
        # reach /metrics.
        from modelfactory.inference.endpoint import InferenceEndpoint
        from modelfactory.inference.metrics import ServingMetrics
        from modelfactory.prediction_log import PredictionLog

        settings, options = get_settings(), ServingOptions.from_env()
        self.settings, self.options = settings, options
        metrics = ServingMetrics()
        prediction_log = None
        if options.prediction_log:
            prediction_log = PredictionLog(
                settings.resolved_prediction_store_url,
                max_queue=options.prediction_queue_size,
                on_drop=lambda n, reason: metrics.log_dropped.labels(reason).inc(n),
                on_write=metrics.log_written.inc,
            ).start()
        router = registry_router(
            self.model_name, self.load_version, options.rollout_poll_seconds, settings.model_alias
        )
        self.endpoint = InferenceEndpoint(
            router, options, metrics, prediction_log, blocking_predictions=self.blocking_predictions
        )
        router.start()  # loads what it can now, keeps polling (and retrying) in the background
        self.app.state.endpoint = self.endpoint
        self.grpc = None

    @bentoml.on_startup
    async def start_grpc(self) -> None:
        """v2 gRPC on this worker's event loop (the hook runs on it, after ``__init__``)."""
        if self.options.grpc_enabled:
            from serving.grpc_server import start_grpc_server

            self.grpc = await start_grpc_server(
                self.endpoint, self.settings.grpc_port, self.settings.http_host
            )

    def __is_ready__(self) -> bool:
        return self.endpoint.router.ready

    @bentoml.on_shutdown
    async def shutdown(self) -> None:
        if self.grpc is not None:
            await self.grpc.stop(grace=2)
        self.endpoint.router.stop()
        if self.endpoint.prediction_log is not None:
            self.endpoint.prediction_log.close()


def registry_router(
    model_name: str, load: VersionLoader, poll_seconds: float, alias: str = "champion"
) -> ModelRouter:
    """A ModelRouter that reads the rollout from the MLflow registry and loads versions by ``load``.

    ``load(name=..., version=..., tracking_uri=...)`` returns the served model of one version.
    Serving another alias than ``champion`` (``modelfactory serve --alias``) serves that
    version alone.
    """
    from modelfactory.registry import Registry
    from modelfactory.routing import CHAMPION, ModelRouter, RolloutState, read_rollout

    registry = Registry()

    def read_state() -> RolloutState:
        if alias == CHAMPION:
            return read_rollout(registry, model_name)
        found = registry.version_by_alias(model_name, alias)
        return RolloutState(champion=str(found.version) if found else None)

    return ModelRouter(
        model_name,
        read_state=read_state,
        load=lambda version: load(
            name=model_name, version=version, tracking_uri=registry.tracking_uri
        ),
        poll_seconds=poll_seconds,
    )
