"""The anomaly batch's drift on real green-taxi rides (January 2023): a day whose every trip grew
is told apart from a day with more anomalies, and each batch date is recorded in MLflow."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from modelfactory.anomaly.detection import detect_outliers
from modelfactory.anomaly.monitoring import batch_drift, read_staged_rides, record_batch_drift
from modelfactory.anomaly.staging import write_outliers
from modelfactory.data.taxi import load_taxi_rides
from modelfactory.registry import Registry
from tests.support.data import TAXI_JANUARY, shared_file

CHANGED = dt.date(2023, 1, 11)  # every trip 1.6 times longer in distance and time (a detour)
ANOMALOUS = dt.date(2023, 1, 12)  # 3% of the rides replaced by scattered absurd ones
DAYS = [dt.date(2023, 1, day) for day in range(2, 14)]


@pytest.fixture(scope="module")
def staging(tmp_path_factory):
    """The staging table after a daily batch for each of 12 days, two of them altered."""
    rides = load_taxi_rides(shared_file(TAXI_JANUARY)).rides
    url = f"sqlite:///{tmp_path_factory.mktemp('staging') / 'staging.db'}"
    rng = np.random.default_rng(0)
    for day in DAYS:
        batch = rides[pd.Series(rides["batch_date"]) == day].copy()
        if day == CHANGED:
            batch[["ride_dist", "ride_time"]] *= 1.6
        if day == ANOMALOUS:
            chosen = rng.choice(len(batch), int(0.03 * len(batch)), replace=False)
            batch.iloc[chosen, batch.columns.get_loc("ride_dist")] = rng.uniform(
                20, 400, len(chosen)
            )
            batch.iloc[chosen, batch.columns.get_loc("ride_time")] = rng.uniform(
                0.5, 600, len(chosen)
            )
            batch["ride_speed"] = batch["ride_dist"] / (batch["ride_time"] / 60)
        write_outliers(url, detect_outliers(batch).rides, day.isoformat(), run_id="test")
    return url


@pytest.fixture(scope="module")
def results(staging):
    return {r.batch_date: r for r in batch_drift(read_staged_rides(staging), reference_days=7)}


def test_a_day_whose_rides_changed_is_told_apart_from_a_day_with_more_anomalies(results):
    changed, anomalous, after = results[CHANGED], results[ANOMALOUS], results[dt.date(2023, 1, 13)]
    assert changed.verdict == "data changed"
    assert {"ride_dist", "ride_time"} <= set(changed.drift.drifted_inputs)
    assert changed.outlier_rate < 2 * changed.reference_outlier_rate
    assert anomalous.verdict == "more anomalies"
    assert anomalous.drift.drifted_inputs == []
    assert anomalous.outlier_rate > 3 * anomalous.reference_outlier_rate
    # The day after: its reference window holds the altered days, its own rides are ordinary.
    assert after.verdict == "as before"


def test_ordinary_days_raise_no_alarm(results):
    ordinary = [r for d, r in results.items() if d < CHANGED and r.drift is not None]
    assert len(ordinary) == 6  # 5 to 10 January
    assert {r.verdict for r in ordinary} == {"as before"}
    assert max(c.score for r in ordinary for c in r.drift.columns) < 0.1


def test_days_with_fewer_than_three_days_before_them_have_no_reference_yet(results):
    for day in DAYS[:3]:  # the first is 2 January, a public holiday: a poor measure of usual
        assert results[day].verdict == "no reference yet" and results[day].drift is None
    assert results[DAYS[3]].drift is not None


def test_each_batch_date_is_recorded_with_its_verdict(results, mlflow_server, tmp_path):
    runs = record_batch_drift(
        [results[CHANGED], results[ANOMALOUS]], Registry(mlflow_server), "taxi-anomaly", tmp_path
    )
    client = Registry(mlflow_server).client
    changed = client.get_run(runs[CHANGED])
    assert changed.data.tags["monitoring.batch_date"] == "2023-01-11"
    assert changed.data.tags["monitoring.verdict"] == "data changed"
    assert changed.data.metrics["drift.ride_time"] >= 0.1
    anomalous = client.get_run(runs[ANOMALOUS]).data
    assert anomalous.tags["monitoring.verdict"] == "more anomalies"
    assert anomalous.metrics["outlier_rate"] == pytest.approx(results[ANOMALOUS].outlier_rate)
    artifacts = {a.path for a in client.list_artifacts(runs[CHANGED])}
    assert {"drift_report.html", "batch.json"} <= artifacts


def test_the_cli_prints_each_batch_dates_verdict(staging, mlflow_server, monkeypatch, tmp_path):
    from modelfactory.config import get_settings
    from modelfactory.local.cli import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MODELFACTORY_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "160")
    get_settings.cache_clear()
    try:
        done = CliRunner().invoke(
            app, ["drift", "batches", "--staging-url", staging, "--since", "2023-01-11"]
        )
    finally:
        get_settings.cache_clear()
    assert done.exit_code == 0, done.output
    lines = {line.split()[1]: line for line in done.output.splitlines() if "2023-01-1" in line}
    assert "data changed" in lines["2023-01-11"] and "more anomalies" in lines["2023-01-12"]
    assert "2023-01-10" not in lines  # before --since: reference only
