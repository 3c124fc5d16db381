"""The daily anomaly batch with real parts: kfp local runner, a real MLflow server, a sqlite
staging table.

The founding simulator's day (370 normal rides + 3 groups of 10) goes through the
pipeline; every ride gets one flag in the staging table; a second run of the same
batch date (through the CLI, with another eps) replaces that day's rows.
"""

from __future__ import annotations

import mlflow
import pytest
from modelfactory_pipelines.anomaly import anomaly_pipeline

from modelfactory.anomaly.staging import read_outliers
from modelfactory.data.taxi import simulate_rides, write_rides
from modelfactory.local.pipeline_runs import run_locally

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    folder = tmp_path_factory.mktemp("anomaly")
    rides = write_rides(
        simulate_rides(370, 10, seed=7, batch_date="2023-01-02"), folder / "rides.csv"
    )
    return rides, f"sqlite:///{folder / 'staging.db'}"


@pytest.fixture(scope="module")
def first_run(day, mlflow_server, isolated_home):
    rides, staging = day
    events = []
    summary = run_locally(
        anomaly_pipeline,
        {"source": str(rides), "mlflow_tracking_uri": mlflow_server, "staging_url": staging},
        isolated_home / "anomaly-runs",
        events.append,
    )
    return summary, events


def test_every_ride_gets_one_flag_in_the_staging_table(first_run, day):
    summary, events = first_run
    assert [e.task for e in events if e.status == "SUCCESS"] == [
        "ingest-data",
        "validate-data",
        "ride-features",
        "detect-outliers",
        "write-outlier-flags",
    ]
    assert summary["batch_date"] == "2023-01-02" and summary["rows"] == 400
    table = read_outliers(day[1], "2023-01-02")
    assert len(table) == 400 and table["ride_id"].is_unique
    assert int(table["is_outlier"].sum()) == summary["outliers"]
    assert 20 <= summary["outliers"] <= 80  # most anomalous groups found, few normal rides flagged
    assert set(table["run_id"]) == {summary["run_id"]}


def test_metrics_and_the_scatter_are_in_mlflow(first_run, mlflow_server):
    summary, _ = first_run
    client = mlflow.MlflowClient(mlflow_server)
    run = client.get_run(summary["run_id"])
    assert run.data.metrics["noise"] == summary["outliers"]
    assert {"clusters", "rides", "noise_share"} <= set(run.data.metrics)
    # Silhouette needs two clusters or more; otherwise the run says why it has none.
    assert "silhouette" in run.data.metrics or "detection.silhouette" in run.data.tags
    assert run.data.params["eps"] == "0.5" and run.data.params["min_samples"] == "10"
    assert [a.path for a in client.list_artifacts(summary["run_id"], "plots")] == [
        "plots/rides-2023-01-02.png"
    ]


def test_a_rerun_of_the_day_replaces_its_rows(first_run, day, mlflow_server, monkeypatch):
    from typer.testing import CliRunner

    from modelfactory.local.cli import app

    rides, staging = day
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    result = CliRunner().invoke(
        app,
        [
            "run",
            "anomaly",
            "--data",
            str(rides),
            "--batch-date",
            "2023-01-02",
            "--eps",
            "0.6",
            "--staging-url",
            staging,
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "2023-01-02: 400 rides scored" in result.output
    table = read_outliers(staging)
    assert len(table) == 400 and table["ride_id"].is_unique  # replaced, not appended
    (run_id,) = set(table["run_id"])
    assert run_id != first_run[0]["run_id"]
    assert mlflow.MlflowClient(mlflow_server).get_run(run_id).data.params["eps"] == "0.6"
