"""The model factory: one Prophet model per store, trained in parallel, each store isolated.

Entry point: :func:`train_model_factory`. For every store it

1. splits off the last ``holdout_weeks`` weeks (:func:`~modelfactory.forecasting.split.time_split`),
2. picks the regressors that help for that store
   (:func:`~modelfactory.forecasting.features.select_regressors`),
3. fits Prophet on the training part and scores the holdout against the weekly
   seasonal-naive baseline (:mod:`modelfactory.forecasting.evaluation`),
4. optionally refits on the full history (what gets served), and
5. returns the model as Prophet JSON text (``model_to_json``), so nothing but strings
   and small dicts cross process boundaries.

Parallelism: processes (Prophet's Python side holds the GIL and each fit starts a
CmdStan subprocess). Stores are sent to workers in chunks so that a worker imports
Prophet once and IPC is amortised. ``backend="processes"`` uses
``concurrent.futures.ProcessPoolExecutor``; ``"loky"`` uses joblib; ``"sequential"``
runs in this process. A store that raises is recorded with its reason and the others
carry on; the run raises :class:`FactoryError` only when more than
``config.max_failure_share`` of the stores have no model.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from modelfactory.cores import usable_cores
from modelfactory.errors import ModelFactoryError
from modelfactory.forecasting.config import ForecastConfig
from modelfactory.forecasting.evaluation import aggregate_metrics, seasonal_naive, store_metrics
from modelfactory.forecasting.features import prophet_frame, select_regressors, split_by_store
from modelfactory.forecasting.split import StoreSplit, time_split

log = logging.getLogger(__name__)


class FactoryError(ModelFactoryError):
    """Too many stores failed to fit; ``failures`` maps store id to reason."""

    def __init__(self, failures: dict[int, str], total: int, max_share: float):
        self.failures = dict(failures)
        shown = "\n".join(f"  - store {s}: {r}" for s, r in list(sorted(failures.items()))[:20])
        more = f"\n  (and {len(failures) - 20} more)" if len(failures) > 20 else ""
        super().__init__(
            f"{len(failures)} of {total} stores have no model, more than the allowed "
            f"{max_share:.0%} (ForecastConfig.max_failure_share):\n{shown}{more}"
        )


@dataclass
class StoreOutcome:
    """What training one store produced; ``error`` is set (and ``model_json`` None) on failure."""

    store: int
    model_json: str | None = None
    regressors: list[str] = field(default_factory=list)
    open_weekdays: list[int] = field(default_factory=list)
    history_start: str | None = None
    history_end: str | None = None
    metrics: dict = field(default_factory=dict)
    error: str | None = None
    fit_seconds: float = 0.0


@dataclass
class FactoryResult:
    """All stores' outcomes: ``models`` (succeeded), ``failures`` (store -> reason), metrics."""

    config: ForecastConfig
    models: dict[int, StoreOutcome]
    failures: dict[int, str]
    warnings: list[str]
    metrics: dict  # aggregate, see evaluation.aggregate_metrics
    wall_seconds: float = 0.0

    @property
    def store_metrics(self) -> dict[int, dict]:
        return {s: o.metrics for s, o in self.models.items()}


def quiet_prophet_logging() -> None:
    """Silence cmdstanpy's per-fit INFO lines and Prophet's chatter (in every worker too)."""
    for name in ("cmdstanpy", "prophet", "prophet.models", "prophet.forecaster"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.ERROR)
        logger.propagate = False
        # cmdstanpy installs its own INFO handler (and resets the level) unless the
        # logger already has a handler when it first looks.
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())
        for handler in logger.handlers:
            handler.setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)


def open_weekdays(history: pd.DataFrame) -> list[int]:
    """Weekdays (Monday=0) the store was open on at least half the time in its last year."""
    end = history["ds"].max()
    start = max(history["ds"].min(), end - pd.Timedelta(days=363))
    calendar = pd.date_range(start, end, freq="D").dayofweek
    recent = history.loc[history["ds"] >= start, "ds"].dt.dayofweek
    possible = np.bincount(calendar, minlength=7)
    seen = np.bincount(recent, minlength=7)
    return [d for d in range(7) if possible[d] and seen[d] / possible[d] >= 0.5]


def _new_prophet(config: ForecastConfig, regressors: list[str]):
    from prophet import Prophet

    model = Prophet(
        yearly_seasonality=config.yearly_seasonality,
        weekly_seasonality=config.weekly_seasonality,
        daily_seasonality=False,
        interval_width=config.interval_width,
        seasonality_mode=config.seasonality_mode,
        changepoint_prior_scale=config.changepoint_prior_scale,
        uncertainty_samples=config.uncertainty_samples,
    )
    for name in regressors:
        model.add_regressor(name)
    return model


