"""What one serving worker runs for one registered model, built from the settings.

The BentoML service (``serving/service.py``) is a thin shell over
:class:`ServingRuntime`: it makes one per worker process for the use case it serves (the
adapter chooses it; serving never reads the list of use cases), points its HTTP app at
the runtime's endpoint and calls :meth:`ServingRuntime.start_servers` and
:meth:`ServingRuntime.stop` from its lifecycle hooks. The runtime wires, the
same for every use case:

- the :class:`~modelfactory.inference.router.ModelRouter` following the registry
  (:func:`registry_router`: champion and challenger aliases, ``rollout.*`` tags);
- the :class:`~modelfactory.inference.endpoint.InferenceEndpoint` (JSON, v2 REST
  and v2 gRPC all go through it) with its Prometheus metrics and the prediction log;
- v2 gRPC on ``MODELFACTORY_GRPC_PORT`` and Prometheus ``/metrics`` on
  ``MODELFACTORY_METRICS_PORT``, on the worker's event loop.

Build it in the worker after BentoML has set up multiprocess Prometheus metrics:
only metrics made afterwards reach ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from modelfactory.config import Settings
from modelfactory.inference.endpoint import InferenceEndpoint
from modelfactory.inference.metrics import ServingMetrics
from modelfactory.inference.protocol.grpc_transport import UnaryServer
from modelfactory.inference.router import ModelRouter
from modelfactory.inference.served import ServedModel
from modelfactory.predictions.writer import PredictionLog
from modelfactory.registry import CHAMPION, Registry
from modelfactory.rollout import RolloutState, read_rollout
from modelfactory.use_case import UseCase

log = logging.getLogger("modelfactory.serving")


class ServingRuntime:
    def __init__(self, settings: Settings, use_case: UseCase):
        if use_case.serving is None:
            raise ValueError(f"the {use_case.name} use case has no model to serve")
        serving, spec = settings.serving, use_case.serving
        self.settings = settings
        metrics = ServingMetrics()
        prediction_log = None
        if settings.predictions.log:
            prediction_log = PredictionLog(
                settings.prediction_store_url,
                max_queue=settings.predictions.queue_size,
                on_drop=lambda n, reason: metrics.log_dropped.labels(reason).inc(n),
                on_write=metrics.log_written.inc,
                spool_dir=settings.prediction_spool_dir,
                spool_max_bytes=settings.predictions.spool_max_mb << 20,
                spool_fsync=settings.predictions.spool_fsync,
                on_spool=metrics.spooled,
            ).start()
        router = registry_router(
            serving.model_name,
            lambda name, version, uri: spec.load(name, version, uri, settings),
            serving.rollout_poll_seconds,
            serving.model_alias,
        )
        self.endpoint = InferenceEndpoint(
            router,
            serving,
            metrics,
            prediction_log,
            blocking_predictions=spec.blocking_predictions,
            check_actual=use_case.monitoring.check_actual if use_case.monitoring else None,
            max_feedback_items=settings.monitoring.max_feedback_items,
        )
        self.grpc: UnaryServer | None = None
        self.metrics_server: asyncio.Server | None = None
        router.start()  # loads what it can now, keeps polling (and retrying) in the background

    @property
    def ready(self) -> bool:
        return self.endpoint.router.ready

    async def start_servers(self) -> None:
        """v2 gRPC and the metrics port on the running event loop (the worker's), when enabled."""
        serving = self.settings.serving
        if serving.grpc_enabled:
            from modelfactory.inference.protocol.grpc_service import start_grpc_server

            self.grpc = await start_grpc_server(self.endpoint, serving.grpc_port, serving.http_host)
        if serving.metrics_port:
            from modelfactory.inference.protocol.metrics_http import start_metrics_server

            self.metrics_server = await start_metrics_server(
                serving.metrics_port, serving.http_host
            )

    async def stop(self) -> None:
        if self.grpc is not None:
            await self.grpc.stop(grace=2)
        if self.metrics_server is not None:
            self.metrics_server.close()
        self.endpoint.close()


def registry_router(
    model_name: str,
    load: Callable[[str, str, str], ServedModel],
    poll_seconds: float,
    alias: str = CHAMPION,
) -> ModelRouter:
    """A ModelRouter that reads the rollout from the MLflow registry and loads versions by ``load``.

    ``load(name, version, tracking_uri)`` returns the served model of one version. Serving
    another alias than ``champion`` (``modelfactory serve --alias``) serves that version alone.
    """
    registry = Registry()

    def read_state() -> RolloutState:
        if alias == CHAMPION:
            return read_rollout(registry, model_name)
        found = registry.version_by_alias(model_name, alias)
        return RolloutState(champion=str(found.version) if found else None)

    return ModelRouter(
        model_name,
        read_state=read_state,
        load=lambda version: load(model_name, version, registry.tracking_uri),
        poll_seconds=poll_seconds,
    )
