"""Anomaly steps: the day's ride features, DBSCAN outliers with metrics in MLflow, flags to SQL.

A daily batch trains nothing to register: each day's rides are standardised and
clustered on their own. The MLflow run of a batch holds the parameters (eps,
min_samples, ...), the metrics (clusters, noise, silhouette) and the PNG scatter;
the staging table (:mod:`modelfactory.anomaly.staging`) gets one flag per ride,
replacing that batch date's rows in one transaction.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from modelfactory.anomaly import ANOMALY
from modelfactory.data.io import read_dataset, write_dataset
from modelfactory.data.taxi import RIDE_FEATURES
from modelfactory.errors import DataValidationError
from modelfactory.sql import shown_url

# mlflow, scikit-learn, matplotlib and SQLAlchemy are imported by the step that needs them:
# each step is a fresh process, and mlflow alone takes seconds to import.

EXPERIMENT = ANOMALY.model_name


def default_staging_url() -> str:
    from modelfactory.config import get_settings

    return f"sqlite:///{get_settings().home / 'staging.db'}"


def features(data_path: str, out_path: str, batch_date: str = "") -> dict:
    """The rides of one batch date (``batch_date``, or the day most rides are from) and their
    features.

    A file holding several days is cut to the batch date; the rest is counted, not scored.
    """
    rides = read_dataset(data_path)
    days = rides["batch_date"].astype(str)
    if batch_date:
        batch_date = pd.Timestamp(batch_date).strftime("%Y-%m-%d")
        if not (days == batch_date).any():
            raise DataValidationError(
                data_path,
                [
                    f"column 'batch_date': no rides on {batch_date}; the data has "
                    f"{', '.join(sorted(days.unique())[:5])}"
                ],
            )
    else:
        batch_date = str(days.value_counts().idxmax())
    day = rides[days == batch_date]
    columns = ["ride_id", "batch_date", *RIDE_FEATURES]
    write_dataset(day[columns].reset_index(drop=True), out_path)
    return {
        "batch_date": batch_date,
        "rides": len(day),
        "other_days_rides": int(len(rides) - len(day)),
    }


def detect(
    features_path: str,
    scored_path: str,
    config=None,
    tracking_uri: str = "",
    batch_id: str = "",
    source: str = "",
    experiment: str = EXPERIMENT,
) -> dict:
    """DBSCAN on the standardised features; metrics, parameters and the scatter go to a new MLflow
    run.

    ``config`` is a :class:`~modelfactory.anomaly.detection.DetectionConfig` (default settings
    when None).
    """
    import mlflow

    from modelfactory.anomaly.detection import DetectionConfig, detect_outliers
    from modelfactory.anomaly.plot import plot_batch
    from modelfactory.registry import resolve_tracking_uri

    config = config or DetectionConfig()
    rides = read_dataset(features_path)
    result = detect_outliers(rides, config)
    write_dataset(result.rides, scored_path)
    batch_date = str(rides["batch_date"].iloc[0]) if len(rides) else ""
    mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"{experiment}-{batch_date}") as run:
        mlflow.set_tags(
            {
                "modelfactory.use_case": "anomaly",
                "modelfactory.batch_id": batch_id,
                "modelfactory.source": source,
                "modelfactory.batch_date": batch_date,
            }
        )
        mlflow.log_params(config.to_dict())
        numeric = {
            k: float(v)
            for k, v in result.metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and v is not None
        }
        mlflow.log_metrics(numeric)
        mlflow.set_tag("detection.method", str(result.metrics.get("method", "")))
        if result.metrics.get("silhouette") is None:
            mlflow.set_tag("detection.silhouette", "undefined (fewer than 2 clusters)")
        with tempfile.TemporaryDirectory() as tmp:
            png = plot_batch(result.rides, Path(tmp) / f"rides-{batch_date}.png")
            mlflow.log_artifact(str(png), "plots")
    return {"run_id": run.info.run_id, "batch_date": batch_date, **result.metrics}


def write_flags(scored_path: str, staging_url: str, batch_date: str, run_id: str) -> dict:
    """One flag per ride into the staging table, replacing ``batch_date``'s rows."""
    from modelfactory.anomaly.staging import write_outliers

    url = staging_url or default_staging_url()
    scored = read_dataset(scored_path)
    rows = write_outliers(url, scored, batch_date, run_id)
    return {
        "batch_date": batch_date,
        "rows": rows,
        "outliers": int(scored["is_outlier"].sum()),
        "staging_url": shown_url(url),
        "run_id": run_id,
    }
