"""Taxi rides for batch anomaly detection: the NYC TLC green-trip loader and the founding simulator.

Each ride becomes ``ride_id, batch_date, pickup_datetime, ride_dist`` (miles),
``ride_time`` (minutes) and ``ride_speed`` (miles per hour).

- :func:`load_taxi_rides` reads TLC green trip records (CSV, CSV.gz or Parquet, path or
  URL; columns ``lpep_pickup_datetime``, ``lpep_dropoff_datetime``, ``trip_distance``),
  drops rows that cannot describe a ride and says how many it dropped and why.
- :func:`simulate_rides` is the founding text's simulator: 370 normal rides and three
  groups of 10 anomalous ones, seeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from modelfactory.data.io import read_table
from modelfactory.data.schema import Column, TableSchema, validate_table
from modelfactory.errors import DataValidationError

TLC_COLUMNS = ["lpep_pickup_datetime", "lpep_dropoff_datetime", "trip_distance"]
RIDE_COLUMNS = ["ride_id", "batch_date", "pickup_datetime", "ride_dist", "ride_time", "ride_speed"]
RIDE_FEATURES = ("ride_dist", "ride_time", "ride_speed")
RIDES_SCHEMA = TableSchema(
    columns=(
        Column("ride_id", "integer"),
        Column("batch_date", "date"),
        *(Column(feature, "number", minimum=0) for feature in RIDE_FEATURES),
    ),
    key=("ride_id",),
    missing_hint=f"expected rides (ride_id, batch_date, {', '.join(RIDE_FEATURES)}) "
    f"or TLC green trip records ({', '.join(TLC_COLUMNS)})",
)


@dataclass
class RideLoad:
    """Rides that can be scored, and how many source rows were dropped for each reason."""

    rides: pd.DataFrame
    source_rows: int
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def summary(self) -> str:
        reasons = ", ".join(f"{n} {why}" for why, n in self.dropped.items() if n) or "none"
        return f"{len(self.rides)} rides kept of {self.source_rows} rows; dropped: {reasons}"


def rides_from_tlc(
    frame: pd.DataFrame, source: str = "taxi data", batch_date: date | str | None = None
) -> RideLoad:
    """Turn TLC trip rows into rides (see :func:`load_taxi_rides`)."""
    missing = [c for c in TLC_COLUMNS if c not in frame.columns]
    if missing:
        raise DataValidationError(
            source, [f"missing column(s) {missing}; a TLC green trip file has {TLC_COLUMNS}"]
        )
    source_rows = len(frame)
    pickup = pd.to_datetime(frame["lpep_pickup_datetime"], errors="coerce")
    dropoff = pd.to_datetime(frame["lpep_dropoff_datetime"], errors="coerce")
    dist = pd.to_numeric(frame["trip_distance"], errors="coerce")
    minutes = (dropoff - pickup).dt.total_seconds() / 60.0
    # ride_id: the row's position in the source file (0-based), stable across re-runs.
    ride_id = np.arange(source_rows, dtype="int64")
    reasons = {
        "null or unparseable pickup/dropoff time": (pickup.isna() | dropoff.isna()).to_numpy(),
        "null or non-numeric trip_distance": dist.isna().to_numpy(),
    }
    invalid = (
        reasons["null or unparseable pickup/dropoff time"]
        | reasons["null or non-numeric trip_distance"]
    )
    reasons["non-positive ride time (dropoff not after pickup)"] = (
        ~invalid & (minutes <= 0).to_numpy()
    )
    reasons["negative trip_distance"] = ~invalid & (dist < 0).to_numpy()
    keep = ~np.logical_or.reduce(list(reasons.values()))
    dropped = {}
    seen = np.zeros(source_rows, dtype=bool)
    for why, mask in reasons.items():  # each row counted once, under its first reason
        dropped[why] = int((mask & ~seen).sum())
        seen |= mask
    if batch_date is not None:
        day = pd.Timestamp(batch_date).normalize()
        other_day = keep & (pickup.dt.normalize() != day).to_numpy()
        dropped[f"pickup not on batch date {day:%Y-%m-%d}"] = int(other_day.sum())
        keep &= ~other_day
    rides = pd.DataFrame(
        {
            "ride_id": ride_id[keep],
            "batch_date": pickup[keep].dt.normalize().dt.date.to_numpy(),
            "pickup_datetime": pickup[keep].to_numpy(),
            "ride_dist": dist[keep].to_numpy(dtype=float),
            "ride_time": minutes[keep].to_numpy(dtype=float),
        }
    )
    rides["ride_speed"] = rides["ride_dist"] / (rides["ride_time"] / 60.0)
    return RideLoad(rides=rides.reset_index(drop=True), source_rows=source_rows, dropped=dropped)


def load_taxi_rides(source: str | Path, batch_date: date | str | None = None) -> RideLoad:
    """Read TLC green trip records and compute ride distance, time and speed.

    Rows dropped (and counted in ``RideLoad.dropped`` by reason): null or unparseable
    pickup/dropoff times, null or non-numeric distance, dropoff not after pickup,
    negative distance; with ``batch_date``, also pickups on other days. Zero-distance
    rides are kept: they are odd, not impossible, and exactly what the detector is for.
    """
    columns = lambda name: name in TLC_COLUMNS  # noqa: E731 - read only what is needed
    suffixes = Path(str(source)).suffixes
    if ".parquet" in suffixes or ".pq" in suffixes:
        frame = read_table(source)
    else:
        frame = read_table(source, usecols=columns)
    return rides_from_tlc(frame, source=str(source), batch_date=batch_date)


def simulate_rides(
    n_normal: int = 370,
    n_per_group: int = 10,
    seed: int = 42,
    batch_date: date | str = "2023-01-01",
) -> pd.DataFrame:
    """The founding text's simulated day of rides, seeded.

    Normal rides: distance uniform on 0-10 miles, speed N(30, 5) mph. Three anomalous
    groups of ``n_per_group``: long rides (distance uniform 0-30 miles, normal speed),
    fast rides (normal distance, speed N(50, 10)) and slow rides (normal distance,
    speed N(15, 4)). ``ride_time`` = distance / speed in minutes. Column ``group``
    says which population each ride came from ("normal", "long", "fast", "slow").
    """
    rng = np.random.default_rng(seed)
    dist = np.concatenate(
        [
            rng.uniform(0, 10, n_normal),
            rng.uniform(0, 30, n_per_group),
            rng.uniform(0, 10, n_per_group),
            rng.uniform(0, 10, n_per_group),
        ]
    )
    speed = np.concatenate(
        [
            rng.normal(30, 5, n_normal),
            rng.normal(30, 5, n_per_group),
            rng.normal(50, 10, n_per_group),
            rng.normal(15, 4, n_per_group),
        ]
    )
    speed = np.clip(speed, 1.0, None)  # a normal draw can go negative for huge n
    group = np.repeat(
        ["normal", "long", "fast", "slow"], [n_normal, n_per_group, n_per_group, n_per_group]
    )
    day = pd.Timestamp(batch_date).normalize()
    n = len(dist)
    pickup = day + pd.to_timedelta(np.sort(rng.uniform(0, 86400, n)), unit="s")
    rides = pd.DataFrame(
        {
            "ride_id": np.arange(n, dtype="int64"),
            "batch_date": day.date(),
            "pickup_datetime": pickup,
            "ride_dist": dist,
            "ride_time": dist / speed * 60.0,
            "ride_speed": speed,
            "group": group,
        }
    )
    return rides


# --- the use case's raw file: read as it is, checked by the validate step -----------------------
def load_rides(source: str | Path) -> pd.DataFrame:
    """Rides from TLC trip records (converted) or from a ride-format file (read as is)."""
    frame = read_table(source)
    if all(column in frame.columns for column in TLC_COLUMNS):
        return rides_from_tlc(frame, source=str(source)).rides
    return frame


def validate_rides(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Ride id (unique), batch date and the three features present, numeric and not negative."""
    out = validate_table(frame, RIDES_SCHEMA, source)
    out["batch_date"] = out["batch_date"].dt.strftime("%Y-%m-%d")
    if "pickup_datetime" in out.columns:
        out["pickup_datetime"] = pd.to_datetime(out["pickup_datetime"], errors="coerce")
    return out.reset_index(drop=True)


def generate_rides(n_rows: int = 400, seed: int = 42) -> pd.DataFrame:
    """The founding simulator: ``n_rows`` rides of which 3 groups of ~2.5% each are anomalous
    (400 rows = the founding 370 normal + 3x10)."""
    per_group = max(1, round(n_rows * 10 / 400))
    return simulate_rides(n_normal=max(1, n_rows - 3 * per_group), n_per_group=per_group, seed=seed)


def write_rides(frame: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path
