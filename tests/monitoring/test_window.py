"""Reading a window of the prediction log: which rows, typed columns, chunks, and a uniform sample
when the window is larger than the cap (on sqlite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from modelfactory.monitoring.window import Window, read_window
from modelfactory.use_case import LoggedColumn
from tests.support.prediction_log import write_log

START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
COLUMNS = (
    LoggedColumn("age", "features", "number"),
    LoggedColumn("job", "features", "category"),
    LoggedColumn("probability", "output", "number"),
)


def features(n, offset=0):
    return [{"age": offset + i, "job": ("admin.", "student")[i % 2]} for i in range(n)]


def outputs(n):
    return [{"class": "no", "probability": i / n} for i in range(n)]


@pytest.fixture
def log(prediction_store_url):
    url = prediction_store_url
    write_log(url, features(100), outputs(100), "m", "1", START)  # 00:00:00 .. 00:01:39
    write_log(url, features(50, 1000), outputs(50), "m", "2", START + dt.timedelta(minutes=5))
    write_log(url, features(30), outputs(30), "m", "2", START, role="shadow")
    write_log(url, features(20), outputs(20), "other", "1", START)
    return url


@pytest.mark.parametrize(
    ("window", "rows", "ages"),
    [
        (Window("m"), 150, (0, 1049)),
        (Window("m", version="2"), 50, (1000, 1049)),
        (Window("m", since=START + dt.timedelta(seconds=90)), 60, (90, 1049)),
        (Window("m", until=START + dt.timedelta(seconds=10)), 10, (0, 9)),
        (Window("m", last_rows=55), 55, (95, 1049)),
        (Window("m", version="1", last_rows=5), 5, (95, 99)),
        (Window("m", role="shadow"), 30, (0, 29)),
        (Window("nobody"), 0, None),
    ],
    ids=[
        "all served",
        "one version",
        "since",
        "until",
        "newest N",
        "newest N of v1",
        "shadow",
        "none",
    ],
)
def test_the_window_holds_the_rows_it_says(log, window, rows, ages):
    read = read_window(log, window, COLUMNS, chunk_rows=16)
    assert read.rows == rows and read.read == rows and not read.sampled
    if ages is None:
        assert read.frame.empty and list(read.frame.columns)[-3:] == ["age", "job", "probability"]
        return
    assert (read.frame["age"].min(), read.frame["age"].max()) == ages
    assert read.frame["age"].dtype == np.float64 and read.frame["job"].dtype == "category"
    assert read.first <= read.last


def test_chunks_do_not_change_what_is_read(log):
    small = read_window(log, Window("m"), COLUMNS, chunk_rows=7).frame
    large = read_window(log, Window("m"), COLUMNS, chunk_rows=10_000).frame
    pd.testing.assert_frame_equal(
        small.sort_values("id").reset_index(drop=True),
        large.sort_values("id").reset_index(drop=True),
    )


def test_values_that_are_missing_or_of_the_wrong_kind_are_empty(prediction_store_url):
    write_log(
        prediction_store_url,
        [{"age": "forty", "job": None}, {"job": 3}, {"age": [1, 2], "job": "admin."}],
        [{"probability": None}, {}, {"probability": 0.5}],
        "m",
    )
    frame = read_window(prediction_store_url, Window("m"), COLUMNS).frame.sort_values("id")
    assert frame["age"].isna().all()
    assert frame["job"].tolist()[1:] == ["3", "admin."] and pd.isna(frame["job"].iloc[0])
    assert frame["probability"].isna().tolist() == [True, True, False]


def test_a_larger_window_is_sampled_uniformly_and_repeatably(prediction_store_url):
    n = 6000
    write_log(prediction_store_url, features(n), outputs(n), "m")
    read = read_window(prediction_store_url, Window("m"), COLUMNS, max_rows=1500, seed=3)
    assert (read.rows, read.read, read.sampled) == (n, 1500, True)
    assert read.frame["id"].is_unique
    again = read_window(prediction_store_url, Window("m"), COLUMNS, max_rows=1500, seed=3)
    assert read.frame["id"].tolist() == again.frame["id"].tolist()
    other = read_window(prediction_store_url, Window("m"), COLUMNS, max_rows=1500, seed=4)
    assert set(read.frame["id"]) != set(other.frame["id"])
    # Uniform over the window: each sixth of it holds about a sixth of the sample.
    sixths = np.histogram(read.frame["age"], bins=6, range=(0, n))[0]
    assert sixths.min() > 200 and sixths.max() < 300
    assert abs((read.frame["job"] == "student").mean() - 0.5) < 0.05


def test_an_empty_window_is_refused_by_name():
    with pytest.raises(ValueError, match="the window is empty"):
        Window("m", since=START, until=START)
