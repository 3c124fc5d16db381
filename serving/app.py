"""The HTTP API of a model service: the plain JSON routes and the Open Inference Protocol v2 REST routes.

A FastAPI app mounted into the BentoML service at "/" (so every status code is
ours), and usable on its own in tests. Handlers are thin: they check the token
and the body size, parse, and call the shared
:class:`~modelfactory.inference.endpoint.InferenceEndpoint` found at
``app.state.endpoint``. Bad input is always a 4xx that names the field or input:
422 invalid, 404 unknown model or version (or a record naming something the model
does not have, such as a store without a forecast model), 413 too large, 401
missing token. The app is the same for every served model (the forecast service
adds ``POST /forecast`` to it, :mod:`serving.forecast_app`).
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from modelfactory import __version__
from modelfactory.inference.endpoint import InferenceEndpoint
from modelfactory.inference.schema import InputNotFound, InvalidInput
from modelfactory.inference.v2 import (
    BINARY_HEADER,
    DATATYPES,
    V2Error,
    json_response,
    model_metadata,
    parse_json_request,
)

REQUEST_KEY, MODEL_VERSION, REQUEST_ID = "x-request-key", "x-model-version", "x-request-id"

_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "problems": {"type": "array", "items": {"type": "string"}},
    },
}
_SCALAR = {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}]}
_V2_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "shape": {
            "type": "array",
            "items": {"type": "integer", "minimum": 0},
            "minItems": 1,
            "maxItems": 2,
        },
        "datatype": {"type": "string", "enum": list(DATATYPES)},
        "parameters": {"type": "object"},
        "data": {"type": "array", "items": _SCALAR},
    },
}
_V2_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": _V2_TENSOR, "minItems": 1},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
            },
        },
    },
}
_V2_RESPONSE = {
    "type": "object",
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "id": {"type": "string"},
        "outputs": {"type": "array", "items": {"type": "object"}},
    },
}
_RECORD = {"type": "object", "additionalProperties": _SCALAR}
_HEADERS = [
    {
        "name": MODEL_VERSION,
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "Answer with this model version (champion or challenger), bypassing the rollout.",
    },
    {
        "name": REQUEST_KEY,
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "Sticky routing key: the same key gets the same version at a given rollout weight.",
    },
    {
        "name": REQUEST_ID,
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "Echoed, and stored with the logged predictions.",
    },
]
_ERRORS = {
    str(code): {"description": text, "content": {"application/json": {"schema": _ERROR}}}
    for code, text in (
        (401, "Missing or wrong bearer token"),
        (404, "Unknown model or version, or a record naming what the model does not have"),
        (413, "Request body over MODELFACTORY_MAX_REQUEST_BYTES"),
        (422, "Input that does not fit the model, naming the field or input"),
        (503, "No model loaded yet"),
    )
}


def _body(schema: dict) -> dict:
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        "parameters": _HEADERS,
    }


def _responses(schema: dict, *codes: int) -> dict:
    answer = {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}}
    return {**answer, **{str(c): _ERRORS[str(c)] for c in codes}}


def _error(status: int, message: str, problems: list[str] | None = None) -> JSONResponse:
    body: dict = {"error": message}
    if problems:
        body["problems"] = problems
    return JSONResponse(body, status_code=status)


def _v2_error(exc: V2Error) -> JSONResponse:
    return _error(
        exc.http_status,
        exc.detail() if exc.kind == "invalid" else exc.message,
        exc.problems or None,
    )


async def _read_body(request: Request, endpoint: InferenceEndpoint, protocol: str) -> bytes:
    """The body, after the token and size checks; raises V2Error."""
    if not endpoint.authorized(request.headers.get("authorization")):
        endpoint.refuse("unauthenticated", protocol)
        raise V2Error(
            "unauthenticated", "missing or wrong bearer token (Authorization: Bearer <token>)"
        )
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


def _authorize(request: Request, endpoint: InferenceEndpoint, protocol: str = "v2") -> None:
    if not endpoint.authorized(request.headers.get("authorization")):
        endpoint.refuse("unauthenticated", protocol)
        raise V2Error(
            "unauthenticated", "missing or wrong bearer token (Authorization: Bearer <token>)"
        )


async def predicting(endpoint: InferenceEndpoint, records, method, *args, **kwargs):
    """``method(*args, **kwargs)`` (``endpoint.predict`` or ``infer``) for ``records`` (None when
    not parsed yet): inline, or in a worker thread when it may block the event loop."""
    if endpoint.would_block(records):
        return await run_in_threadpool(method, *args, **kwargs)
    return method(*args, **kwargs)


def build_api(model_name: str, title: str = "modelfactory model API", about: str = "") -> FastAPI:
    api = FastAPI(
        title=title,
        version=__version__,
        description=f"Predictions of registered model '{model_name}': plain JSON (/predict) "
        "and the Open Inference Protocol v2 (/v2/...). The rollout (canary or shadow) decides "
        "which version answers unless the x-model-version header names one." + about,
    )

    def endpoint_of(request: Request) -> InferenceEndpoint | None:
        return getattr(request.app.state, "endpoint", None)

    @api.post(
        "/predict",
        summary="Predict each record: one object of the model's outputs per record",
        openapi_extra={
            **_body(
                {
                    "type": "object",
                    "required": ["records"],
                    "properties": {"records": {"type": "array", "items": _RECORD, "minItems": 1}},
                }
            ),
            "responses": _responses({"type": "object"}, 401, 404, 413, 422, 503),
        },
    )
    async def predict(request: Request) -> Response:
        endpoint = endpoint_of(request)
        if endpoint is None:
            return _error(503, f"the {model_name} service is starting")
        try:
            raw = await _read_body(request, endpoint, "json")
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
                endpoint.refuse("invalid", "json")
                return _error(422, f"the request body is not valid JSON: {exc}")
            if not isinstance(body, dict) or "records" not in body:
                endpoint.refuse("invalid", "json")
                return _error(
                    422, 'expected a JSON object {"records": [{...}, ...]}', ["records: missing"]
                )
            request_id = request.headers.get(REQUEST_ID)
            routed = await predicting(
                endpoint,
                body["records"],
                endpoint.predict,
                body["records"],
                protocol="json",
                explicit_version=request.headers.get(MODEL_VERSION) or None,
                request_key=request.headers.get(REQUEST_KEY) or None,
                request_id=request_id,
            )
        except InputNotFound as exc:
            return _error(404, str(exc))
        except InvalidInput as exc:
            return _error(422, "the records do not match the model's input schema", exc.problems)
        except V2Error as exc:
            return _v2_error(exc)
        model = routed.model
        headers = {MODEL_VERSION: model.version}
        if request_id:
            headers[REQUEST_ID] = request_id
        return JSONResponse(
            {
                "model": model.name,
                "model_version": model.version,
                "predictions": routed.predictions,
            },
            headers=headers,
        )

    @api.get(
        "/model",
        summary="The served model: name, versions, rollout, input fields",
        openapi_extra={"responses": _responses({"type": "object"}, 401, 503)},
    )
    async def describe(request: Request) -> Response:
        endpoint = endpoint_of(request)
        model = endpoint.router.model() if endpoint else None
        if model is None:
            return _error(503, "no model loaded yet")
        try:
            _authorize(request, endpoint, "json")
        except V2Error as exc:
            return _v2_error(exc)
        state = endpoint.router.state
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
                    "served_versions": endpoint.router.served_versions,
                    "last_refresh_error": endpoint.router.last_refresh_error,
                },
                **getattr(model, "info", {}),
            }
        )

    # --- Open Inference Protocol v2 ----------------------------------------------------------------
    @api.get("/v2", summary="v2 server metadata")
    async def server_metadata() -> Response:
        return JSONResponse(
            {"name": "modelfactory", "version": __version__, "extensions": ["binary_tensor_data"]}
        )

    @api.get("/v2/health/live", summary="v2 liveness")
    async def live() -> Response:
        return JSONResponse({"live": True})

    @api.get(
        "/v2/health/ready",
        summary="v2 readiness: the champion is loaded",
        openapi_extra={"responses": {"503": _ERRORS["503"]}},
    )
    async def ready(request: Request) -> Response:
        endpoint = endpoint_of(request)
        is_ready = endpoint is not None and endpoint.router.ready
        return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)

    def _model_check(request: Request, name: str, version: str | None) -> InferenceEndpoint:
        endpoint = endpoint_of(request)
        if endpoint is None:
            raise V2Error("unavailable", f"the {model_name} service is starting")
        _authorize(request, endpoint)
        endpoint.check_model(name)
        if version is not None and version not in endpoint.router.served_versions:
            raise V2Error(
                "not_found",
                f"version {version!r} of {name} is not served here "
                f"(served: {', '.join(endpoint.router.served_versions) or 'none'})",
            )
        return endpoint

    async def _metadata(request: Request, name: str, version: str | None) -> Response:
        try:
            endpoint = _model_check(request, name, version)
        except V2Error as exc:
            return _v2_error(exc)
        model = endpoint.router.model(version)
        if model is None:
            return _error(503, f"no champion of {name} is loaded yet")
        return JSONResponse(
            model_metadata(
                name, endpoint.router.served_versions, model.input_tensors(), model.output_tensors()
            )
        )

    async def _model_ready(request: Request, name: str, version: str | None) -> Response:
        try:
            endpoint = _model_check(request, name, version)
        except V2Error as exc:
            return _v2_error(exc)
        is_ready = endpoint.router.model(version) is not None and endpoint.router.ready
        return JSONResponse({"name": name, "ready": is_ready}, status_code=200 if is_ready else 503)

    meta = {"responses": _responses({"type": "object"}, 401, 404, 503)}

    @api.get(
        "/v2/models/{name}",
        summary="v2 model metadata: inputs (one tensor per column) and outputs",
        openapi_extra=meta,
    )
    async def metadata(request: Request, name: str) -> Response:
        return await _metadata(request, name, None)

    @api.get(
        "/v2/models/{name}/versions/{version}",
        summary="v2 model version metadata",
        openapi_extra=meta,
    )
    async def version_metadata(request: Request, name: str, version: str) -> Response:
        return await _metadata(request, name, version)

    @api.get("/v2/models/{name}/ready", summary="v2 model readiness", openapi_extra=meta)
    async def model_ready(request: Request, name: str) -> Response:
        return await _model_ready(request, name, None)

    @api.get(
        "/v2/models/{name}/versions/{version}/ready",
        summary="v2 model version readiness",
        openapi_extra=meta,
    )
    async def version_ready(request: Request, name: str, version: str) -> Response:
        return await _model_ready(request, name, version)

    infer_doc = {
        **_body(_V2_REQUEST),
        "responses": _responses(_V2_RESPONSE, 401, 404, 413, 422, 503),
    }

    @api.post(
        "/v2/models/{name}/infer",
        summary="v2 inference (routed by the rollout)",
        openapi_extra=infer_doc,
    )
    async def infer(request: Request, name: str) -> Response:
        return await _infer(request, name, None)

    @api.post(
        "/v2/models/{name}/versions/{version}/infer",
        summary="v2 inference by one version",
        openapi_extra=infer_doc,
    )
    async def infer_version(request: Request, name: str, version: str) -> Response:
        return await _infer(request, name, version)

    async def _infer(request: Request, name: str, version: str | None) -> Response:
        endpoint = endpoint_of(request)
        if endpoint is None:
            return _error(503, f"the {model_name} service is starting")
        try:
            raw = await _read_body(request, endpoint, "v2_rest")
            try:
                endpoint.check_model(name)
            except V2Error:
                endpoint.refuse("not_found", "v2_rest")
                raise
            v2_request = _parse(raw, request.headers.get(BINARY_HEADER), endpoint)
            routed, tensors, request_id = await predicting(
                endpoint,
                None,
                endpoint.infer,
                v2_request,
                protocol="v2_rest",
                explicit_version=version or request.headers.get(MODEL_VERSION) or None,
                request_key=request.headers.get(REQUEST_KEY) or None,
            )
        except V2Error as exc:
            return _v2_error(exc)
        body, tail = json_response(
            name, routed.model.version, v2_request.id, tensors, v2_request.binary_outputs
        )
        headers = {MODEL_VERSION: routed.model.version, REQUEST_ID: request_id}
        if not tail:
            return JSONResponse(body, headers=headers)
        head = json.dumps(body, separators=(",", ":")).encode()
        headers[BINARY_HEADER] = str(len(head))
        return Response(head + tail, media_type="application/octet-stream", headers=headers)

    return api


def _parse(raw: bytes, header_length: str | None, endpoint: InferenceEndpoint):
    try:
        if header_length is not None:
            if not header_length.isdigit() or int(header_length) > len(raw):
                raise V2Error(
                    "invalid",
                    f"{BINARY_HEADER} {header_length!r} does not fit a body of {len(raw)} bytes",
                )
            length = int(header_length)
            head, binary = raw[:length], raw[length:]
        else:
            head, binary = raw, b""
        try:
            body = json.loads(head)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise V2Error("invalid", f"the request body is not valid JSON: {exc}") from None
        return parse_json_request(body, binary)
    except V2Error:
        endpoint.refuse("invalid", "v2_rest")
        raise
