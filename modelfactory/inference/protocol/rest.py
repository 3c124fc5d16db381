"""The HTTP API of a model service: plain JSON routes and the Open Inference Protocol v2 REST
routes.

A FastAPI app mounted into the BentoML service at "/" (so every status code is
ours), and usable on its own in tests. :class:`RestRoutes` holds the handlers, a
few lines each over the :class:`~modelfactory.inference.endpoint.InferenceEndpoint`
found at ``app.state.endpoint`` (the one place for the token, model, version and
readiness checks); :func:`route_table` lists the routes, each with its OpenAPI document
(:mod:`~modelfactory.inference.protocol.openapi`), and :func:`build_api` makes the app of
them. Handlers raise, and the
exception handlers of :func:`install_error_handlers` turn what they raise into
status codes in one place: 422 invalid input (naming the field or input), 404 unknown
model or version (or a record naming something the model does not have, such as a
store without a forecast model, or a feedback request id the log does not hold), 413 too
large, 401 missing token, 503 not ready. ``POST /feedback`` takes ground truth for logged
predictions by their ``x-request-id``, which every answer carries (generated when the caller
sent none). The forecast service adds ``POST /forecast`` (:mod:`modelfactory.forecasting.rest`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from modelfactory import __version__
from modelfactory.inference.endpoint import InferenceEndpoint
from modelfactory.inference.protocol import openapi
from modelfactory.inference.protocol.headers import (
    AUTHORIZATION,
    MODEL_VERSION,
    REQUEST_ID,
    REQUEST_KEY,
)
from modelfactory.inference.protocol.v2 import (
    BINARY_HEADER,
    V2Error,
    json_response,
    model_metadata,
    parse_http_body,
)
from modelfactory.inference.schema import InputNotFound, InvalidInput


def error_response(
    status: int, message: str, problems: list[str] | None = None, **extra
) -> JSONResponse:
    body: dict = {"error": message, **extra}
    if problems:
        body["problems"] = problems
    return JSONResponse(body, status_code=status)


def install_error_handlers(api: FastAPI, protocol: str = "json") -> None:
    """Every refusal a handler raises becomes its status code here, and nowhere else."""

    async def refused(request: Request, exc: V2Error) -> JSONResponse:
        message = exc.detail() if exc.kind == "invalid" else exc.message
        return error_response(exc.http_status, message, exc.problems or None)

    async def not_found(request: Request, exc: InputNotFound) -> JSONResponse:
        return error_response(404, str(exc), **getattr(exc, "details", {}))

    async def invalid(request: Request, exc: InvalidInput) -> JSONResponse:
        return error_response(
            422, "the records do not match the model's input schema", exc.problems
        )

    async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        endpoint = getattr(request.app.state, "endpoint", None)
        if endpoint is not None:
            endpoint.refuse("invalid", protocol)
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"] if p != "body") or "body"
            problems.append(f"{where}: {error['msg']} (got {error.get('input')!r})")
        return error_response(422, "invalid request", problems)

    api.add_exception_handler(V2Error, refused)  # type: ignore[arg-type]
    api.add_exception_handler(InputNotFound, not_found)  # type: ignore[arg-type]
    api.add_exception_handler(InvalidInput, invalid)  # type: ignore[arg-type]
    api.add_exception_handler(RequestValidationError, invalid_body)  # type: ignore[arg-type]


def endpoint_of(request: Request, model_name: str) -> InferenceEndpoint:
    endpoint = getattr(request.app.state, "endpoint", None)
    if endpoint is None:
        raise V2Error("unavailable", f"the {model_name} service is starting")
    return endpoint


async def read_body(request: Request, endpoint: InferenceEndpoint, protocol: str) -> bytes:
    """The body, after the token and size checks."""
    endpoint.authorize(request.headers.get(AUTHORIZATION), protocol)
    limit = endpoint.options.max_request_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        endpoint.refuse("too_large", protocol)
        raise V2Error(
            "too_large", f"request body of {declared} bytes is over the limit of {limit} bytes"
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            endpoint.refuse("too_large", protocol)
            raise V2Error("too_large", f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def predicting(endpoint: InferenceEndpoint, records, method, *args, **kwargs):
    """``method(*args, **kwargs)`` (``endpoint.predict`` or ``infer``) for ``records`` (None when
    not parsed yet): inline, or in a worker thread when it may block the event loop."""
    if endpoint.would_block(records):
        return await run_in_threadpool(method, *args, **kwargs)
    return method(*args, **kwargs)


def request_id_of(request: Request) -> str:
    """The caller's x-request-id, or a new one: every answer names its logged prediction."""
    return request.headers.get(REQUEST_ID) or uuid.uuid4().hex


