"""How the store-sales forecaster is monitored (its
:class:`~modelfactory.use_case.MonitoringSpec`).

- Compared rows: one per forecast open day (a request for 42 days is 42 rows), its ``yhat``
  (prediction drift). A request's inputs (a store and a horizon) say what planners asked, not
  what the stores sell, so they are not compared.
- Reference: for each forecast day, the same store's sales on the same weekday a year before,
  from the champion's training data: the same stores, in the window's proportions, and the same
  season. Compared by the normed Wasserstein distance, threshold 0.3 (``OUTPUT_TEST``: point
  forecasts are smoother than sales, which binned methods take for drift; ADR 0008).
- Ground truth: the sales that happened, either a list aligned with the forecast's days (``null``
  for a day not known yet) or a mapping from ``YYYY-MM-DD`` to sales.
- Realized performance: MAPE over labelled open days with sales (as the holdout's), per store
  and as the mean over stores (the gate's ``mape``); a store whose realized MAPE exceeds its
  holdout MAPE by more than the policy's limit is named.
- Retraining rows: none (a forecast carries no promotions or holidays to learn from): a
  forecaster's retraining names its data source.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from modelfactory.monitoring.reference import Reference, VersionFigures

STORE_METRICS = "evaluation/store_metrics.csv"  # per-store holdout figures of a training run
YEAR = 364  # days: the same weekday a year before
# Point forecasts are smoother than the sales they forecast, so binned methods (PSI) flag honest
# forecasts; the normed Wasserstein distance to last year's sales does not (ADR 0008).
OUTPUT_TEST = ("wasserstein", 0.3)


def check_actual(value: Any) -> list | dict:
    """Observed daily sales: a list (aligned with the forecast's days) or a date → sales map."""
    if isinstance(value, list):
        if not value:
            raise ValueError("expected daily sales, got an empty list")
        return [_sales(day, f"[{i}]") for i, day in enumerate(value)]
    if isinstance(value, dict):
        if not value:
            raise ValueError("expected daily sales by date, got an empty object")
        checked = {}
        for day, sales in value.items():
            try:
                dt.date.fromisoformat(str(day))
            except ValueError:
                raise ValueError(f"[{day!r}]: expected a date YYYY-MM-DD") from None
            checked[str(day)] = _sales(sales, f"[{day!r}]")
        return checked
    raise ValueError(
        "expected the sales of the forecast's days: a list of numbers (null for a day not "
        'known yet) or {"YYYY-MM-DD": sales}'
    )


def _sales(value: Any, where: str) -> float | None:
    if value is None:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: expected sales >= 0 or null, got {value!r}")
    return float(value)


def forecast_days(window: pd.DataFrame) -> pd.DataFrame:
    """One row per forecast open day: store, ds, yhat."""
    stores, days, values = [], [], []
    for store, ds, yhat, is_open in zip(
        window["store"], window["ds"], window["yhat"], window["open"], strict=True
    ):
        if not isinstance(yhat, list):
            continue
        for i, value in enumerate(yhat):
            if isinstance(is_open, list) and i < len(is_open) and not is_open[i]:
                continue
            stores.append(store)
            days.append(ds[i] if isinstance(ds, list) and i < len(ds) else None)
            values.append(value)
    return pd.DataFrame(
        {"store": np.array(stores, dtype=float), "ds": days, "yhat": np.array(values, dtype=float)}
    )


def reference_rows(reference: Reference) -> pd.DataFrame:
    """For each compared forecast day, the same store's sales on the same weekday a year before
    (``ds`` - 364 days) from the champion's training data, as ``yhat`` (``store`` says whose);
    days without such a sale in the history are left out."""
    days = forecast_days(reference.window)
    training = reference.training
    if days.empty or training.empty:
        return pd.DataFrame(
            {"store": pd.Series([], dtype=float), "yhat": pd.Series([], dtype=float)}
        )
    sales = pd.DataFrame(
        {
            "store": training["Store"].astype(float).to_numpy(),
            "ds": pd.to_datetime(training["ds"]).to_numpy(),
            "yhat": training["y"].astype(float).to_numpy(),
        }
    )
    year_before = pd.DataFrame(
        {"store": days["store"], "ds": pd.to_datetime(days["ds"]) - pd.Timedelta(days=YEAR)}
    )
    return year_before.merge(sales, on=["store", "ds"], how="inner")[["store", "yhat"]]


def labelled_days(labelled: pd.DataFrame) -> pd.DataFrame:
    """(store, ds, yhat, actual) for each forecast day with observed sales."""
    rows = []
    for store, ds, yhat, actual in zip(
        labelled["store"], labelled["ds"], labelled["yhat"], labelled["actual"], strict=True
    ):
        if not isinstance(ds, list) or not isinstance(yhat, list):
            continue
        for i, (day, forecast) in enumerate(zip(ds, yhat, strict=False)):
            observed = actual.get(day) if isinstance(actual, dict) else None
            if isinstance(actual, list) and i < len(actual):
                observed = actual[i]
            if observed is not None:
                rows.append((int(store), day, float(forecast), float(observed)))
    return pd.DataFrame(rows, columns=["store", "ds", "yhat", "actual"])


def performance(
    labelled: pd.DataFrame, figures: VersionFigures, max_drop: float
) -> tuple[dict[str, float], dict[str, str]]:
    """Realized MAPE per store and across stores; stores whose MAPE grew beyond ``max_drop``."""
    from modelfactory.forecasting.evaluation import error_terms

    days = labelled_days(labelled)
    per_store = {
        int(str(store)): error_terms(group["actual"].to_numpy(), group["yhat"].to_numpy())
        for store, group in days.groupby("store")
    }
    mapes = {s: t["mape"] for s, t in per_store.items() if t["n"]}
    if not mapes:
        return {"mape": float("nan")}, {}
    realized = {
        "mape": float(np.mean(list(mapes.values()))),
        "median_mape": float(np.median(list(mapes.values()))),
        **{f"store_{s}_mape": m for s, m in sorted(mapes.items())},
    }
    holdout = _holdout_store_mape(figures)
    flagged = {}
    for store, mape in sorted(mapes.items()):
        before = holdout.get(store)
        if before is not None and mape - before > max_drop:
            flagged[f"store {store}"] = (
                f"realized MAPE {mape:.3f} on {per_store[store]['n']} days vs {before:.3f} on "
                f"the holdout (+{mape - before:.3f} > {max_drop:g})"
            )
    return realized, flagged


def _holdout_store_mape(figures: VersionFigures) -> Mapping[int, float]:
    try:
        table = pd.read_csv(figures.artifact(STORE_METRICS))
    except Exception:  # a run without per-store figures: nothing to compare stores with
        return {}
    return {int(s): float(m) for s, m in zip(table["store"], table["mape"], strict=True)}
