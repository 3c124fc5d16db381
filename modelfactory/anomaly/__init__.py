"""Batch anomaly detection on taxi rides: DBSCAN on standardised distance, time and speed,
an outlier flag per ride written to a staging SQL table, a daily schedule, a plot.

Typical daily run (what the KFP component / CLI calls)::

    from modelfactory.data.taxi import load_taxi_rides
    from modelfactory.anomaly import DetectionConfig, detect_outliers, write_outliers, plot_batch

    load = load_taxi_rides("green_tripdata_2023-01.csv.gz", batch_date="2023-01-15")
    result = detect_outliers(load.rides, DetectionConfig(eps=0.5, min_samples=10))
    write_outliers("sqlite:///staging.db", result.rides, "2023-01-15", run_id="run-123")
    plot_batch(result.rides, "rides-2023-01-15.png")
"""

from modelfactory.anomaly.detection import (
    DetectionConfig,
    DetectionResult,
    dbscan_labels,
    detect_outliers,
    label_agreement,
    standardize,
)
from modelfactory.anomaly.plot import plot_batch
from modelfactory.anomaly.schedule import DailySchedule
from modelfactory.anomaly.staging import read_outliers, write_outliers

__all__ = [
    "DailySchedule",
    "DetectionConfig",
    "DetectionResult",
    "dbscan_labels",
    "detect_outliers",
    "label_agreement",
    "plot_batch",
    "read_outliers",
    "standardize",
    "write_outliers",
]
