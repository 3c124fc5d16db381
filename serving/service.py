"""The BentoML service that serves one registered model: HTTP (JSON + v2 REST), v2 gRPC, the model router.

Run it with ``bentoml serve serving.service:ModelService`` (``modelfactory serve
<model>`` does that with the right environment). Which model it serves comes from
``MODELFACTORY_MODEL_NAME``; the registry from ``MLFLOW_TRACKING_URI``; serving
knobs from :class:`~modelfactory.inference.options.ServingOptions`.

Each worker process holds the champion and, when the alias exists, the
challenger, and polls the registry's rollout state
(:class:`~modelfactory.routing.ModelRouter`). BentoML provides the process
model (workers), ``/livez``, ``/healthz``, ``/readyz`` (ready once the champion
is loaded) and Prometheus ``/metrics``; the HTTP routes are a FastAPI app
(:mod:`serving.app`) mounted at "/" so every status code is ours; v2 gRPC runs
beside it in every worker on a shared port (:mod:`serving.grpc_server`).

BentoML writes an INFO access-log line per request; it is off unless
``MODELFACTORY_ACCESS_LOG=true`` (the same as BentoML configuration
``api_server.logging.access.enabled: false``).
"""

from __future__ import annotations

import logging

import bentoml

from modelfactory.config import get_settings
from modelfactory.inference.options import ServingOptions
from serving.app import build_api

log = logging.getLogger("modelfactory.serving")
settings = get_settings()
options = ServingOptions.from_env()

api = build_api(settings.model_name)


@bentoml.service(
    name="modelfactory-model",
    workers=settings.workers,
    traffic={"timeout": 30},
    logging={"access": {"enabled": options.access_log}},
)
@bentoml.asgi_app(api, path="/")
class ModelService:
    def __init__(self) -> None:
        from modelfactory.inference.endpoint import InferenceEndpoint
        from modelfactory.inference.metrics import ServingMetrics
        from modelfactory.prediction_log import PredictionLog

        metrics = ServingMetrics()  # now, after BentoML set up multiprocess metrics for this worker
        prediction_log = None
        if options.prediction_log:
            prediction_log = PredictionLog(
                settings.resolved_prediction_store_url,
                max_queue=options.prediction_queue_size,
                on_drop=lambda n, reason: metrics.log_dropped.labels(reason).inc(n),
                on_write=metrics.log_written.inc,
            ).start()
        router = registry_router(
            settings.model_name, options.rollout_poll_seconds, settings.model_alias
        )
        self.endpoint = InferenceEndpoint(router, options, metrics, prediction_log)
        router.start()  # loads what it can now, keeps polling (and retrying) in the background
        api.state.endpoint = self.endpoint
        self.grpc = None

    @bentoml.on_startup
    async def start_grpc(self) -> None:
        """v2 gRPC on this worker's event loop (the hook runs on it, after ``__init__``)."""
        if options.grpc_enabled:
            from serving.grpc_server import start_grpc_server

            self.grpc = await start_grpc_server(self.endpoint, settings.grpc_port, settings.http_host)

    def __is_ready__(self) -> bool:
        return self.endpoint.router.ready

    @bentoml.on_shutdown
    async def shutdown(self) -> None:
        if self.grpc is not None:
            await self.grpc.stop(grace=2)
        self.endpoint.router.stop()
        if self.endpoint.prediction_log is not None:
            self.endpoint.prediction_log.close()


def registry_router(model_name: str, poll_seconds: float, alias: str = "champion"):
    """A ModelRouter that reads the rollout from the MLflow registry and loads versions from it.

    Serving another alias than ``champion`` (``modelfactory serve --alias``) serves that version alone.
    """
    from modelfactory.inference.classifier import ServedClassifier
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
        load=lambda version: ServedClassifier.load(
            model_name, version=version, tracking_uri=registry.tracking_uri
        ),
        poll_seconds=poll_seconds,
    )
