"""The BentoML service that serves one registered model's champion over HTTP.

Run it with ``bentoml serve serving.service:ModelService`` (``modelfactory serve
<model>`` does that with the right environment). Which model it serves comes from
``MODELFACTORY_MODEL_NAME`` / ``MODELFACTORY_MODEL_ALIAS``; the registry from
``MLFLOW_TRACKING_URI``. BentoML provides the process model (workers), ``/livez``,
``/healthz``, ``/readyz`` (ready once the model is loaded) and Prometheus
``/metrics``; the JSON routes are a FastAPI app mounted into the service so that
every status code is ours: 422 naming the fields for bad input, never a 500.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import bentoml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from modelfactory import __version__
from modelfactory.config import get_settings
from modelfactory.inference.classifier import ServedClassifier
from modelfactory.inference.schema import InvalidInput

log = logging.getLogger("modelfactory.serving")
settings = get_settings()
MAX_RECORDS = 1000
RETRY_LOAD_SECONDS = 10

api = FastAPI(title="modelfactory model API", version=__version__,
              description=f"Predictions of the champion of registered model '{settings.model_name}'.")

PREDICTIONS = bentoml.metrics.Counter(
    name="modelfactory_predictions_total", documentation="Records predicted, by model version and class.",
    labelnames=["model", "version", "predicted_class"])
REQUEST_LATENCY = bentoml.metrics.Histogram(
    name="modelfactory_predict_latency_seconds", documentation="Time to check and predict one request.",
    labelnames=["model", "version"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0))
REJECTED = bentoml.metrics.Counter(
    name="modelfactory_rejected_requests_total", documentation="Requests refused, by reason.",
    labelnames=["model", "reason"])
PROBABILITY = bentoml.metrics.Histogram(
    name="modelfactory_predicted_probability", documentation="Distribution of positive-class probabilities.",
    labelnames=["model", "version"], buckets=tuple(i / 10 for i in range(1, 11)))


def _error(status: int, message: str, problems: list[str] | None = None, reason: str = "invalid") -> JSONResponse:
    REJECTED.labels(model=settings.model_name, reason=reason).inc()
    body = {"error": message}
    if problems is not None:
        body["problems"] = problems
    return JSONResponse(body, status_code=status)


@bentoml.service(name="modelfactory-model", workers=settings.workers, traffic={"timeout": 30})
@bentoml.asgi_app(api, path="/")
class ModelService:
    def __init__(self) -> None:
        self.model: ServedClassifier | None = None
        api.state.service = self
        if not self._try_load():
            threading.Thread(target=self._keep_trying, daemon=True, name="model-loader").start()

    def _try_load(self) -> bool:
        try:
            self.model = ServedClassifier.load(settings.model_name, settings.model_alias)
            return True
        except Exception as exc:  # registry down or no champion yet: stay up, not ready, and retry
            log.warning("model %s@%s not loaded yet: %s", settings.model_name, settings.model_alias, exc)
            return False

    def _keep_trying(self) -> None:
        while not self._try_load():
            time.sleep(RETRY_LOAD_SECONDS)

    def __is_ready__(self) -> bool:
        return self.model is not None


@api.post("/predict", summary="Predict the class and probability of each record",
          openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
              "type": "object", "required": ["records"],
              "properties": {"records": {"type": "array", "items": {"type": "object"}, "minItems": 1}}}}}}})
async def predict(request: Request) -> JSONResponse:
    model: ServedClassifier | None = request.app.state.service.model
    if model is None:
        return _error(503, f"no '{settings.model_alias}' version of {settings.model_name} is loaded yet",
                      reason="not_ready")
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _error(400, f"the request body is not valid JSON: {exc}", reason="malformed")
    if not isinstance(body, dict) or "records" not in body:
        return _error(422, 'expected a JSON object {"records": [{...}, ...]}',
                      [f"records: missing; each record needs {', '.join(model.schema.names)}"])
    started = time.perf_counter()
    try:
        if model.compiled is not None:
            predictions = model.predict(body["records"], MAX_RECORDS)
        else:  # the slow path must not stall the event loop
            predictions = await run_in_threadpool(model.predict, body["records"], MAX_RECORDS)
    except InvalidInput as exc:
        return _error(422, "the records do not match the model's input schema", exc.problems)
    REQUEST_LATENCY.labels(model=model.name, version=model.version).observe(time.perf_counter() - started)
    for prediction in predictions:
        PREDICTIONS.labels(model=model.name, version=model.version,
                           predicted_class=prediction["class"]).inc()
        PROBABILITY.labels(model=model.name, version=model.version).observe(prediction["probability"])
    return JSONResponse({"model": model.name, "model_version": model.version, "predictions": predictions},
                        headers={"x-model-version": model.version})


@api.get("/model", summary="The served model: name, version, input fields and serving path")
async def describe(request: Request) -> JSONResponse:
    model: ServedClassifier | None = request.app.state.service.model
    if model is None:
        return _error(503, "no model loaded yet", reason="not_ready")
    return JSONResponse({
        "name": model.name, "version": model.version, "alias": settings.model_alias, "run_id": model.run_id,
        "inputs": [{"name": f.name, "type": f.kind} for f in model.schema.fields],
        "labels": list(model.labels), "threshold": model.threshold, **model.info,
    })
