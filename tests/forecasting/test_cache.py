"""The bounded LRU cache and the version-aware forecast cache."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

from modelfactory.forecasting.cache import ForecastCache, LRUCache
from modelfactory.forecasting.model_set import forecast, load_store_model


def test_evicts_least_recently_used_by_entries():
    cache = LRUCache(max_entries=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3
    assert cache.stats().evictions == 1


def test_evicts_by_bytes_and_skips_oversized_values():
    cache = LRUCache(max_entries=None, max_bytes=10, sizeof=len)
    cache.put("a", "xxxx")
    cache.put("b", "yyyy")
    cache.put("c", "zzzz")  # 12 bytes > 10: a goes
    assert "a" not in cache and len(cache) == 2 and cache.stats().bytes == 8
    cache.put("huge", "h" * 11)
    assert "huge" not in cache and len(cache) == 2
    cache.put("b", "y")  # replacing updates the byte count
    assert cache.stats().bytes == 5


def test_unbounded_cache_is_refused():
    with pytest.raises(ValueError, match="unbounded"):
        LRUCache(max_entries=None, max_bytes=None)


def test_concurrent_misses_compute_once():
    cache = LRUCache(max_entries=4)
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.05)
        return "value"

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_compute("k", slow)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["value"] * 8 and len(calls) == 1


def test_a_failed_computation_is_not_cached_and_does_not_block():
    cache = LRUCache(max_entries=4)
    with pytest.raises(RuntimeError):
        cache.get_or_compute("k", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert cache.get_or_compute("k", lambda: 5) == 5


def _counting_cache():
    loads, forecasts = [], []

    def load(store):
        loads.append(store)
        return f"model-{store}"

    def make(model, horizon, policy):
        forecasts.append((model, horizon, policy))
        return pd.DataFrame({"ds": pd.date_range("2015-08-01", periods=horizon), "yhat": 1.0})

    return ForecastCache(load, make, version="1", max_models=2), loads, forecasts


def test_forecasts_are_cached_per_store_horizon_and_version():
    cache, loads, forecasts = _counting_cache()
    first = cache.forecast(1, 7)
    first.loc[0, "yhat"] = 99  # callers get a copy
    assert cache.forecast(1, 7)["yhat"].iloc[0] == 1.0
    cache.forecast(1, 14)
    cache.forecast(2, 7)
    assert loads == [1, 2]
    assert forecasts == [
        ("model-1", 7, "last_year"),
        ("model-1", 14, "last_year"),
        ("model-2", 7, "last_year"),
    ]
    assert cache.set_version("1") is False and len(cache.forecasts) == 3
    assert cache.set_version("2") is True
    assert len(cache.forecasts) == 0 and len(cache.models) == 0
    cache.forecast(1, 7)
    assert loads == [1, 2, 1]


def test_model_cache_is_bounded():
    cache, loads, _ = _counting_cache()
    for store in (1, 2, 3, 1):
        cache.model(store)
    assert loads == [1, 2, 3, 1] and len(cache.models) == 2


def test_with_real_models(model_set_dir):
    cache = ForecastCache(lambda s: load_store_model(model_set_dir, s), forecast, version="v1")
    frame = cache.forecast(2, 14)
    assert len(frame) == 14
    again = cache.forecast(2, 14)
    pd.testing.assert_frame_equal(frame, again)
    stats = cache.forecasts.stats()
    assert stats.hits == 1 and stats.misses == 1 and stats.bytes > 0
