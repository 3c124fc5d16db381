"""How the forecasting and anomaly use cases read, check, generate and write their raw files.

The generic ``ingest`` and ``validate`` steps (:mod:`modelfactory.steps.common`) look a
use case up in :mod:`modelfactory.use_cases` and call these. Loading reads the file as
it is; validation is a separate call, so bad data stops the run at ``validate-data``
with the column and rows at fault, as for the classifier.

- Sales (forecasting): Rossmann ``train.csv`` (:mod:`modelfactory.data.rossmann`).
- Rides (anomaly): either NYC TLC green trip records (converted to rides by
  :func:`modelfactory.data.taxi.rides_from_tlc`) or a file of rides already in the
  ride format (``ride_id, batch_date, ride_dist, ride_time, ride_speed``), which is what
  the simulator writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from modelfactory.data.io import read_table
from modelfactory.data.rossmann import synthetic_rossmann, validate_rossmann
from modelfactory.data.taxi import TLC_COLUMNS, rides_from_tlc, simulate_rides
from modelfactory.errors import DataValidationError, describe_rows

RIDE_FEATURES = ("ride_dist", "ride_time", "ride_speed")
_DAYS_PER_STORE = 942  # 2013-01-01 .. 2015-07-31, the span of the real file


def load_sales(source: str | Path) -> pd.DataFrame:
    """A Rossmann ``train.csv`` as it is (StateHoliday kept as text: the file mixes 0 and '0')."""
    return read_table(source, dtype={"StateHoliday": str}, low_memory=False)


def validate_sales(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    return validate_rossmann(frame, source=source)


def generate_sales(n_rows: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """About ``n_rows`` rows of synthetic store sales: as many stores as that many days need."""
    return synthetic_rossmann(n_stores=max(1, round(n_rows / _DAYS_PER_STORE)), seed=seed)


def write_sales(frame: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.assign(Date=pd.to_datetime(frame["Date"]).dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    return path


def load_rides(source: str | Path) -> pd.DataFrame:
    """Rides from TLC trip records (converted) or from a ride-format file (read as is)."""
    frame = read_table(source)
    if all(column in frame.columns for column in TLC_COLUMNS):
        return rides_from_tlc(frame, source=str(source)).rides
    return frame


def validate_rides(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Ride id, batch date and the three features present, numeric, finite and not negative."""
    required = ["ride_id", "batch_date", *RIDE_FEATURES]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataValidationError(source, [
            f"missing column(s) {missing}; expected rides ({', '.join(required)}) "
            f"or TLC green trip records ({', '.join(TLC_COLUMNS)})"])
    problems = []
    out = frame.copy()
    for column in ("ride_id", *RIDE_FEATURES):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = ~np.isfinite(values.to_numpy(dtype=float))
        if bad.any():
            problems.append(f"column '{column}': not a finite number at {describe_rows(np.flatnonzero(bad))}")
        elif column != "ride_id" and (values < 0).any():
            problems.append(f"column '{column}': negative at {describe_rows(np.flatnonzero(values < 0))}")
        out[column] = values
    dates = pd.to_datetime(frame["batch_date"], errors="coerce")
    if dates.isna().any():
        problems.append(f"column 'batch_date': not a date at {describe_rows(np.flatnonzero(dates.isna()))}")
    duplicated = out["ride_id"].duplicated(keep=False) & ~out["ride_id"].isna()
    if not problems and duplicated.any():
        problems.append(f"column 'ride_id': repeated ids at {describe_rows(np.flatnonzero(duplicated))}")
    if problems:
        raise DataValidationError(source, problems)
    out["ride_id"] = out["ride_id"].astype("int64")
    out["batch_date"] = dates.dt.strftime("%Y-%m-%d")
    if "pickup_datetime" in out.columns:
        out["pickup_datetime"] = pd.to_datetime(out["pickup_datetime"], errors="coerce")
    return out.reset_index(drop=True)


def generate_rides(n_rows: int = 400, seed: int = 42) -> pd.DataFrame:
    """The founding simulator: ``n_rows`` rides of which 3 groups of ~2.5% each are anomalous
    (400 rows = the founding 370 normal + 3×10)."""
    per_group = max(1, round(n_rows * 10 / 400))
    return simulate_rides(n_normal=max(1, n_rows - 3 * per_group), n_per_group=per_group, seed=seed)


def write_rides(frame: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path
