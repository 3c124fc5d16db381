"""Holdout metrics per store and across stores, and the seasonal-naive baseline.

Baseline: the standard weekly seasonal-naive forecast, ``yhat(t) = y(t - 7 days)`` for
a one-step view, extended over a multi-week holdout the usual way (Hyndman's
``snaive``): every holdout day gets the sales of the same weekday in the *last
training week* it has. Rossmann stores close on some days, so for each weekday we take
the most recent open training day with that weekday.

Metrics (holdout, open days with Sales > 0 only, so MAPE is defined):

- per store: ``mape`` (mean of |y - yhat| / y, as a fraction, not percent), ``rmse``.
- aggregate: ``mean_mape`` = unweighted mean of store MAPEs (each store counts once,
  whatever its size); ``median_mape``; ``pooled_rmse`` = sqrt of the mean squared error
  over every (store, day) pair pooled (big stores weigh more, as in money terms);
  ``share_better`` = share of stores where Prophet's MAPE beats the baseline's.

A store's figures keep the holdout forecast they were computed from (``yhat``, one value per
holdout day in the holdout's order): the gate later compares versions on some of those days only
(:func:`mean_store_mape`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def seasonal_naive(train: pd.DataFrame, holdout_ds: pd.Series) -> np.ndarray:
    """Weekly seasonal-naive predictions for ``holdout_ds`` from a store's training frame."""
    last_by_weekday = (
        train.assign(weekday=train["ds"].dt.dayofweek)
        .sort_values("ds")
        .groupby("weekday")["y"]
        .last()
    )
    fallback = float(train["y"].tail(7).mean()) if len(train) else 0.0
    weekdays = pd.to_datetime(holdout_ds).dt.dayofweek
    return weekdays.map(last_by_weekday).fillna(fallback).to_numpy(dtype=float)


def error_terms(y: np.ndarray, yhat: np.ndarray) -> dict:
    """Sums needed for per-store and pooled metrics (over days with y > 0)."""
    y = np.asarray(y, dtype=float)
    yhat = np.asarray(yhat, dtype=float)
    mask = y > 0
    err = yhat[mask] - y[mask]
    n = int(mask.sum())
    return {
        "n": n,
        "sse": float(np.sum(err**2)),
        "mape": float(np.mean(np.abs(err) / y[mask])) if n else float("nan"),
        "rmse": float(np.sqrt(np.mean(err**2))) if n else float("nan"),
    }


def store_metrics(y, yhat_model, yhat_baseline) -> dict:
    """One store's n, mape, rmse, sse and baseline_mape, baseline_rmse, baseline_sse, and the
    model's forecast of each holdout day (``yhat``)."""
    model = error_terms(y, yhat_model)
    base = error_terms(y, yhat_baseline)
    return {
        "yhat": [round(float(v), 2) for v in np.asarray(yhat_model, dtype=float)],
        "n": model["n"],
        "mape": model["mape"],
        "rmse": model["rmse"],
        "sse": model["sse"],
        "baseline_mape": base["mape"],
        "baseline_rmse": base["rmse"],
        "baseline_sse": base["sse"],
    }


def aggregate_metrics(per_store: dict[int, dict]) -> dict:
    """Across stores: mean/median MAPE, pooled RMSE, for the model and the baseline."""
    rows = [m for m in per_store.values() if m.get("n", 0) > 0]
    if not rows:
        return {"stores": 0}
    n = sum(m["n"] for m in rows)
    mape = np.array([m["mape"] for m in rows])
    base_mape = np.array([m["baseline_mape"] for m in rows])
    return {
        "stores": len(rows),
        "days": n,
        "mean_mape": float(mape.mean()),
        "median_mape": float(np.median(mape)),
        "pooled_rmse": float(np.sqrt(sum(m["sse"] for m in rows) / n)),
        "baseline_mean_mape": float(base_mape.mean()),
        "baseline_median_mape": float(np.median(base_mape)),
        "baseline_pooled_rmse": float(np.sqrt(sum(m["baseline_sse"] for m in rows) / n)),
        "share_better": float(np.mean(mape < base_mape)),
    }


def store_mapes(stores, y, yhat) -> pd.Series:
    """Each store's MAPE over its days with sales in any set of (store, day) rows (a negative
    forecast counts as 0), by store."""
    frame = pd.DataFrame(
        {"store": np.asarray(stores), "y": np.asarray(y, float), "yhat": np.asarray(yhat, float)}
    )
    frame = frame[frame["y"] > 0]
    error = (frame["yhat"].clip(lower=0) - frame["y"]).abs() / frame["y"]
    return error.groupby(frame["store"]).mean()


def mean_store_mape(stores, y, yhat) -> tuple[float, int]:
    """The gate's MAPE over any set of (store, day) rows: the mean of :func:`store_mapes`, and how
    many days with sales there were."""
    days = int((np.asarray(y, float) > 0).sum())
    return (float(store_mapes(stores, y, yhat).mean()) if days else float("nan")), days


def mape_difference_error(stores, y, new, old) -> float:
    """The standard error of ``mean_store_mape(new) - mean_store_mape(old)`` on the same rows: of
    the mean of the stores' differences (0 with fewer than two stores)."""
    differences = store_mapes(stores, y, new) - store_mapes(stores, y, old)
    if len(differences) < 2:
        return 0.0
    return float(differences.std(ddof=1) / np.sqrt(len(differences)))
