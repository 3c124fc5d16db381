"""A PNG scatter of one batch: distance against time, outliers marked, coloured by cluster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def plot_batch(
    rides: pd.DataFrame, path: str | Path, title: str | None = None, max_points: int = 50_000
) -> Path:
    """Write a scatter of ``ride_dist`` vs ``ride_time`` (log scales) with outliers as red crosses.

    ``rides`` is a detection result (``cluster``, ``is_outlier``). Inliers beyond
    ``max_points`` are sampled (every outlier is drawn). Uses the Agg backend: no display needed.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    inliers = rides[~rides["is_outlier"]]
    outliers = rides[rides["is_outlier"]]
    if len(inliers) > max_points:
        inliers = inliers.sample(max_points, random_state=0)
    figure = Figure(figsize=(8, 6), dpi=100)
    axes = figure.add_subplot()
    floor = 1e-2  # log axes: zero-distance rides drawn at the floor
    axes.scatter(
        np.maximum(inliers["ride_dist"], floor),
        np.maximum(inliers["ride_time"], floor),
        c=inliers["cluster"],
        cmap="viridis",
        s=6,
        alpha=0.6,
        label=f"normal ({int((~rides['is_outlier']).sum())})",
    )
    axes.scatter(
        np.maximum(outliers["ride_dist"], floor),
        np.maximum(outliers["ride_time"], floor),
        c="red",
        marker="x",
        s=30,
        label=f"outlier ({len(outliers)})",
    )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("ride distance (miles)")
    axes.set_ylabel("ride time (minutes)")
    if title is None and "batch_date" in rides.columns and len(rides):
        title = f"rides on {rides['batch_date'].iloc[0]}"
    axes.set_title(title or "rides")
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path
