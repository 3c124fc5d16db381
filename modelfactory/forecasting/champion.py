"""Forecasts from the registered champion model set, cached, following the champion as it changes.

:class:`ChampionForecaster` is what the forecast API (``serving/forecast_service.py``)
and ``modelfactory forecast`` call. It asks the registry which version holds the alias
(every ``poll_seconds`` in a background thread, or on demand), loads that version's
model set (stores load lazily), and answers ``forecast(store, horizon_days)`` through a
bounded :class:`~modelfactory.forecasting.cache.ForecastCache` that empties itself when
the champion changes. When the registry does not answer, the last known champion keeps
serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pandas as pd

from modelfactory.errors import ModelFactoryError
from modelfactory.forecasting.cache import ForecastCache
from modelfactory.forecasting.model_set import forecast as forecast_store

log = logging.getLogger(__name__)
MAX_HORIZON_DAYS = 365


class UnknownStore(ModelFactoryError, LookupError):
    def __init__(self, store: int, model_name: str, version: str | None):
        self.store = store
        super().__init__(f"store {store} has no model in {model_name} version {version}; "
                         "train it with `modelfactory run forecasting --stores ...`")


class NoChampion(ModelFactoryError, LookupError):
    pass


class ChampionForecaster:
    """``read_champion()`` -> version or None; ``load_version(version)`` -> an object with
    ``stores()`` and ``store_model(store)`` (e.g. :class:`~.registered.ModelSetPyfunc`)."""

    def __init__(self, model_name: str, read_champion: Callable[[], str | None],
                 load_version: Callable[[str], Any], poll_seconds: float = 5.0, max_models: int = 32,
                 max_forecast_bytes: int = 64 * 1024 * 1024,
                 make_forecast: Callable[[Any, int, str], pd.DataFrame] = forecast_store):
        self.model_name = model_name
        self.poll_seconds = poll_seconds
        self._read_champion = read_champion
        self._load_version = load_version
        self._lock = threading.Lock()
        self._stores: frozenset[int] = frozenset()
        self.model_set: Any = None
        self.cache = ForecastCache(self._no_model, make_forecast, max_models=max_models,
                                   max_forecast_bytes=max_forecast_bytes)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _no_model(store: int):
        raise NoChampion("no champion model set is loaded yet")

    @property
    def version(self) -> str | None:
        return self.cache.version

    @property
    def ready(self) -> bool:
        return self.version is not None

    def stores(self) -> list[int]:
        return sorted(self._stores)

    def refresh(self) -> bool:
        """Follow the champion alias now; returns True when a new version was loaded."""
        try:
            version = self._read_champion()
        except Exception as exc:  # noqa: BLE001 - keep serving the last known champion
            log.warning("registry unreachable, keeping %s version %s: %s", self.model_name, self.version, exc)
            return False
        if version is None or str(version) == self.version:
            return False
        version = str(version)
        model_set = self._load_version(version)
        stores = frozenset(int(s) for s in model_set.stores())
        with self._lock:
            self.model_set, self._stores = model_set, stores
            self.cache.set_version(version, load_model=model_set.store_model)
        log.info("serving %s version %s (%d stores)", self.model_name, version, len(stores))
        return True

    def forecast(self, store: int, horizon_days: int, policy: str = "last_year") -> tuple[str, pd.DataFrame]:
        """(version, daily forecast) for ``store``; raises UnknownStore, NoChampion or ValueError."""
        if not 1 <= horizon_days <= MAX_HORIZON_DAYS:
            raise ValueError(f"horizon_days must be between 1 and {MAX_HORIZON_DAYS}, got {horizon_days}")
        with self._lock:
            version, stores = self.version, self._stores
        if version is None:
            raise NoChampion(f"{self.model_name} has no champion loaded yet")
        if int(store) not in stores:
            raise UnknownStore(int(store), self.model_name, version)
        return version, self.cache.forecast(int(store), int(horizon_days), policy)

    def history(self, store: int) -> pd.DataFrame:
        """The sales the store's model was fitted on (ds, y): what a plot shows before the forecast."""
        if int(store) not in self._stores:
            raise UnknownStore(int(store), self.model_name, self.version)
        return self.cache.model(int(store)).model.history[["ds", "y"]].copy()

    def start(self) -> ChampionForecaster:
        """Load the champion now if the registry has one, then keep polling in the background."""
        try:
            self.refresh()
        except Exception:  # noqa: BLE001 - not ready yet; the poller retries
            log.exception("loading %s version failed; retrying every %ss", self.model_name, self.poll_seconds)
        self._thread = threading.Thread(target=self._poll, name="champion-poll", daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - a bad version must not kill the poller
                log.exception("loading the new %s champion failed; keeping version %s",
                              self.model_name, self.version)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def registry_forecaster(model_name: str = "store-sales", tracking_uri: str | None = None,
                        poll_seconds: float = 5.0, alias: str = "champion", **cache_options) -> ChampionForecaster:
    """A ChampionForecaster following ``model_name@alias`` in the MLflow registry."""
    from modelfactory.forecasting.registered import load_model_set
    from modelfactory.registry import Registry

    registry = Registry(tracking_uri)

    def read_champion() -> str | None:
        found = registry.version_by_alias(model_name, alias)
        return str(found.version) if found else None

    return ChampionForecaster(
        model_name, read_champion,
        lambda version: load_model_set(model_name, version, registry.tracking_uri).model,
        poll_seconds=poll_seconds, **cache_options)
