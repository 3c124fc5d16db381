"""Store-sales forecasting from pipeline run to forecast API, with real parts only.

Three real Rossmann stores (plus an id with no data, which must be reported and must
not sink the others) go through the pipeline with the kfp local runner against the
session's real MLflow server; the model set is registered as champion; a real
`bentoml serve` of the forecast service answers /forecast; the CLI draws the plot.
"""

from __future__ import annotations

import json
import re

import httpx
import mlflow
import pandas as pd
import pytest
from modelfactory_pipelines.forecasting import forecasting_pipeline

from modelfactory.local.pipeline_runs import PipelineFailed, run_locally
from modelfactory.local.ports import free_port
from modelfactory.local.serving import ServingProcess
from modelfactory.registry import Registry
from tests.support.data import ROSSMANN_TRAIN, shared_file

pytestmark = pytest.mark.integration
MODEL = "store-sales-it"
EARLIER = "store-sales-earlier-it"
STORES = [1, 2, 3]


@pytest.fixture(scope="module")
def three_stores(tmp_path_factory):
    frame = pd.read_csv(shared_file(ROSSMANN_TRAIN), dtype={"StateHoliday": str}, low_memory=False)
    path = tmp_path_factory.mktemp("rossmann") / "train.csv"
    frame[frame["Store"].isin(STORES)].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def first_run(mlflow_server, three_stores, isolated_home):
    events = []
    summary = run_locally(
        forecasting_pipeline,
        {
            "source": str(three_stores),
            "mlflow_tracking_uri": mlflow_server,
            "model_name": MODEL,
            "stores": "1,2,3,99999",
            "max_failure_share": 0.5,
        },
        isolated_home / "forecast-runs",
        events.append,
    )
    return summary, events


@pytest.fixture(scope="module")
def served(first_run, mlflow_server, isolated_home):
    process = ServingProcess(
        MODEL,
        mlflow_server,
        port=free_port(),
        workers=1,
        log_file=isolated_home / "forecast-serving.log",
    )
    with process:
        yield process


def test_pipeline_registers_one_model_set_as_champion(first_run, mlflow_server):
    summary, events = first_run
    # kfp's local runner logs its concurrent ParallelFor iterations through one shared,
    # thread-unsafe logging context and may drop a "finished" line: read the starts.
    started = [e.task for e in events if e.status == "running"]
    assert not [e for e in events if e.status not in ("running", "SUCCESS")]
    assert list(dict.fromkeys(started)) == [
        "ingest-data",
        "validate-data",
        "forecast-features",
        "split-by-time",
        "plan-shards",
        "train-store-shard",
        "merge-store-models",
        "evaluate-forecasts",
        "register-model-set",
    ]
    assert started.count("train-store-shard") == 3  # 8 shards, of which stores 1-3 fill three
    assert summary["version"] == "1" and summary["promoted"] and summary["alias"] == "champion"
    assert summary["metric"] == "mape" and summary["candidate"] < summary["baseline"]
    assert summary["stores"] == 3 and list(summary["failed_stores"]) == ["99999"]
    champion = Registry(mlflow_server).version_by_alias(MODEL, "champion")
    assert champion.version == "1" and champion.tags["modelfactory.failed_stores"] == "99999"


def test_the_run_holds_aggregate_and_per_store_metrics(first_run, mlflow_server, tmp_path):
    summary, _ = first_run
    run = mlflow.MlflowClient(mlflow_server).get_run(summary["run_id"])
    for name in ("holdout_mape", "holdout_rmse", "baseline_holdout_mape", "baseline_holdout_rmse"):
        assert name in run.data.metrics
    assert run.data.tags["modelfactory.failed_stores"] == "99999"
    local = mlflow.artifacts.download_artifacts(
        run_id=summary["run_id"],
        artifact_path="evaluation",
        dst_path=str(tmp_path),
        tracking_uri=mlflow_server,
    )
    per_store = pd.read_csv(f"{local}/store_metrics.csv")
    assert sorted(per_store["store"]) == STORES and (per_store["mape"] > 0).all()
    failed = json.loads(open(f"{local}/failed_stores.json").read())
    assert list(failed) == ["99999"]


def test_the_run_keeps_its_holdout_with_the_forecast_each_day_was_scored_on(
    first_run, mlflow_server
):
    from modelfactory.monitoring.reference import holdout_data, run_figures

    summary, _ = first_run
    holdout = holdout_data(run_figures(Registry(mlflow_server), MODEL, summary["run_id"]))
    assert sorted(holdout["Store"].unique()) == STORES
    assert {"ds", "y", "yhat"} <= set(holdout.columns) and holdout["yhat"].notna().all()


def test_a_same_file_retrain_is_not_judged_against_a_champion_refit_on_its_holdout(
    first_run, mlflow_server
):
    from modelfactory.forecasting.steps import gate_evidence

    summary, _ = first_run
    evidence = gate_evidence({"run_id": summary["run_id"]}, MODEL, "1", mlflow_server)
    # v1 was refit on its full history, this holdout included: no store-day is new to it.
    fresh = evidence.fresh
    assert fresh.rows == 0 and fresh.of_rows > 100
    assert fresh.left_out == "were days champion v1 trained on or had no model for"
    # On v1's own holdout both are scored by the forecasts made before the refit, here the same
    # ones: the run's own holdout MAPE.
    own = evidence.champion_holdout
    assert 0 < own.rows <= own.of_rows == fresh.of_rows
    holdout_mape = mlflow.MlflowClient(mlflow_server).get_run(summary["run_id"]).data.metrics
    assert own.candidate == own.champion == pytest.approx(holdout_mape["holdout_mape"], rel=1e-3)


