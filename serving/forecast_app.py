"""The HTTP API of the forecast service: ``POST /forecast`` and ``GET /model``.

A FastAPI app mounted into the BentoML service at "/" (so every status code is ours),
and usable on its own in tests. It calls the
:class:`~modelfactory.forecasting.champion.ChampionForecaster` found at
``app.state.forecaster``. Unknown store → 404 naming the store; a horizon out of
range or a field of the wrong type → 422 naming the field; no champion yet → 503.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from modelfactory.forecasting.cache import LRUCache
from modelfactory.forecasting.champion import MAX_HORIZON_DAYS, NoChampion, UnknownStore


class ForecastRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    store: StrictInt = Field(description="Store id, e.g. 4.")
    horizon_days: StrictInt = Field(ge=1, le=MAX_HORIZON_DAYS,
                                    description=f"Days to forecast after the history ends (1..{MAX_HORIZON_DAYS}).")


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


def _problems(exc: RequestValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"] if p != "body") or "body"
        problems.append(f"{where}: {error['msg']} (got {error.get('input')!r})")
    return problems


def encode_forecast(store: int, version: str, frame) -> bytes:
    rows = [{"ds": f"{ds:%Y-%m-%d}", "yhat": float(y), "yhat_lower": float(lo), "yhat_upper": float(hi),
             "open": bool(is_open)}
            for ds, y, lo, hi, is_open in frame[["ds", "yhat", "yhat_lower", "yhat_upper", "open"]]
            .itertuples(index=False)]
    return json.dumps({"store": store, "model_version": version, "forecast": rows}).encode()


def build_forecast_api(model_name: str, max_encoded_bytes: int = 16 * 1024 * 1024) -> FastAPI:
    # Warm requests repeat: keep the encoded answers too, keyed by version (a new champion's
    # answers never meet the old ones; the old ones age out of the LRU).
    encoded = LRUCache(max_entries=None, max_bytes=max_encoded_bytes)
    api = FastAPI(title=f"modelfactory forecasts: {model_name}",
                  description="Daily sales forecasts with 95% intervals from the champion model set.")

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "invalid request", "problems": _problems(exc)}, status_code=422)

    @api.post("/forecast", response_model=ForecastResponse,
              responses={404: {"description": "unknown store"}, 422: {"description": "invalid request"},
                         503: {"description": "no champion loaded yet"}})
    def forecast(request: ForecastRequest, http: Request):
        forecaster = http.app.state.forecaster
        key = (forecaster.version, request.store, request.horizon_days)
        body = encoded.get(key)
        if body is None:
            try:
                version, frame = forecaster.forecast(request.store, request.horizon_days)
            except UnknownStore as exc:
                return JSONResponse({"error": str(exc), "store": exc.store}, status_code=404)
            except NoChampion as exc:
                return JSONResponse({"error": str(exc)}, status_code=503)
            body = encode_forecast(request.store, version, frame)
            encoded.put((version, request.store, request.horizon_days), body)
        return Response(body, media_type="application/json")

    @api.get("/model")
    def model(http: Request):
        forecaster = http.app.state.forecaster
        stats, answers = forecaster.cache.forecasts.stats(), encoded.stats()
        # hits: requests answered without running Prophet (an encoded answer or a cached forecast).
        return {"model": model_name, "model_version": forecaster.version, "stores": len(forecaster.stores()),
                "cache": {"models": len(forecaster.cache.models), "forecasts": stats.entries,
                          "answers": answers.entries, "hits": answers.hits + stats.hits, "misses": stats.misses}}

    return api