def json_body(raw: bytes, endpoint: InferenceEndpoint, protocol: str = "json"):
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        endpoint.refuse("invalid", protocol)
        raise V2Error("invalid", f"the request body is not valid JSON: {exc}") from None


def routing_headers(request: Request) -> dict:
    """The endpoint's routing arguments from the request headers."""
    return {
        "explicit_version": request.headers.get(MODEL_VERSION) or None,
        "request_key": request.headers.get(REQUEST_KEY) or None,
    }


class RestRoutes:
    """The handlers of one model's HTTP API; each reads the endpoint at ``app.state.endpoint``."""

    def __init__(self, model_name: str):
        self.model_name = model_name

    async def predict(self, request: Request) -> Response:
        endpoint = endpoint_of(request, self.model_name)
        body = json_body(await read_body(request, endpoint, "json"), endpoint)
        if not isinstance(body, dict) or "records" not in body:
            endpoint.refuse("invalid", "json")
            raise V2Error(
                "invalid", 'expected a JSON object {"records": [{...}, ...]}', ["records: missing"]
            )
        request_id = request_id_of(request)
        routed = await predicting(
            endpoint,
            body["records"],
            endpoint.predict,
            body["records"],
            protocol="json",
            request_id=request_id,
            **routing_headers(request),
        )
        model = routed.model
        headers = {MODEL_VERSION: model.version, REQUEST_ID: request_id}
        return JSONResponse(
            {
                "model": model.name,
                "model_version": model.version,
                "predictions": routed.predictions,
            },
            headers=headers,
        )

    async def feedback(self, request: Request) -> Response:
        endpoint = endpoint_of(request, self.model_name)
        body = json_body(await read_body(request, endpoint, "json"), endpoint)
        return JSONResponse(await run_in_threadpool(endpoint.feedback, body))

    async def describe(self, request: Request) -> Response:
        endpoint = endpoint_of(request, self.model_name)
        endpoint.authorize(request.headers.get(AUTHORIZATION), "json")
        model = endpoint.served_model(self.model_name, "json")
        state, router = endpoint.router.state, endpoint.router
        return JSONResponse(
            {
                "name": model.name,
                "version": model.version,
                "run_id": getattr(model, "run_id", None),
                "inputs": [
                    {"name": t.name, "type": t.kind, "datatype": t.datatype}
                    for t in model.input_tensors()
                ],
                "outputs": [
                    {"name": t.name, "datatype": t.datatype} for t in model.output_tensors()
                ],
                "rollout": {
                    "champion": state.champion,
                    "challenger": state.challenger,
                    "mode": state.mode,
                    "weight": state.weight,
                    "step": state.step,
                    "budget_ms": state.budget_ms,
                    "active": state.active,
                    "problem": state.problem,
                    "served_versions": router.served_versions,
                    "last_refresh_error": router.last_refresh_error,
                },
                **getattr(model, "info", {}),
            }
        )

    # --- Open Inference Protocol v2 --------------------------------------------------------------
    async def server_metadata(self) -> Response:
        return JSONResponse(
            {"name": "modelfactory", "version": __version__, "extensions": ["binary_tensor_data"]}
        )

    async def live(self) -> Response:
        return JSONResponse({"live": True})

    async def ready(self, request: Request) -> Response:
        endpoint = getattr(request.app.state, "endpoint", None)
        is_ready = endpoint is not None and endpoint.router.ready
        return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)

    async def model_metadata(self, request: Request, name: str) -> Response:
        return await self._metadata(request, name, None)

    async def version_metadata(self, request: Request, name: str, version: str) -> Response:
        return await self._metadata(request, name, version)

    async def model_ready(self, request: Request, name: str) -> Response:
        return await self._ready(request, name, None)

    async def version_ready(self, request: Request, name: str, version: str) -> Response:
        return await self._ready(request, name, version)

    async def infer(self, request: Request, name: str) -> Response:
        return await self._infer(request, name, None)

    async def version_infer(self, request: Request, name: str, version: str) -> Response:
        return await self._infer(request, name, version)

    async def _metadata(self, request: Request, name: str, version: str | None) -> Response:
        endpoint = endpoint_of(request, self.model_name)
        endpoint.authorize(request.headers.get(AUTHORIZATION), "v2_rest")
        model = endpoint.served_model(name, "v2_rest", version)
        return JSONResponse(
            model_metadata(
                name, endpoint.router.served_versions, model.input_tensors(), model.output_tensors()
            )
        )

    async def _ready(self, request: Request, name: str, version: str | None) -> Response:
        endpoint = endpoint_of(request, self.model_name)
        endpoint.authorize(request.headers.get(AUTHORIZATION), "v2_rest")
        endpoint.check_model(name, "v2_rest", version)
        is_ready = endpoint.router.model(version) is not None and endpoint.router.ready
        return JSONResponse({"name": name, "ready": is_ready}, status_code=200 if is_ready else 503)

    async def _infer(self, request: Request, name: str, version: str | None) -> Response:
        endpoint = endpoint_of(request, self.model_name)
        raw = await read_body(request, endpoint, "v2_rest")
        endpoint.check_model(name, "v2_rest")
        try:
            v2_request = parse_http_body(raw, request.headers.get(BINARY_HEADER))
        except V2Error:
            endpoint.refuse("invalid", "v2_rest")
            raise
        routing = routing_headers(request)
        routing["explicit_version"] = version or routing["explicit_version"]
        routed, tensors, request_id = await predicting(
            endpoint, None, endpoint.infer, v2_request, protocol="v2_rest", **routing
        )
        body, tail = json_response(
            name, routed.model.version, v2_request.id, tensors, v2_request.binary_outputs
        )
        headers = {MODEL_VERSION: routed.model.version, REQUEST_ID: request_id}
        if not tail:
            return JSONResponse(body, headers=headers)
        head = json.dumps(body, separators=(",", ":")).encode()
        headers[BINARY_HEADER] = str(len(head))
        return Response(head + tail, media_type="application/octet-stream", headers=headers)