@pytest.fixture(scope="module")
def earlier_champion(mlflow_server, three_stores, tmp_path_factory, isolated_home):
    """The same three stores six weeks earlier (up to 2015-06-19), registered as champion v1 of
    another model: the days of the first run's holdout are all new to it."""
    frame = pd.read_csv(three_stores, dtype={"StateHoliday": str})
    path = tmp_path_factory.mktemp("rossmann-earlier") / "train.csv"
    frame[frame["Date"] < "2015-06-20"].to_csv(path, index=False)
    return run_locally(
        forecasting_pipeline,
        {
            "source": str(path),
            "mlflow_tracking_uri": mlflow_server,
            "model_name": EARLIER,
            "promotion": "direct",
        },
        isolated_home / "forecast-runs-earlier",
    )


def test_a_retrain_on_newer_weeks_is_judged_on_the_store_days_the_champion_never_saw(
    first_run, earlier_champion, mlflow_server
):
    from modelfactory.forecasting.steps import register

    summary, _ = first_run
    assert earlier_champion["version"] == "1" and earlier_champion["promoted"]
    source = Registry(mlflow_server).client.get_model_version(MODEL, "1").source
    info = {"run_id": summary["run_id"], "model_uri": source, "stores": 3}
    judged = register(info, "", EARLIER, tracking_uri=mlflow_server)
    fresh = judged["evidence"]["fresh"]
    # Every day of the new six weeks is after v1's stores' history: all new to both versions.
    assert fresh["rows"] == fresh["of_rows"] > 100
    assert 0 < fresh["champion"] < 1 and fresh["candidate"] == pytest.approx(
        summary["candidate"], rel=1e-3
    )
    assert (
        f"on {fresh['rows']:,} rows neither version trained on (of {fresh['rows']:,}"
        in (judged["reason"])
    )
    # v1's own holdout (the six weeks before) is in the new run's training data: not checked.
    assert judged["evidence"]["champion_holdout"]["rows"] == 0
    assert "champion v1's holdout not checked: 0 of its" in judged["reason"]


def test_sales_in_another_unit_stop_the_run_at_validate_data_naming_the_stores(
    first_run, mlflow_server, three_stores, tmp_path, isolated_home
):
    frame = pd.read_csv(three_stores, dtype={"StateHoliday": str})
    path = tmp_path / "cents.csv"
    frame.assign(Sales=frame["Sales"] * 100).to_csv(path, index=False)
    with pytest.raises(PipelineFailed) as failed:
        run_locally(
            forecasting_pipeline,
            {"source": str(path), "mlflow_tracking_uri": mlflow_server, "model_name": MODEL},
            isolated_home / "forecast-runs-cents",
        )
    assert failed.value.task == "validate-data"
    assert (
        "column 'Sales': the mean per Store moved by more than a factor of 3 from champion v1's "
        "training data for 3 of 3: Store 1 "
    ) in failed.value.reason
    # Every store's level about a hundred times its training data's (the new data also holds the
    # last six weeks, which the champion's training data leaves out).
    ratios = re.findall(r"Store \d [\d,]+ against [\d,]+ \(x([\d.]+)\)", failed.value.reason)
    assert len(ratios) == 3 and all(95 < float(ratio) < 105 for ratio in ratios)
    assert "--expect-label-shift" in failed.value.reason


def test_forecast_api_answers_with_intervals(served):
    answer = httpx.post(f"{served.url}/forecast", json={"store": 2, "horizon_days": 42}, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["store"] == 2 and body["model_version"] == "1"
    days = body["forecast"]
    assert len(days) == 42
    assert pd.to_datetime([d["ds"] for d in days]).is_monotonic_increasing
    assert all(d["yhat_lower"] <= d["yhat"] <= d["yhat_upper"] for d in days)
    assert (
        sum(d["yhat_upper"] > d["yhat_lower"] for d in days) >= 30
    )  # open days carry a real interval
    again = httpx.post(f"{served.url}/forecast", json={"store": 2, "horizon_days": 42}, timeout=60)
    assert again.json() == body
    assert httpx.get(f"{served.url}/model").json()["cache"]["hits"] >= 1


def test_forecast_api_refuses_unknown_stores_and_bad_horizons(served):
    unknown = httpx.post(
        f"{served.url}/forecast", json={"store": 99999, "horizon_days": 42}, timeout=30
    )
    assert unknown.status_code == 404 and "99999" in unknown.json()["error"]
    for horizon in (0, 10000):
        bad = httpx.post(
            f"{served.url}/forecast", json={"store": 2, "horizon_days": horizon}, timeout=30
        )
        assert bad.status_code == 422 and "horizon_days" in bad.json()["problems"][0]


def test_cli_forecast_draws_the_plot(first_run, mlflow_server, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from modelfactory.local.cli import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    png = tmp_path / "store1.png"
    result = CliRunner().invoke(
        app,
        ["forecast", "--store", "1", "--horizon", "42", "--plot", str(png), "--model", MODEL],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "store-sales-it v1" in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    unknown = CliRunner().invoke(app, ["forecast", "--store", "99999", "--model", MODEL])
    assert (
        unknown.exit_code == 1
        and "store 99999" in unknown.output
        and "Traceback" not in unknown.output
    )
