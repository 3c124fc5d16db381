"""The BentoML service of one registered model: HTTP (JSON + v2 REST), v2 gRPC, the model router.

``python -m modelfactory_serving`` (the serving image's command, and what ``modelfactory
serve`` runs) serves it as ``bentoml serve modelfactory_serving.service:ModelService``.
Which model comes from ``MODELFACTORY_MODEL_NAME``, and the use case that serves it (its
served model, HTTP routes, timeout) from :func:`modelfactory.use_cases.served_use_case`;
the registry from ``MLFLOW_TRACKING_URI``; every other knob from
:class:`modelfactory.config.Settings`.

A thin shell: each worker process makes a :class:`~modelfactory.inference.runtime.ServingRuntime`
(router, endpoint, metrics, prediction log, v2 gRPC) and BentoML provides the process
model (workers), ``/livez``, ``/healthz``, ``/readyz`` (ready once the champion is loaded);
Prometheus ``/metrics`` is on ``MODELFACTORY_METRICS_PORT``. The HTTP routes are a FastAPI app
mounted at "/" so every status code is ours. BentoML's per-request access-log line is off unless
``MODELFACTORY_ACCESS_LOG=true``.
"""

from __future__ import annotations

import bentoml

from modelfactory.config import get_settings
from modelfactory.use_cases import served_use_case

settings = get_settings()
case = served_use_case(settings.serving.model_name, settings.serving.use_case)
spec = case.serving
assert spec is not None  # served_use_case only answers use cases that serve
api = spec.build_api(settings.serving.model_name)


@bentoml.service(
    name=f"modelfactory-{case.name}",
    workers=settings.serving.workers,
    traffic={"timeout": spec.timeout_seconds},
    logging={"access": {"enabled": settings.serving.access_log}},
    # /metrics is served on MODELFACTORY_METRICS_PORT instead, where a NetworkPolicy can keep
    # it to the operator while clients reach the prediction port.
    metrics={"enabled": False},
)
@bentoml.asgi_app(api, path="/")
class ModelService:
    def __init__(self) -> None:
        # Made here, in the worker, after BentoML set up multiprocess Prometheus metrics.
        from modelfactory.inference.runtime import ServingRuntime

        self.runtime = ServingRuntime(settings, use_case=case)
        api.state.endpoint = self.runtime.endpoint

    @bentoml.on_startup
    async def start_servers(self) -> None:
        """v2 gRPC and the metrics port on this worker's event loop (the hook runs on it)."""
        await self.runtime.start_servers()

    def __is_ready__(self) -> bool:
        return self.runtime.ready

    @bentoml.on_shutdown
    async def shutdown(self) -> None:
        await self.runtime.stop()
