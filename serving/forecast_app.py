"""The HTTP API of the forecast service: ``POST /forecast`` and ``GET /model``.

A FastAPI app mounted into the BentoML service at "/" (so every status code is ours),
and usable on its own in tests. It calls the
:class:`~modelfactory.forecasting.champion.ChampionForecaster` found at
``app.state.forecaster``. Unknown store → 404 naming the store; a horizon out of
range or a field of the wrong type → 422 naming the field; no champion yet → 503.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt

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


def build_forecast_api(model_name: str) -> FastAPI:
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
        try:
            version, frame = forecaster.forecast(request.store, request.horizon_days)
        except UnknownStore as exc:
            return JSONResponse({"error": str(exc), "store": exc.store}, status_code=404)
        except NoChampion as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        rows = [{"ds": f"{ds:%Y-%m-%d}", "yhat": float(y), "yhat_lower": float(lo), "yhat_upper": float(hi),
                 "open": bool(is_open)}
                for ds, y, lo, hi, is_open in frame[["ds", "yhat", "yhat_lower", "yhat_upper", "open"]]
                .itertuples(index=False)]
        return {"store": request.store, "model_version": version, "forecast": rows}

    @api.get("/model")
    def model(http: Request):
        forecaster = http.app.state.forecaster
        stats = forecaster.cache.forecasts.stats()
        return {"model": model_name, "model_version": forecaster.version, "stores": len(forecaster.stores()),
                "cache": {"models": len(forecaster.cache.models), "forecasts": stats.entries,
                          "hits": stats.hits, "misses": stats.misses}}

    return api
