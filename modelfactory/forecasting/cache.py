"""Bounded, thread-safe caches for the forecast API: loaded models and computed forecasts.

Planners query the same few stores in a session, and loading a Prophet model (JSON
parse) and predicting (uncertainty sampling) each cost tens to hundreds of
milliseconds. :class:`LRUCache` bounds memory by entries and/or by bytes;
:class:`ForecastCache` holds one for models, keyed by (model version, store), and one
for forecasts, keyed by (model version, store, horizon, regressor policy), and drops
everything when the served model version changes.

Concurrent requests for the same missing key compute it once (the others wait for
that result) rather than all loading the same model at the same time.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd


def approximate_size(value: Any) -> int:
    """Bytes a cached value holds, roughly: DataFrames count their memory, strings their length,
    a mapping of sequences (a served forecast: a tuple per output) its containers and items."""
    if isinstance(value, pd.DataFrame):
        return int(value.memory_usage(deep=True).sum())
    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, Mapping):
        return sys.getsizeof(value) + sum(
            sys.getsizeof(v) + (sum(map(sys.getsizeof, v)) if isinstance(v, tuple | list) else 0)
            for v in value.values()
        )
    model = getattr(value, "model", None)
    history = getattr(model, "history", None)
    if isinstance(history, pd.DataFrame):
        # A Prophet model is dominated by its training history and fitted parameters.
        return int(history.memory_usage(deep=True).sum()) + 64 * 1024
    return sys.getsizeof(value)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    entries: int = 0
    bytes: int = 0


class LRUCache:
    """A least-recently-used cache bounded by ``max_entries`` and/or ``max_bytes``.

    A value larger than ``max_bytes`` on its own is returned but not kept.
    All methods are thread-safe.
    """

    def __init__(
        self,
        max_entries: int | None = 128,
        max_bytes: int | None = None,
        sizeof: Callable[[Any], int] = approximate_size,
    ):
        if max_entries is None and max_bytes is None:
            raise ValueError(
                "LRUCache needs max_entries or max_bytes (or both); an unbounded cache leaks"
            )
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._sizeof = sizeof
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._inflight: dict[Hashable, threading.Event] = {}
        self._stats = CacheStats()

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self._stats.hits += 1
                return self._data[key][0]
            self._stats.misses += 1
            return default

    def put(self, key: Hashable, value: Any) -> None:
        size = self._sizeof(value) if self.max_bytes is not None else 0
        with self._lock:
            self._put_locked(key, value, size)

    def _put_locked(self, key: Hashable, value: Any, size: int) -> None:
        if key in self._data:
            self._bytes -= self._data.pop(key)[1]
        if self.max_bytes is not None and size > self.max_bytes:
            return
        self._data[key] = (value, size)
        self._bytes += size
        while (self.max_entries is not None and len(self._data) > self.max_entries) or (
            self.max_bytes is not None and self._bytes > self.max_bytes
        ):
            _, (_, evicted) = self._data.popitem(last=False)
            self._bytes -= evicted
            self._stats.evictions += 1

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value, or ``compute()``'s result (cached); one computation per key at once."""
        while True:
            with self._lock:
                if key in self._data:
                    self._data.move_to_end(key)
                    self._stats.hits += 1
                    return self._data[key][0]
                waiting = self._inflight.get(key)
                if waiting is None:
                    self._stats.misses += 1
                    event = self._inflight[key] = threading.Event()
                    break
            waiting.wait()  # another thread computes it; then look again
        try:
            value = compute()
            size = self._sizeof(value) if self.max_bytes is not None else 0
            with self._lock:
                self._put_locked(key, value, size)
            return value
        finally:
            with self._lock:
                self._inflight.pop(key, None)
            event.set()

    def pop(self, key: Hashable) -> Any:
        with self._lock:
            item = self._data.pop(key, None)
            if item is None:
                return None
            self._bytes -= item[1]
            return item[0]

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                self._stats.hits,
                self._stats.misses,
                self._stats.evictions,
                len(self._data),
                self._bytes,
            )


class ForecastCache:
    """Models and forecasts of one served model version, bounded, invalidated on version change.

    ``load_model(store)`` and ``make_forecast(model, horizon, policy)`` are the slow
    operations, e.g. ``lambda s: load_store_model(directory, s)`` and
    :func:`modelfactory.forecasting.model_set.forecast`; a forecast is any value with
    ``copy()`` (a DataFrame, or the served forecaster's dict of tuples). Call
    :meth:`set_version` whenever the registry says a new version serves; a different
    version empties both caches.
    """

    def __init__(
        self,
        load_model: Callable[[int], Any],
        make_forecast: Callable[[Any, int, str], Any],
        version: str | None = None,
        max_models: int = 32,
        max_forecast_bytes: int = 64 * 1024 * 1024,
        max_forecasts: int | None = 4096,
    ):
        self._load_model = load_model
        self._make_forecast = make_forecast
        self._version = version
        self._version_lock = threading.Lock()
        self.models = LRUCache(max_entries=max_models)
        self.forecasts = LRUCache(max_entries=max_forecasts, max_bytes=max_forecast_bytes)

    @property
    def version(self) -> str | None:
        return self._version

    def set_version(
        self, version: str | None, load_model: Callable[[int], Any] | None = None
    ) -> bool:
        """Serve ``version`` from now on; returns True (and clears everything) if it changed."""
        with self._version_lock:
            if load_model is not None:
                self._load_model = load_model
            if version == self._version:
                return False
            self._version = version
            self.clear()
            return True

    def clear(self) -> None:
        self.models.clear()
        self.forecasts.clear()

    def model(self, store: int) -> Any:
        version = self._version
        return self.models.get_or_compute(
            (version, int(store)), lambda: self._load_model(int(store))
        )

    def has_forecast(self, store: int, horizon_days: int, policy: str = "last_year") -> bool:
        """Whether :meth:`forecast` would answer from the cache (no Prophet run)."""
        return (self._version, int(store), int(horizon_days), policy) in self.forecasts

    def forecast(self, store: int, horizon_days: int, policy: str = "last_year") -> Any:
        """The forecast for (current version, store, horizon, policy); a copy, safe to modify."""
        version = self._version
        key = (version, int(store), int(horizon_days), policy)
        result = self.forecasts.get_or_compute(
            key, lambda: self._make_forecast(self.model(store), int(horizon_days), policy)
        )
        return result.copy()
