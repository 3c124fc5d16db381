"""Batch anomaly detection on taxi rides: DBSCAN on standardised distance, time and speed,
an outlier flag per ride written to a staging SQL table, a daily schedule, a plot.

``ANOMALY`` describes the use case. A daily run (what the KFP components call)::

    from modelfactory.anomaly.detection import DetectionConfig, detect_outliers
    from modelfactory.anomaly.plot import plot_batch
    from modelfactory.anomaly.staging import write_outliers
    from modelfactory.data.taxi import load_taxi_rides

    load = load_taxi_rides("green_tripdata_2023-01.csv.gz", batch_date="2023-01-15")
    result = detect_outliers(load.rides, DetectionConfig(eps=0.5, min_samples=10))
    write_outliers("sqlite:///staging.db", result.rides, "2023-01-15", run_id="run-123")
    plot_batch(result.rides, "rides-2023-01-15.png")
"""

from modelfactory.data import taxi
from modelfactory.use_case import DataFormat, UseCase

# Anomaly detection registers no model: each daily batch is clustered on its own.
ANOMALY = UseCase(
    name="anomaly",
    model_name="taxi-anomaly",
    data=DataFormat(
        load=taxi.load_rides,
        validate=taxi.validate_rides,
        generate=taxi.generate_rides,
        write=taxi.write_rides,
        file_name="rides.csv",
    ),
    synthetic_rows=400,  # the founding text's 370 normal rides + 3 groups of 10 anomalies
)
