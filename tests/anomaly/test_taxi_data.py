"""The TLC loader and the founding simulator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelfactory.data.taxi import load_taxi_rides, rides_from_tlc, simulate_rides
from modelfactory.errors import DataValidationError
from tests.support.data import TAXI_JANUARY, shared_file


def test_real_january_day():
    load = load_taxi_rides(shared_file(TAXI_JANUARY), batch_date="2023-01-15")
    rides = load.rides
    assert load.source_rows == 68211
    assert load.dropped["non-positive ride time (dropoff not after pickup)"] == 61
    assert len(rides) == 1776 and (rides["batch_date"] == pd.Timestamp("2023-01-15").date()).all()
    assert (rides["ride_time"] > 0).all() and (rides["ride_dist"] >= 0).all()
    assert np.allclose(rides["ride_speed"], rides["ride_dist"] / rides["ride_time"] * 60)
    assert rides["ride_time"].median() == pytest.approx(11.5, abs=2)
    assert "1776 rides kept of 68211 rows" in load.summary()


def test_impossible_rows_are_dropped_and_counted(tmp_path):
    frame = pd.DataFrame(
        {
            "lpep_pickup_datetime": [
                "2023-01-01 10:00:00",
                None,
                "2023-01-01 10:00:00",
                "2023-01-01 10:00:00",
                "2023-01-01 10:00:00",
            ],
            "lpep_dropoff_datetime": [
                "2023-01-01 10:30:00",
                "2023-01-01 10:30:00",
                "2023-01-01 09:00:00",
                "2023-01-01 10:10:00",
                "2023-01-01 10:06:00",
            ],
            "trip_distance": [5.0, 1.0, 1.0, -2.0, 0.0],
        }
    )
    path = tmp_path / "trips.parquet"
    frame.to_parquet(path)
    load = load_taxi_rides(path)
    assert load.rides["ride_id"].tolist() == [0, 4]  # the zero-distance ride is kept
    assert load.rides["ride_speed"].tolist() == [10.0, 0.0]
    assert load.dropped == {
        "null or unparseable pickup/dropoff time": 1,
        "null or non-numeric trip_distance": 0,
        "non-positive ride time (dropoff not after pickup)": 1,
        "negative trip_distance": 1,
    }


def test_missing_columns_are_named():
    with pytest.raises(DataValidationError, match=r"missing column\(s\) \['trip_distance'\]"):
        rides_from_tlc(pd.DataFrame({"lpep_pickup_datetime": [1], "lpep_dropoff_datetime": [2]}))


def test_simulator_matches_the_founding_text():
    rides = simulate_rides(seed=3)
    assert len(rides) == 400
    assert rides["group"].value_counts().to_dict() == {
        "normal": 370,
        "long": 10,
        "fast": 10,
        "slow": 10,
    }
    speeds = rides.groupby("group")["ride_speed"].mean()
    assert speeds["fast"] > speeds["normal"] > speeds["slow"]
    assert rides.loc[rides["group"] == "normal", "ride_dist"].between(0, 10).all()
    assert np.allclose(rides["ride_time"], rides["ride_dist"] / rides["ride_speed"] * 60)
    pd.testing.assert_frame_equal(simulate_rides(seed=3), rides)
