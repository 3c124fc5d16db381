"""Rossmann-format store sales: loading, validation and a synthetic generator.

The format is Kaggle's "Rossmann Store Sales" ``train.csv``: one row per (Store, Date)
with columns Store, DayOfWeek, Date, Sales, Customers, Open, Promo, StateHoliday,
SchoolHoliday, and an optional ``store.csv`` with one row per store.

Entry points:

- :func:`load_rossmann` reads a path or URL, validates it and returns a clean frame
  (``Date`` as datetime64, ``StateHoliday`` always a string in {"0","a","b","c"},
  sorted by Store then Date). Bad data raises :class:`DataValidationError` naming the
  column and the rows (1-based, as in the file, header excluded).
- :func:`validate_rossmann` does the checks on a frame you already hold.
- :func:`load_store_info` reads the optional ``store.csv``.
- :func:`synthetic_rossmann` generates realistic multi-store data in the same format
  (weekly and yearly seasonality, promotions that lift sales, stores closed on Sundays
  and state holidays, a per-store scale) for the demo and for tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from modelfactory.data.io import read_table
from modelfactory.data.labels import GroupLevels
from modelfactory.data.schema import Column, TableSchema, validate_table
from modelfactory.errors import DataValidationError, describe_rows

REQUIRED_COLUMNS = ["Store", "Date", "Sales", "Open", "Promo", "StateHoliday", "SchoolHoliday"]
OPTIONAL_COLUMNS = ["DayOfWeek", "Customers"]
STATE_HOLIDAY_CODES = {"0", "a", "b", "c"}


def load_rossmann(
    source: str | Path,
    stores: Iterable[int] | None = None,
) -> pd.DataFrame:
    """Read, validate and normalise a Rossmann ``train.csv`` (CSV, CSV.gz or Parquet; path or URL).

    ``stores`` keeps only those store ids (validation then covers only them, which is what
    a ``--stores`` subset run needs). Raises DataSourceError when the file cannot be read
    and DataValidationError listing every problem found.
    """
    # StateHoliday mixes 0 and '0'/'a'/'b'/'c' in the original file: read it as text.
    frame = read_table(source, dtype={"StateHoliday": str}, low_memory=False)
    if stores is not None and "Store" in frame.columns:
        wanted = {int(s) for s in stores}
        frame = frame[pd.to_numeric(frame["Store"], errors="coerce").isin(wanted)]
        missing = sorted(
            wanted - set(pd.to_numeric(frame["Store"], errors="coerce").dropna().astype(int))
        )
        if missing:
            raise DataValidationError(
                str(source), [f"column 'Store': no rows for requested store id(s) {missing}"]
            )
    return validate_rossmann(frame, source=str(source))


SCHEMA = TableSchema(
    columns=(
        Column("Store", "integer"),
        Column("Date", "date"),
        Column("Sales", "integer", minimum=0),
        Column("Open", "integer", allowed=frozenset({0, 1})),
        Column("Promo", "integer", allowed=frozenset({0, 1})),
        Column("StateHoliday", "category", allowed=frozenset(STATE_HOLIDAY_CODES)),
        Column("SchoolHoliday", "integer", allowed=frozenset({0, 1})),
    ),
    key=("Store", "Date"),
    missing_hint=f"expected at least {', '.join(REQUIRED_COLUMNS)} (Rossmann train.csv)",
)


# A store's sales per selling day against the champion's training data (its Prophet rows, ``y``);
# the factor: ADR 0014.
LABELS = GroupLevels("Sales", by="Store", reference_column="y", max_ratio=3.0, min_rows=28)


def validate_rossmann(frame: pd.DataFrame, source: str = "sales data") -> pd.DataFrame:
    """Check a Rossmann-format frame (:data:`SCHEMA`) and return a normalised copy.

    Checks: required columns present; Store, Sales, Open, Promo and SchoolHoliday are
    integers, the flags 0/1 and Sales not negative; Date parses; StateHoliday is one of
    0/a/b/c; no two rows share a (Store, Date). Every failing check is reported with the
    column and rows; all problems are collected before raising.
    """
    if "StateHoliday" in frame.columns:
        # The original file mixes 0 and '0' (and a float 0.0 once read as numbers).
        holiday = frame["StateHoliday"].astype(str).str.strip()
        frame = frame.assign(StateHoliday=holiday.where(~holiday.isin(["0.0", "nan", ""]), "0"))
    out = validate_table(frame, SCHEMA, source)
    for column in OPTIONAL_COLUMNS:
        if column in out.columns:
            out[column] = pd.to_numeric(out[column], errors="coerce")
    if "DayOfWeek" not in out.columns:
        out["DayOfWeek"] = out["Date"].dt.dayofweek + 1
    columns = ["Store", "DayOfWeek", "Date", "Sales"]
    columns += [c for c in ["Customers"] if c in out.columns]
    columns += ["Open", "Promo", "StateHoliday", "SchoolHoliday"]
    return out[columns].sort_values(["Store", "Date"], kind="stable").reset_index(drop=True)


# --- the use case's raw file: read as it is, checked by the validate step -----------------------
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
    frame.assign(Date=pd.to_datetime(frame["Date"]).dt.strftime("%Y-%m-%d")).to_csv(
        path, index=False
    )
    return path


def load_store_info(source: str | Path) -> pd.DataFrame:
    """Read the optional ``store.csv`` (one row per store); checks Store is present and unique."""
    frame = read_table(source)
    if "Store" not in frame.columns:
        raise DataValidationError(str(source), ["missing column 'Store'"])
    duplicated = frame["Store"].duplicated(keep=False)
    if duplicated.any():
        raise DataValidationError(
            str(source),
            [f"column 'Store': repeated store ids at {describe_rows(frame.index[duplicated])}"],
        )
    return frame


def synthetic_rossmann(
    n_stores: int = 5,
    start: str = "2013-01-01",
    end: str = "2015-07-31",
    seed: int = 0,
) -> pd.DataFrame:
    """Generate Rossmann-format daily sales for ``n_stores`` stores (ids 1..n), seeded.

    Each store has its own scale (log-normal around 6,000 a day), a weekly pattern (a
    strong Monday, a Saturday dip, closed on Sundays), a yearly pattern (a December
    peak, a summer dip), a slow trend, promotions on alternate weeks (Mon-Fri) lifting
    sales by 20-40%, state holidays (closed) and school holidays. Sales are 0 when closed.
    """
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, end, freq="D")
    n_days = len(dates)
    dow = dates.dayofweek.to_numpy()  # Monday=0
    doy = dates.dayofyear.to_numpy()
    week = (dates - dates[0]).days.to_numpy() // 7
    # Holidays shared by all stores (one state): fixed dates every year.
    holiday = np.full(n_days, "0", dtype=object)
    md = dates.strftime("%m-%d")
    holiday[np.isin(md, ["01-01", "05-01", "10-03", "11-01"])] = "a"
    holiday[np.isin(md, ["04-18", "04-21", "05-29", "06-09"])] = "b"  # Easter-like
    holiday[np.isin(md, ["12-25", "12-26"])] = "c"
    school = (
        ((doy >= 182) & (doy <= 225)) | (doy >= 355) | (doy <= 4) | ((doy >= 88) & (doy <= 100))
    )

    weekly = np.array([1.25, 1.05, 1.0, 0.98, 1.02, 0.9, 0.0])
    yearly = (
        1
        + 0.08 * np.cos(2 * np.pi * (doy - 355) / 365.25)
        - 0.05 * np.exp(-(((doy - 220) / 20.0) ** 2))
    )
    yearly = yearly + 0.35 * ((doy >= 340) & (doy <= 358))  # Christmas shopping

    frames = []
    for store in range(1, n_stores + 1):
        scale = rng.lognormal(np.log(6000), 0.35)
        trend = 1 + rng.normal(0, 0.04) * np.arange(n_days) / 365.25
        promo_phase = int(rng.integers(0, 2))
        promo = ((week + promo_phase) % 2 == 0) & (dow < 5)
        lift = rng.uniform(0.2, 0.4)
        open_ = (dow < 6) & (holiday == "0")
        open_ &= rng.random(n_days) > 0.003  # the odd refurbishment day
        noise = rng.lognormal(0, 0.07, n_days)
        sales = (
            scale * weekly[dow] * yearly * trend * (1 + lift * promo) * (1 + 0.03 * school) * noise
        )
        sales = np.where(open_, np.round(sales), 0).astype("int64")
        customers = np.where(open_, np.round(sales / rng.uniform(7, 11)), 0).astype("int64")
        frames.append(
            pd.DataFrame(
                {
                    "Store": store,
                    "DayOfWeek": dow + 1,
                    "Date": dates,
                    "Sales": sales,
                    "Customers": customers,
                    "Open": open_.astype("int64"),
                    "Promo": promo.astype("int64"),
                    "StateHoliday": holiday,
                    "SchoolHoliday": school.astype("int64"),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
