"""Raw files of the forecasting and anomaly use cases: round trips, and validation naming column
and rows."""

from __future__ import annotations

import pandas as pd
import pytest

from modelfactory.data import taxi
from modelfactory.errors import DataValidationError
from modelfactory.steps.data import ingest, validate


def test_generated_rides_round_trip_through_ingest_and_validate(tmp_path):
    ingest("anomaly", "", str(tmp_path / "raw"), n_synthetic_rows=400, seed=1)
    summary = validate("anomaly", str(tmp_path / "raw"), str(tmp_path / "rides.parquet"))
    rides = pd.read_parquet(tmp_path / "rides.parquet")
    assert summary["rows"] == 400 and rides["ride_id"].is_unique
    assert set(rides["batch_date"]) == {"2023-01-01"}


def test_tlc_trip_records_become_rides(tmp_path):
    path = tmp_path / "trips.csv"
    pd.DataFrame(
        {
            "lpep_pickup_datetime": ["2023-01-01 10:00:00", "2023-01-01 11:00:00"],
            "lpep_dropoff_datetime": ["2023-01-01 10:30:00", "2023-01-01 10:00:00"],
            "trip_distance": [5.0, 1.0],
        }
    ).to_csv(path, index=False)
    rides = taxi.validate_rides(taxi.load_rides(path), str(path))
    assert len(rides) == 1 and rides["ride_speed"].iloc[0] == pytest.approx(10.0)


def test_bad_rides_name_the_column_and_rows():
    frame = taxi.generate_rides(40, seed=0)
    frame.loc[[2, 5], "ride_speed"] = float("nan")
    with pytest.raises(DataValidationError, match=r"'ride_speed': empty value in rows 3, 6"):
        taxi.validate_rides(frame, "rides.csv")
    with pytest.raises(DataValidationError, match="missing column"):
        taxi.validate_rides(frame.drop(columns="ride_dist"), "rides.csv")


def test_generated_sales_round_trip(tmp_path):
    ingest("forecasting", "", str(tmp_path / "raw"), n_synthetic_rows=2000, seed=3)
    validate("forecasting", str(tmp_path / "raw"), str(tmp_path / "sales.parquet"))
    sales = pd.read_parquet(tmp_path / "sales.parquet")
    assert sorted(sales["Store"].unique()) == [1, 2]