def fit_store(store: int, split: StoreSplit, config: ForecastConfig) -> StoreOutcome:
    """Train, evaluate and (optionally) refit one store. Never raises: errors go to ``error``."""
    from prophet.serialize import model_to_json

    started = time.perf_counter()
    outcome = StoreOutcome(store=store)
    try:
        regressors = select_regressors(split.train, config)
        outcome.regressors = regressors
        columns = ["ds", "y", *regressors]
        model = _new_prophet(config, regressors)
        model.fit(split.train[columns])
        # Evaluation uses the holdout's real promo/holiday calendar: promotions are
        # planned ahead, so a planner knows them when asking for a forecast.
        # Point forecasts only: skipping the uncertainty simulation halves the cost.
        model.uncertainty_samples = 0
        predicted = model.predict(split.holdout[["ds", *regressors]])["yhat"].to_numpy()
        model.uncertainty_samples = config.uncertainty_samples
        baseline = seasonal_naive(split.train, split.holdout["ds"])
        outcome.metrics = store_metrics(split.holdout["y"].to_numpy(), predicted, baseline)
        history = pd.concat([split.train, split.holdout], ignore_index=True)
        if config.refit_full_history:
            model = _new_prophet(config, regressors)
            model.fit(history[columns])
        outcome.model_json = model_to_json(model)
        outcome.open_weekdays = open_weekdays(history)
        outcome.history_start = f"{history['ds'].min():%Y-%m-%d}"
        outcome.history_end = (
            f"{(history if config.refit_full_history else split.train)['ds'].max():%Y-%m-%d}"
        )
    except Exception as exc:  # noqa: BLE001 - one store must never sink the others
        outcome.error = f"{type(exc).__name__}: {exc}".strip()
        outcome.model_json = None
    outcome.fit_seconds = time.perf_counter() - started
    return outcome


def _fit_chunk(chunk: list[tuple[int, StoreSplit]], config: ForecastConfig) -> list[StoreOutcome]:
    quiet_prophet_logging()
    return [fit_store(store, split, config) for store, split in chunk]


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def default_jobs() -> int:
    """The cores this process may use (:func:`modelfactory.cores.usable_cores`): a pod limited
    to 2 CPUs on a 32-core node runs 2 workers, not 32 sharing its quota."""
    return usable_cores()


def fit_stores(
    splits: dict[int, StoreSplit],
    config: ForecastConfig,
    n_jobs: int | None = None,
    backend: str = "processes",
    chunk_size: int | None = None,
) -> list[StoreOutcome]:
    """Fit every store in ``splits``; returns outcomes in store order."""
    quiet_prophet_logging()
    items = sorted(splits.items())
    n_jobs = n_jobs or default_jobs()
    if backend == "sequential" or n_jobs == 1 or len(items) <= 1:
        return _fit_chunk(items, config)
    # Several chunks per worker keep both cores busy to the end; a chunk of a few
    # stores amortises pickling and the Prophet import.
    chunk_size = chunk_size or max(1, min(8, math.ceil(len(items) / (n_jobs * 4))))
    chunks = _chunks(items, chunk_size)
    if backend == "loky":
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs, backend="loky")(
            delayed(_fit_chunk)(c, config) for c in chunks
        )
    elif backend == "processes":
        results = []
        with ProcessPoolExecutor(max_workers=n_jobs, initializer=quiet_prophet_logging) as pool:
            futures = [pool.submit(_fit_chunk, chunk, config) for chunk in chunks]
            for chunk, future in zip(chunks, futures, strict=True):
                try:
                    results.append(future.result())
                except Exception as exc:  # noqa: BLE001 - e.g. a worker killed by the OOM killer
                    reason = f"worker process failed: {type(exc).__name__}: {exc}".strip()
                    results.append([StoreOutcome(store=store, error=reason) for store, _ in chunk])
    else:
        raise ValueError(f"backend must be 'processes', 'loky' or 'sequential', got {backend!r}")
    return [outcome for chunk in results for outcome in chunk]


def keep_fitted(
    outcomes: Iterable[StoreOutcome], failures: dict[int, str], max_failure_share: float
) -> dict[int, StoreOutcome]:
    """The stores that fitted; the others are added to ``failures`` (store id -> reason).

    Raises :class:`FactoryError` naming the failed stores when their share of all
    stores is above ``max_failure_share``.
    """
    models = {}
    for outcome in outcomes:
        if outcome.error:
            failures[outcome.store] = outcome.error
            log.warning("store %s failed to fit: %s", outcome.store, outcome.error)
        else:
            models[outcome.store] = outcome
    total = len(models) + len(failures)
    if total and len(failures) / total > max_failure_share:
        raise FactoryError(failures, total, max_failure_share)
    return models


def train_model_factory(
    sales: pd.DataFrame,
    config: ForecastConfig | None = None,
    stores: Iterable[int] | None = None,
    n_jobs: int | None = None,
    backend: str = "processes",
) -> FactoryResult:
    """Train one Prophet model per store of a validated Rossmann frame.

    ``stores`` restricts the run to those ids (the CLI's ``--stores``); an id with no
    rows is reported as a failure. Returns a :class:`FactoryResult`; raises
    :class:`FactoryError` when more than ``config.max_failure_share`` of the stores
    fail (split skips included).
    """
    config = config or ForecastConfig()
    started = time.perf_counter()
    frame = prophet_frame(sales)
    failures: dict[int, str] = {}
    if stores is not None:
        wanted = sorted({int(s) for s in stores})
        present = set(frame["Store"].unique().tolist())
        for store in wanted:
            if store not in present:
                failures[store] = "no open days with sales in the data"
        frame = frame[frame["Store"].isin(wanted)]
    per_store = split_by_store(frame)
    split = time_split(per_store, config.holdout_weeks, config.min_train_days)
    failures.update(split.skipped)
    outcomes = fit_stores(split.stores, config, n_jobs=n_jobs, backend=backend)
    models = keep_fitted(outcomes, failures, config.max_failure_share)
    return FactoryResult(
        config=config,
        models=models,
        failures=dict(sorted(failures.items())),
        warnings=split.warnings,
        metrics=aggregate_metrics({s: o.metrics for s, o in models.items()}),
        wall_seconds=time.perf_counter() - started,
    )
