"""The store forecaster in batch: every store of a registered model set × a horizon, for the
planners who want tomorrow's numbers in their database.

Partitions are shards of stores (:mod:`modelfactory.forecasting.shards`, as in training):
partition ``k`` of ``n`` forecasts the stores of shard ``k``. Each store's forecast is the
one the forecast API answers (:func:`~modelfactory.forecasting.model_set.forecast`, future
promotions and holidays from last year, closed days 0). A store whose forecast fails is a
reject with the reason; the other stores carry on.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from modelfactory.forecasting.model_set import FORECAST_COLUMNS, forecast
from modelfactory.forecasting.shards import stores_of_shard
from modelfactory.scoring.batch import ChunkResult
from modelfactory.scoring.results import FORECASTS
from modelfactory.scoring.sources import Source

MAX_HORIZON_DAYS = 365


class BatchForecaster:
    """A registered model-set version forecasting all its stores (a :class:`BatchModel`)."""

    table = FORECASTS
    needs_source = False

    def __init__(self, name: str, version: str, model_set, horizon_days: int = 42):
        if not 1 <= horizon_days <= MAX_HORIZON_DAYS:
            raise ValueError(f"horizon_days must be in 1..{MAX_HORIZON_DAYS}, got {horizon_days}")
        self.name, self.version = name, str(version)
        self.model_set = model_set  # stores() and store_model(store), as ModelSetPyfunc
        self.horizon_days = horizon_days
        self.stores = sorted(int(s) for s in model_set.stores())

    @classmethod
    def load(
        cls, name: str, version: str, tracking_uri: str, horizon_days: int = 42
    ) -> BatchForecaster:
        from modelfactory.forecasting.registered import load_model_set

        loaded = load_model_set(name, version, tracking_uri)
        return cls(name, version, loaded.model, horizon_days)

    def partitions(self, source: Source | None, wanted: int) -> int:
        return max(1, min(wanted, len(self.stores)))

    def _mine(self, partition: int, partitions: int) -> list[int]:
        return stores_of_shard(self.stores, partition, partitions)

    def total(self, source: Source | None, partition: int, partitions: int) -> int | None:
        return len(self._mine(partition, partitions)) * self.horizon_days

    def score(
        self, source: Source | None, partition: int, partitions: int, chunk_rows: int
    ) -> Iterator[ChunkResult]:
        stores = self._mine(partition, partitions)
        per_chunk = max(1, chunk_rows // self.horizon_days)
        for start in range(0, len(stores), per_chunk):
            frames, rejects = [], []
            for store in stores[start : start + per_chunk]:
                try:
                    frame = forecast(self.model_set.store_model(store), self.horizon_days)
                except Exception as exc:  # noqa: BLE001 - one store must never sink the batch
                    rejects.append(
                        {
                            "row_key": str(store),
                            "reason": f"store {store}: {type(exc).__name__}: {exc}".strip(),
                            "record": f'{{"store": {store}, "horizon_days": {self.horizon_days}}}',
                        }
                    )
                    continue
                frames.append(frame.assign(store=store))
            results = (
                pd.concat(frames, ignore_index=True)
                if frames
                else pd.DataFrame(columns=["store", *FORECAST_COLUMNS])
            )
            results["ds"] = pd.to_datetime(results["ds"]).dt.date
            results["open"] = results["open"].astype(bool)
            yield ChunkResult(
                results[["store", *FORECAST_COLUMNS]],
                pd.DataFrame(rejects, columns=["row_key", "reason", "record"]),
                len(results),
            )
