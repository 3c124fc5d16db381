"""One registered version of a forecasting model set, served like any other model.

:class:`ServedForecaster` implements :class:`~modelfactory.inference.served.ServedModel`,
so the model router (champion and challenger from the registry, canary, shadow,
``x-model-version``, fallback), the inference endpoint (metrics per version, the
prediction log) and every protocol (JSON, v2 REST, v2 gRPC) serve it exactly as they
serve the classifier.

A record is ``{"store": 2, "horizon_days": 42}``. Its prediction is the store's daily
forecast for the ``horizon_days`` days after its history ends, one list per output:
``ds`` (dates, ``YYYY-MM-DD``), ``yhat``, ``yhat_lower`` and ``yhat_upper`` (the 95%
interval) and ``open``. Over v2 each output is a tensor of shape ``[n, horizon_days]``.
A store without a model is :class:`UnknownStore` (404 naming it); a horizon outside
1..:data:`MAX_HORIZON_DAYS` or a value of the wrong type is an ``InvalidInput`` naming
the record and the field (422).

Each version keeps its own bounded :class:`~modelfactory.forecasting.cache.ForecastCache`
of loaded store models and computed forecasts: a challenger beside the champion never
evicts the champion's entries, and a version's caches go when the router drops it. The
forecasts are cached already in their answer form (tuples per output), so a warm request
costs a lookup, not a DataFrame conversion.

Shadow agreement: two versions' forecasts of a record agree when the challenger's daily
``yhat`` deviates from the champion's by at most :data:`AGREEMENT_TOLERANCE` (10%) in
total, relative to the champion's total (a weighted absolute percentage difference;
closed days, 0 in both, neither help nor hurt).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from modelfactory.forecasting.cache import ForecastCache
from modelfactory.forecasting.model_set import forecast as forecast_store
from modelfactory.inference.schema import Field, InputNotFound, InputSchema, InvalidInput
from modelfactory.inference.served import TensorSpec

log = logging.getLogger(__name__)

MAX_HORIZON_DAYS = 365
AGREEMENT_TOLERANCE = 0.10
DEFAULT_MAX_MODELS = 32
DEFAULT_MAX_FORECAST_BYTES = 64 * 1024 * 1024

INPUT_SCHEMA = InputSchema((Field("store", "integer"), Field("horizon_days", "integer")))
INPUTS = [TensorSpec("store", "INT64", "integer"), TensorSpec("horizon_days", "INT64", "integer")]
OUTPUTS = [
    TensorSpec("ds", "BYTES", "string", length_from="horizon_days"),
    TensorSpec("yhat", "FP64", "number", length_from="horizon_days"),
    TensorSpec("yhat_lower", "FP64", "number", length_from="horizon_days"),
    TensorSpec("yhat_upper", "FP64", "number", length_from="horizon_days"),
    TensorSpec("open", "BOOL", "boolean", length_from="horizon_days"),
]


class UnknownStore(InputNotFound):
    """A store the model set has no model for (never trained, or its training failed)."""

    def __init__(self, store: int, model_name: str, version: str | None):
        self.store = store
        self.details = {"store": store}  # added to the 404 body beside the message
        super().__init__(
            f"store {store} has no model in {model_name} version {version}; "
            "train it with `modelfactory run forecasting --stores ...`"
        )


class ServedForecaster:
    """A model set's version for serving. ``model_set`` has ``stores()`` and ``store_model(store)``
    (a :class:`~modelfactory.forecasting.registered.ModelSetPyfunc`); ``make_forecast(model,
    horizon_days, policy)`` returns the daily frame (:func:`~.model_set.forecast`)."""

    def __init__(
        self,
        name: str,
        version: str,
        model_set: Any,
        *,
        run_id: str | None = None,
        max_models: int = DEFAULT_MAX_MODELS,
        max_forecast_bytes: int = DEFAULT_MAX_FORECAST_BYTES,
        make_forecast: Callable[[Any, int, str], pd.DataFrame] = forecast_store,
    ):
        self.name = name
        self.version = str(version)
        self.run_id = run_id
        self.model_set = model_set
        self._stores = frozenset(int(s) for s in model_set.stores())
        self.cache = ForecastCache(
            model_set.store_model,
            lambda model, horizon, policy: as_prediction(make_forecast(model, horizon, policy)),
            version=self.version,
            max_models=max_models,
            max_forecast_bytes=max_forecast_bytes,
        )
        self.load_seconds: float | None = None

    @classmethod
    def load(
        cls,
        name: str,
        version: str | None = None,
        tracking_uri: str | None = None,
        max_models: int = DEFAULT_MAX_MODELS,
        max_forecast_bytes: int = DEFAULT_MAX_FORECAST_BYTES,
        alias: str = "champion",
    ) -> ServedForecaster:
        """Version ``version`` of registered model set ``name`` (or the one ``alias`` names)."""
        from modelfactory.forecasting.registered import load_model_set
        from modelfactory.registry import Registry

        started = time.perf_counter()
        registry = Registry(tracking_uri)
        if version is None:
            found = registry.version_by_alias(name, alias)
            if found is None:
                raise LookupError(
                    f"registered model {name!r} has no version with alias {alias!r} "
                    f"at {registry.tracking_uri}; run `modelfactory run forecasting` first"
                )
            version = str(found.version)
        loaded = load_model_set(name, str(version), registry.tracking_uri)
        served = cls(
            name,
            str(version),
            loaded.model,
            run_id=loaded.run_id,
            max_models=max_models,
            max_forecast_bytes=max_forecast_bytes,
        )
        served.load_seconds = round(time.perf_counter() - started, 3)
        log.info(
            "loaded %s v%s: %d stores in %.1fs",
            name,
            version,
            len(served._stores),
            served.load_seconds,
        )
        return served

    def stores(self) -> list[int]:
        return sorted(self._stores)

    # single forecasts (the CLI) ------------------------------------------------------------------
    def forecast(self, store: int, horizon_days: int, policy: str = "last_year") -> pd.DataFrame:
        """The daily forecast of ``store`` as a frame; raises UnknownStore or ValueError."""
        if not 1 <= horizon_days <= MAX_HORIZON_DAYS:
            raise ValueError(
                f"horizon_days must be between 1 and {MAX_HORIZON_DAYS}, got {horizon_days}"
            )
        self._check_store(store)
        return as_frame(self.cache.forecast(int(store), int(horizon_days), policy))

    def history(self, store: int) -> pd.DataFrame:
        """The sales the store's model was fitted on (ds, y), shown before a plotted forecast."""
        self._check_store(store)
        return self.cache.model(int(store)).model.history[["ds", "y"]].copy()

    def _check_store(self, store: int) -> None:
        if int(store) not in self._stores:
            raise UnknownStore(int(store), self.name, self.version)

    # the served-model interface (modelfactory.inference.served.ServedModel) ----------------------
    def input_tensors(self) -> list[TensorSpec]:
        return list(INPUTS)

    def output_tensors(self) -> list[TensorSpec]:
        return list(OUTPUTS)

    def predict(self, records: Any, max_records: int | None = None) -> list[dict]:
        """Per record, its daily forecast (a tuple per output); raises InvalidInput/UnknownStore."""
        wanted = checked_records(records, max_records)
        for store, _ in wanted:
            self._check_store(store)
        # Each answer is the cached prediction: a dict of per-day tuples, one per output.
        return [self.cache.forecast(store, horizon) for store, horizon in wanted]

    def would_block(self, records: Any) -> bool:
        """Whether predicting ``records`` may run Prophet (some forecast is not cached yet).

        Refused records and unknown stores answer at once, so they do not block."""
        try:
            wanted = checked_records(records)
        except InvalidInput:
            return False
        return not all(
            store not in self._stores or self.cache.has_forecast(store, horizon)
            for store, horizon in wanted
        )

    def summarize(self, prediction: Mapping) -> tuple[str, float]:
        """Label ``forecast``; score: the mean daily sales forecast (closed days count as 0)."""
        yhat = prediction["yhat"]
        return "forecast", (sum(yhat) / len(yhat) if yhat else 0.0)

    def agrees(self, ours: Sequence[Mapping], theirs: Sequence[Mapping]) -> list[bool]:
        return [forecasts_agree(a["yhat"], b["yhat"]) for a, b in zip(ours, theirs, strict=True)]

    @property
    def info(self) -> dict:
        """What ``GET /model`` adds about this version: stores, caches (hits: no Prophet run)."""
        stats = self.cache.forecasts.stats()
        return {
            "stores": len(self._stores),
            "load_seconds": self.load_seconds,
            "max_horizon_days": MAX_HORIZON_DAYS,
            "cache": {
                "models": len(self.cache.models),
                "forecasts": stats.entries,
                "hits": stats.hits,
                "misses": stats.misses,
            },
        }


