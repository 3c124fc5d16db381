"""The ride_outliers staging table: idempotent per day, atomic, on sqlite and PostgreSQL."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy.exc import IntegrityError

from modelfactory.anomaly.detection import detect_outliers
from modelfactory.anomaly.staging import read_outliers, write_outliers
from modelfactory.data.taxi import simulate_rides
from modelfactory.errors import DataValidationError


@pytest.fixture(params=["sqlite", "postgresql"])
def staging_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'staging' / 'staging.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def clean(staging_url):
    from sqlalchemy import text

    from modelfactory.anomaly.staging import staging_engine

    engine = staging_engine(staging_url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS ride_outliers"))
    engine.dispose()
    return staging_url


def scored(day: str, seed: int = 0, n_normal: int = 370):
    return detect_outliers(simulate_rides(n_normal=n_normal, seed=seed, batch_date=day)).rides


def test_write_and_read_back(clean):
    day = scored("2023-01-15")
    assert write_outliers(clean, day, "2023-01-15", run_id="run-1") == 400
    table = read_outliers(clean, "2023-01-15")
    assert len(table) == 400
    assert table["ride_id"].tolist() == list(range(400))
    assert table["is_outlier"].sum() == day["is_outlier"].sum()
    assert set(table["run_id"]) == {"run-1"}
    assert table["written_at"].notna().all()
    assert table["ride_dist"].to_numpy() == pytest.approx(day["ride_dist"].to_numpy())


def test_rerun_replaces_only_that_day(clean):
    write_outliers(clean, scored("2023-01-15"), "2023-01-15", run_id="run-1")
    write_outliers(clean, scored("2023-01-16"), "2023-01-16", run_id="run-1")
    smaller = scored("2023-01-15", seed=5, n_normal=100)
    write_outliers(clean, smaller, "2023-01-15", run_id="run-2")
    table = read_outliers(clean)
    per_day = table.groupby("batch_date")["run_id"].agg(["count", "unique"])
    assert per_day.loc[pd.Timestamp("2023-01-15").date(), "count"] == 130
    assert list(per_day.loc[pd.Timestamp("2023-01-15").date(), "unique"]) == ["run-2"]
    assert per_day.loc[pd.Timestamp("2023-01-16").date(), "count"] == 400


def test_failure_mid_write_keeps_the_previous_rows(clean):
    write_outliers(clean, scored("2023-01-15"), "2023-01-15", run_id="run-1")
    before = read_outliers(clean, "2023-01-15")

    def crash(written):
        if written >= 100:
            raise ConnectionError("network dropped after 100 rows")

    with pytest.raises(ConnectionError):
        write_outliers(
            clean,
            scored("2023-01-15", seed=9),
            "2023-01-15",
            run_id="run-2",
            chunk_size=50,
            on_chunk=crash,
        )
    pd.testing.assert_frame_equal(read_outliers(clean, "2023-01-15"), before)

    # A database-side failure in a later chunk: a duplicate ride id violates the key.
    broken = scored("2023-01-15", seed=9)
    broken.loc[350, "ride_id"] = 3
    with pytest.raises(IntegrityError):
        write_outliers(clean, broken, "2023-01-15", run_id="run-3", chunk_size=100)
    pd.testing.assert_frame_equal(read_outliers(clean, "2023-01-15"), before)


def test_rides_from_another_day_are_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    with pytest.raises(DataValidationError, match="400 rides are not from 2023-01-16"):
        write_outliers(url, scored("2023-01-15"), "2023-01-16", run_id="run-1")


def test_postgres_fixture_fails_loudly_without_binaries(monkeypatch):
    from tests.support import postgres as conftest

    monkeypatch.setattr(conftest.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(conftest.shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y postgresql"):
        conftest._postgres_bin()
