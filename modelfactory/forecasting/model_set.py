"""A trained model set on disk, loading one store lazily, and forecasting.

Layout of a model-set directory (what the registry logs as one artifact)::

    manifest.json          format, config, stores with their metadata and metrics,
                           failures, aggregate metrics, created_at
    stores/store_1.json    {"store", "regressors", "open_weekdays", "history_end",
                            ..., "prophet": <prophet.serialize.model_to_json text>}
    stores/store_2.json
    ...

A serving process calls :func:`load_store_model` for the one store a request names;
it reads that store's file only (not the manifest, not the other stores).

Future regressors. Promotions and holidays are unknown for a plain "next N days"
request. :func:`forecast` fills them by ``future_regressors``:

- ``"last_year"`` (default): each future day takes the value of the same weekday 52
  weeks earlier (364 days, so weekdays and Rossmann's fortnightly promo rhythm line
  up); a day missing from the history (the store was closed) gets 0.
- ``"none"``: no promotion and no holiday on any future day (a conservative floor).
- a DataFrame with ``ds`` and any of the regressor columns (a known promo plan);
  columns it lacks fall back to ``"last_year"``.

Closed days: models are trained on open days only. A future day whose weekday the store
was open on less than half the time in its last year (Sundays, for most stores) gets
``open = False`` and yhat/yhat_lower/yhat_upper = 0.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelfactory.errors import ModelFactoryError
from modelfactory.forecasting.factory import FactoryResult, quiet_prophet_logging

FORMAT = "modelfactory.prophet-model-set/v1"
MANIFEST = "manifest.json"
FORECAST_COLUMNS = ["ds", "yhat", "yhat_lower", "yhat_upper", "open"]


class ModelSetError(ModelFactoryError):
    """A model-set directory is missing, malformed, or lacks the requested store."""


@dataclass
class StoreModel:
    """One store's fitted Prophet model and what forecasting needs to know about it."""

    store: int
    model: Any  # prophet.Prophet
    regressors: list[str]
    open_weekdays: list[int]
    history_end: pd.Timestamp
    metrics: dict = field(default_factory=dict)


def _store_file(directory: Path, store: int) -> Path:
    return directory / "stores" / f"store_{int(store)}.json"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def save_model_set(
    directory: str | Path, result: FactoryResult, metadata: dict | None = None
) -> Path:
    """Write ``result`` as a model-set directory (a file per store + manifest); returns its path.

    ``metadata`` (e.g. data source, batch id, git sha) is stored in the manifest as is.
    The manifest is written last, so a directory with a manifest is complete.
    """
    directory = Path(directory)
    stores = {}
    for store, outcome in sorted(result.models.items()):
        record = {
            "store": store,
            "regressors": outcome.regressors,
            "open_weekdays": outcome.open_weekdays,
            "history_start": outcome.history_start,
            "history_end": outcome.history_end,
            "metrics": outcome.metrics,
        }
        _atomic_write(
            _store_file(directory, store), json.dumps({**record, "prophet": outcome.model_json})
        )
        stores[str(store)] = {
            **record,
            "file": str(_store_file(directory, store).relative_to(directory)),
        }
    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": result.config.to_dict(),
        "stores": stores,
        "failures": {str(k): v for k, v in result.failures.items()},
        "warnings": result.warnings,
        "metrics": result.metrics,
        "metadata": metadata or {},
    }
    path = directory / MANIFEST
    _atomic_write(path, json.dumps(manifest, indent=1, default=str))
    return path


def merge_model_sets(
    parts: Sequence[str | Path],
    directory: str | Path,
    failures: dict[int, str] | None = None,
    warnings: list[str] | None = None,
    metadata: dict | None = None,
) -> dict:
    """Merge the model sets of a sharded run (one per shard) into one set at ``directory``.

    Store files are copied as they are (never parsed); the manifest lists every store, the
    shards' failures plus ``failures`` (stores that never reached a shard: too little
    history, not in the data), and metrics aggregated over all stores. The parts must have
    been trained with one configuration and must not share a store. Raises
    :class:`~modelfactory.forecasting.factory.FactoryError` naming the failed stores when
    their share of all stores is above the configuration's ``max_failure_share``; nothing is
    written then. Returns the manifest.
    """
    from modelfactory.forecasting.config import ForecastConfig
    from modelfactory.forecasting.evaluation import aggregate_metrics
    from modelfactory.forecasting.factory import FactoryError

    if not parts:
        raise ModelSetError("no model sets to merge: the run trained no shard")
    directory = Path(directory)
    manifests = [(Path(part), read_manifest(part)) for part in parts]
    config = manifests[0][1]["config"]
    stores: dict[str, dict] = {}
    owner: dict[str, Path] = {}
    all_failures = {str(k): v for k, v in (failures or {}).items()}
    for part, manifest in manifests:
        if manifest["config"] != config:
            raise ModelSetError(
                f"{part}: trained with another configuration than {manifests[0][0]} "
                "(every shard of a run must use the same one)"
            )
        for store, record in manifest["stores"].items():
            if store in owner:
                raise ModelSetError(
                    f"store {store} is in two shards ({owner[store]} and {part}); "
                    "shards must not share stores"
                )
            owner[store], stores[store] = part, record
        all_failures.update(manifest.get("failures", {}))
    max_share = ForecastConfig.from_dict(config).max_failure_share
    total = len(stores) + len(all_failures)
    if total and len(all_failures) / total > max_share:
        raise FactoryError({int(k): v for k, v in all_failures.items()}, total, max_share)
    for store, record in sorted(stores.items(), key=lambda item: int(item[0])):
        target = directory / record["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(owner[store] / record["file"], target)
    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": config,
        "stores": dict(sorted(stores.items(), key=lambda item: int(item[0]))),
        "failures": dict(sorted(all_failures.items(), key=lambda item: int(item[0]))),
        "warnings": list(warnings or []) + [w for _, m in manifests for w in m.get("warnings", [])],
        "metrics": aggregate_metrics({int(s): r["metrics"] for s, r in stores.items()}),
        "metadata": {**(metadata or {}), "shards": len(parts)},
    }
    _atomic_write(directory / MANIFEST, json.dumps(manifest, indent=1, default=str))
    return manifest


