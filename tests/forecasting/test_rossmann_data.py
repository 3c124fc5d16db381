"""Loading and validating Rossmann-format data, and the synthetic generator."""

from __future__ import annotations

import pandas as pd
import pytest

from modelfactory.data.rossmann import load_rossmann, synthetic_rossmann, validate_rossmann
from modelfactory.errors import DataSourceError, DataValidationError

HEADER = "Store,DayOfWeek,Date,Sales,Customers,Open,Promo,StateHoliday,SchoolHoliday\n"


def write(tmp_path, body: str, header: str = HEADER):
    path = tmp_path / "train.csv"
    path.write_text(header + body)
    return path


def test_real_subset_is_clean_and_normalised(real_sales):
    assert sorted(real_sales["Store"].unique()) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert real_sales["Date"].dtype.kind == "M"
    assert set(real_sales["StateHoliday"].unique()) <= {"0", "a", "b", "c"}
    assert real_sales["Date"].min() == pd.Timestamp("2013-01-01")
    assert real_sales["Date"].max() == pd.Timestamp("2015-07-31")


def test_state_holiday_mixing_number_and_text_zero(tmp_path):
    path = write(
        tmp_path,
        "1,2,2015-07-28,5000,500,1,1,0,0\n1,3,2015-07-29,0,0,0,0,a,0\n1,4,2015-07-30,4000,400,1,0,'0',0\n".replace(
            "'", ""
        ),
    )
    frame = load_rossmann(path)
    assert frame["StateHoliday"].tolist() == ["0", "a", "0"]


def test_every_problem_is_named_with_column_and_rows(tmp_path):
    path = write(
        tmp_path,
        "1,2,2015-07-28,5000,500,1,1,0,0\n"
        "1,3,2015-07-29,-10,0,1,0,0,0\n"
        "1,3,2015-07-29,100,0,1,0,0,0\n"
        "2,3,not-a-date,100,0,1,0,x,0\n"
        "2,4,2015-07-30,abc,0,2,0,0,0\n",
    )
    with pytest.raises(DataValidationError) as caught:
        load_rossmann(path)
    text = str(caught.value)
    assert "column 'Sales': below 0, found -10 in row 2" in text
    assert "column 'Date': expected dates, found 'not-a-date' in row 4" in text
    assert "column 'StateHoliday': unknown value(s) 'x' in row 4; allowed: 0, a, b, c" in text
    assert "column 'Sales': expected integers, found 'abc' in row 5" in text
    assert "column 'Open': unknown value(s) 2 in row 5; allowed: 0, 1" in text
    assert "'Store', 'Date': 2 rows share the same values (e.g. 1, 2015-07-29) in rows 2, 3" in text


def test_missing_columns_are_listed(tmp_path):
    path = write(tmp_path, "1,2015-07-28,5000\n", header="Store,Date,Sales\n")
    with pytest.raises(
        DataValidationError,
        match=r"missing column\(s\): Open, Promo, StateHoliday, SchoolHoliday; expected",
    ):
        load_rossmann(path)


def test_unknown_store_subset_is_reported(tmp_path):
    path = write(tmp_path, "1,2,2015-07-28,5000,500,1,1,0,0\n")
    with pytest.raises(DataValidationError, match=r"no rows for requested store id\(s\) \[99\]"):
        load_rossmann(path, stores=[1, 99])


def test_missing_file_names_it(tmp_path):
    with pytest.raises(DataSourceError, match="nope.csv: no such file"):
        load_rossmann(tmp_path / "nope.csv")


def test_synthetic_data_looks_like_rossmann():
    frame = validate_rossmann(synthetic_rossmann(n_stores=4, seed=1))
    assert frame["Store"].nunique() == 4
    sundays = frame[frame["Date"].dt.dayofweek == 6]
    assert (sundays["Open"] == 0).all() and (sundays["Sales"] == 0).all()
    holidays = frame[frame["StateHoliday"] != "0"]
    assert len(holidays) and (holidays["Open"] == 0).all()
    open_days = frame[frame["Open"] == 1]
    promo_mean = open_days.groupby("Promo")["Sales"].mean()
    assert promo_mean[1] > 1.15 * promo_mean[0]
    scales = open_days.groupby("Store")["Sales"].mean()
    assert scales.max() / scales.min() > 1.1
    assert synthetic_rossmann(n_stores=2, seed=3).equals(synthetic_rossmann(n_stores=2, seed=3))