def checked_records(records: Any, max_records: int | None = None) -> list[tuple[int, int]]:
    """(store, horizon_days) per record; raises InvalidInput naming each record and field."""
    problems = INPUT_SCHEMA.problems(records, max_records)
    if isinstance(records, list) and (max_records is None or len(records) <= max_records):
        for i, record in enumerate(records):
            horizon = record.get("horizon_days") if isinstance(record, Mapping) else None
            if _whole_number(horizon) and not 1 <= horizon <= MAX_HORIZON_DAYS:  # type: ignore[operator]
                problems.append(
                    f"records[{i}].horizon_days: expected 1 to {MAX_HORIZON_DAYS} days, "
                    f"got {horizon}"
                )
    if problems:
        raise InvalidInput(problems)
    return [(int(r["store"]), int(r["horizon_days"])) for r in records]


def _whole_number(value: Any) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer()
    )


def forecasts_agree(
    ours: Sequence[float], theirs: Sequence[float], tolerance: float = AGREEMENT_TOLERANCE
) -> bool:
    """Whether ``theirs`` deviates from ``ours`` by at most ``tolerance`` of ``ours``' total."""
    if len(ours) != len(theirs):
        return False
    deviation = sum(abs(a - b) for a, b in zip(ours, theirs, strict=True))
    return deviation <= tolerance * sum(abs(a) for a in ours)


