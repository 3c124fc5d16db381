"""A PNG of one store: recent sales history, the forecast and its interval (matplotlib Agg, no
display)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def plot_forecast(
    history: pd.DataFrame,
    forecast: pd.DataFrame,
    path: str | Path,
    title: str,
    history_days: int = 180,
) -> Path:
    """``history``: ds, y (the fitted sales); ``forecast``: ds, yhat, yhat_lower,
    yhat_upper[, open].

    Shows the last ``history_days`` days of history so the forecast is readable; closed
    days (yhat 0) are left out of the forecast line rather than drawn as dips to zero.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recent = history[history["ds"] > history["ds"].max() - pd.Timedelta(days=history_days)]
    shown = forecast[forecast["open"]] if "open" in forecast.columns else forecast
    figure = Figure(figsize=(10, 5), dpi=100)
    axes = figure.add_subplot()
    axes.plot(recent["ds"], recent["y"], ".", color="black", markersize=3, label="sales (history)")
    axes.fill_between(
        shown["ds"],
        shown["yhat_lower"],
        shown["yhat_upper"],
        color="tab:blue",
        alpha=0.25,
        label="interval",
    )
    axes.plot(shown["ds"], shown["yhat"], "-", color="tab:blue", linewidth=1.2, label="forecast")
    axes.axvline(history["ds"].max(), color="grey", linestyle=":", linewidth=1)
    axes.set_title(title)
    axes.set_ylabel("sales")
    axes.legend(loc="upper left")
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path
