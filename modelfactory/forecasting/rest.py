"""The HTTP API of the forecast service: the model API of every service, plus ``POST /forecast``.

It is :func:`modelfactory.inference.protocol.rest.build_api` (JSON ``/predict``, ``/model``,
the Open Inference Protocol v2 REST routes), which serves the
:class:`~modelfactory.forecasting.served.ServedForecaster` like any model, and one route
of its own: ``POST /forecast`` takes ``{"store": 2, "horizon_days": 42}`` and answers the
store's forecast as one row per day. It goes through the same
:class:`~modelfactory.inference.endpoint.InferenceEndpoint` (``app.state.endpoint``) as
the other routes, so it is routed (canary, shadow, ``x-model-version``), counted per
version in ``/metrics`` and written to the prediction log. Unknown store → 404 naming the
store; a horizon out of range or a field of the wrong type → 422 naming the field; no
champion yet → 503.

Warm requests repeat, and encoding a forecast as JSON costs more than finding it in the
version's forecast cache: encoded answers are kept in a bounded LRU keyed by the version
that actually answered (a canary's answers never meet the champion's), store and horizon.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from modelfactory.forecasting.cache import LRUCache
from modelfactory.forecasting.served import MAX_HORIZON_DAYS, as_rows
from modelfactory.inference.protocol.headers import MODEL_VERSION, REQUEST_ID
from modelfactory.inference.protocol.rest import (
    build_api,
    endpoint_of,
    predicting,
    request_id_of,
    routing_headers,
)

PROTOCOL = "json"  # the metrics' protocol label of /forecast, as of /predict


class ForecastRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    store: StrictInt = Field(description="Store id, e.g. 4.")
    horizon_days: StrictInt = Field(
        ge=1,
        le=MAX_HORIZON_DAYS,
        description=f"Days to forecast after the history ends (1..{MAX_HORIZON_DAYS}).",
    )


class ForecastDay(BaseModel):
    ds: str
    yhat: float
    yhat_lower: float
    yhat_upper: float
    open: bool


class ForecastResponse(BaseModel):
    store: int
    model_version: str
    forecast: list[ForecastDay]


def encode_forecast(store: int, version: str, prediction) -> bytes:
    """The ``POST /forecast`` answer for one served prediction (a tuple per output)."""
    return json.dumps(
        {"store": store, "model_version": version, "forecast": as_rows(prediction)}
    ).encode()


def build_forecast_api(model_name: str, max_encoded_bytes: int = 16 * 1024 * 1024) -> FastAPI:
    encoded = LRUCache(max_entries=None, max_bytes=max_encoded_bytes)
    api = build_api(
        model_name,
        title=f"modelfactory forecasts: {model_name}",
        about=" POST /forecast answers one store's daily sales forecast with its 95% interval; "
        "/predict and v2 take records {store, horizon_days} (v2 outputs have shape "
        "[n, horizon_days], so every row of a v2 request needs the same horizon_days).",
    )

    @api.post(
        "/forecast",
        response_model=ForecastResponse,
        summary="One store's daily sales forecast (routed like every prediction)",
        responses={
            401: {"description": "missing or wrong bearer token"},
            404: {"description": "unknown store, or a version not served here"},
            422: {"description": "invalid request, naming the field"},
            503: {"description": "no champion loaded yet"},
        },
    )
    async def forecast(request: ForecastRequest, http: Request):
        # A cold forecast (Prophet runs) goes to a worker thread, so it never stalls the event
        # loop that other requests and v2 gRPC share; a cached one is answered on the loop.
        endpoint = endpoint_of(http, model_name)
        endpoint.authorize(http.headers.get("authorization"), PROTOCOL)
        request_id = request_id_of(http)
        records = [{"store": request.store, "horizon_days": request.horizon_days}]
        routed = await predicting(
            endpoint,
            records,
            endpoint.predict,
            records,
            protocol=PROTOCOL,
            request_id=request_id,
            **routing_headers(http),
        )
        version = routed.model.version
        key = (version, request.store, request.horizon_days)
        body = encoded.get(key)
        if body is None:
            body = encode_forecast(request.store, version, routed.predictions[0])
            encoded.put(key, body)
        headers = {MODEL_VERSION: version, REQUEST_ID: request_id}
        return Response(body, media_type="application/json", headers=headers)

    return api