@dataclass(frozen=True)
class Route:
    path: str
    method: str
    handler: Callable
    summary: str
    openapi: dict = field(default_factory=dict)


def route_table(routes: RestRoutes) -> list[Route]:
    """Every route of the model API: path, method, handler, and its OpenAPI document."""
    v2 = "/v2/models/{name}"
    version = v2 + "/versions/{version}"
    return [
        Route(
            "/predict",
            "POST",
            routes.predict,
            "Predict each record: one object of the model's outputs per record",
            openapi.PREDICT,
        ),
        Route(
            "/feedback",
            "POST",
            routes.feedback,
            "Ground truth for logged predictions: {request_id, actual[, record]} or a list "
            "(a repeated request id and record replaces its earlier value)",
            openapi.FEEDBACK,
        ),
        Route(
            "/model",
            "GET",
            routes.describe,
            "The served model: name, versions, rollout, input fields",
            openapi.DESCRIBE,
        ),
        Route("/v2", "GET", routes.server_metadata, "v2 server metadata"),
        Route("/v2/health/live", "GET", routes.live, "v2 liveness"),
        Route(
            "/v2/health/ready",
            "GET",
            routes.ready,
            "v2 readiness: the champion is loaded",
            openapi.SERVER_READY,
        ),
        Route(
            v2,
            "GET",
            routes.model_metadata,
            "v2 model metadata: inputs (one tensor per column) and outputs",
            openapi.MODEL_GET,
        ),
        Route(
            version, "GET", routes.version_metadata, "v2 model version metadata", openapi.MODEL_GET
        ),
        Route(v2 + "/ready", "GET", routes.model_ready, "v2 model readiness", openapi.MODEL_GET),
        Route(
            version + "/ready",
            "GET",
            routes.version_ready,
            "v2 model version readiness",
            openapi.MODEL_GET,
        ),
        Route(
            v2 + "/infer",
            "POST",
            routes.infer,
            "v2 inference (routed by the rollout)",
            openapi.INFER,
        ),
        Route(
            version + "/infer",
            "POST",
            routes.version_infer,
            "v2 inference by one version",
            openapi.INFER,
        ),
    ]


def build_api(model_name: str, title: str = "modelfactory model API", about: str = "") -> FastAPI:
    """The model API of ``model_name``: the route table above, its errors mapped in one place."""
    api = FastAPI(
        title=title,
        version=__version__,
        description=f"Predictions of registered model '{model_name}': plain JSON (/predict) "
        "and the Open Inference Protocol v2 (/v2/...). The rollout (canary or shadow) decides "
        "which version answers unless the x-model-version header names one." + about,
    )
    for route in route_table(RestRoutes(model_name)):
        api.add_api_route(
            route.path,
            route.handler,
            methods=[route.method],
            summary=route.summary,
            openapi_extra=route.openapi or None,
        )
    install_error_handlers(api)
    return api
