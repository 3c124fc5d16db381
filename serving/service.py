"""The BentoML service that serves one registered classifier: HTTP (JSON + v2 REST), v2 gRPC, the model router.

Run it with ``bentoml serve serving.service:ModelService`` (``modelfactory serve
<model>`` does that with the right environment). Which model it serves comes from
``MODELFACTORY_MODEL_NAME``; the registry from ``MLFLOW_TRACKING_URI``; serving
knobs from :class:`~modelfactory.inference.options.ServingOptions`.

Each worker process holds the champion and, when the alias exists, the
challenger, and polls the registry's rollout state
(:class:`~modelfactory.routing.ModelRouter`); the wiring (router, endpoint,
metrics, prediction log, v2 gRPC on a shared port) is
:class:`serving.registry_service.RegistryModelService`, the same for every model
service. BentoML provides the process model (workers), ``/livez``, ``/healthz``,
``/readyz`` (ready once the champion is loaded) and Prometheus ``/metrics``; the
HTTP routes are a FastAPI app (:mod:`serving.app`) mounted at "/" so every status
code is ours.

BentoML writes an INFO access-log line per request; it is off unless
``MODELFACTORY_ACCESS_LOG=true`` (the same as BentoML configuration
``api_server.logging.access.enabled: false``).
"""

from __future__ import annotations

import bentoml

from modelfactory.config import get_settings
from modelfactory.inference.options import ServingOptions
from serving.app import build_api
from serving.registry_service import RegistryModelService

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
class ModelService(RegistryModelService):
    app = api
    model_name = settings.model_name

    def load_version(self, name: str, version: str, tracking_uri: str):
        from modelfactory.inference.classifier import ServedClassifier

        return ServedClassifier.load(name, version=version, tracking_uri=tracking_uri)