def as_prediction(frame: pd.DataFrame) -> dict[str, tuple]:
    """A daily forecast frame as one prediction: a tuple of plain Python values per output."""
    return {
        "ds": tuple(frame["ds"].dt.strftime("%Y-%m-%d")),
        "yhat": tuple(frame["yhat"].astype(float).tolist()),
        "yhat_lower": tuple(frame["yhat_lower"].astype(float).tolist()),
        "yhat_upper": tuple(frame["yhat_upper"].astype(float).tolist()),
        "open": tuple(frame["open"].astype(bool).tolist()),
    }


def as_frame(prediction: Mapping[str, Sequence]) -> pd.DataFrame:
    """One prediction back as the daily frame (ds as timestamps), e.g. for a plot."""
    return pd.DataFrame(
        {
            "ds": pd.to_datetime(list(prediction["ds"])),
            **{
                name: list(prediction[name])
                for name in ("yhat", "yhat_lower", "yhat_upper", "open")
            },
        }
    )


def as_rows(prediction: Mapping[str, Sequence]) -> list[dict]:
    """One prediction as a row per day (the ``POST /forecast`` answer)."""
    return [
        {"ds": ds, "yhat": y, "yhat_lower": lo, "yhat_upper": hi, "open": is_open}
        for ds, y, lo, hi, is_open in zip(
            prediction["ds"],
            prediction["yhat"],
            prediction["yhat_lower"],
            prediction["yhat_upper"],
            prediction["open"],
            strict=True,
        )
    ]