def read_manifest(directory: str | Path) -> dict:
    """The manifest of a model set (stores, config, metrics, failures)."""
    path = Path(directory) / MANIFEST
    if not path.exists():
        raise ModelSetError(
            f"{directory}: not a model set (no {MANIFEST}); was training completed?"
        )
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ModelSetError(
            f"{path}: unknown format {manifest.get('format')!r}, expected {FORMAT!r}"
        )
    return manifest


def list_stores(directory: str | Path) -> list[int]:
    """Store ids that have a model in the set (from the file names; no JSON parsing)."""
    return sorted(
        int(p.stem.split("_", 1)[1]) for p in (Path(directory) / "stores").glob("store_*.json")
    )


def load_store_model(directory: str | Path, store: int) -> StoreModel:
    """Load one store's model from a model-set directory, reading only that store's file."""
    from prophet.serialize import model_from_json

    quiet_prophet_logging()
    path = _store_file(Path(directory), store)
    if not path.exists():
        if not (Path(directory) / MANIFEST).exists():
            raise ModelSetError(f"{directory}: not a model set (no {MANIFEST})")
        known = list_stores(directory)
        failures = read_manifest(directory).get("failures", {})
        why = f" (training failed: {failures[str(store)]})" if str(store) in failures else ""
        raise ModelSetError(
            f"store {store}: no model in {directory}{why}; the set has {len(known)} stores "
            f"({known[:5]}{'...' if len(known) > 5 else ''})"
        )
    record = json.loads(path.read_text())
    return StoreModel(
        store=int(record["store"]),
        model=model_from_json(record["prophet"]),
        regressors=list(record["regressors"]),
        open_weekdays=list(record["open_weekdays"]),
        history_end=pd.Timestamp(record["history_end"]),
        metrics=record.get("metrics", {}),
    )


def future_frame(
    store_model: StoreModel, horizon_days: int, future_regressors: str | pd.DataFrame = "last_year"
) -> pd.DataFrame:
    """The ``horizon_days`` days after the history ends, with regressors filled by the policy."""
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be at least 1, got {horizon_days}")
    ds = pd.date_range(
        store_model.history_end + pd.Timedelta(days=1), periods=horizon_days, freq="D"
    )
    future = pd.DataFrame({"ds": ds})
    plan = None
    if isinstance(future_regressors, pd.DataFrame):
        plan = future_regressors.assign(ds=pd.to_datetime(future_regressors["ds"])).set_index("ds")
        policy = "last_year"
    elif future_regressors in ("last_year", "none"):
        policy = future_regressors
    else:
        raise ValueError(
            "future_regressors must be 'last_year', 'none' or a DataFrame, "
            f"got {future_regressors!r}"
        )
    history = store_model.model.history.set_index("ds")
    for name in store_model.regressors:
        if plan is not None and name in plan.columns:
            values = plan[name].reindex(ds)
            missing = values.isna()
            if missing.any():
                raise ValueError(
                    f"future_regressors: column '{name}' has no value for "
                    f"{[f'{d:%Y-%m-%d}' for d in ds[missing.to_numpy()][:3]]}"
                )
            future[name] = values.to_numpy(dtype=float)
        elif policy == "last_year":
            # Prophet keeps history regressors standardised (binary ones are left as is).
            props = store_model.model.extra_regressors[name]
            past = history[name] * props["std"] + props["mu"]
            future[name] = (
                past.reindex(ds - pd.Timedelta(days=364)).fillna(0).round(6).to_numpy(dtype=float)
            )
        else:
            future[name] = 0.0
    return future


def forecast(
    store_model: StoreModel,
    horizon_days: int,
    future_regressors: str | pd.DataFrame = "last_year",
) -> pd.DataFrame:
    """Daily forecast after the end of the store's history: ds, yhat, yhat_lower, yhat_upper, open.

    See the module docstring for how future promotions/holidays and closed days are handled.
    """
    future = future_frame(store_model, horizon_days, future_regressors)
    predicted = store_model.model.predict(future)
    out = predicted[["ds", "yhat", "yhat_lower", "yhat_upper"]].copy()
    out["open"] = out["ds"].dt.dayofweek.isin(store_model.open_weekdays).to_numpy()
    for column in ("yhat", "yhat_lower", "yhat_upper"):
        # Sales are never negative; closed days sell nothing.
        out[column] = np.where(out["open"], out[column].clip(lower=0), 0.0)
    return out.reset_index(drop=True)
