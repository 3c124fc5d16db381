"""Batch scoring for real: `modelfactory score` and the compiled batch-scoring pipeline, a real
MLflow server, the real UCI file (with a few rows broken on purpose), sqlite, PostgreSQL and
Parquet destinations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from modelfactory.data.bank_marketing import FEATURES, load_bank_marketing
from modelfactory.local.cli import app
from modelfactory.local.pipeline_runs import compiled_pipeline, run_locally
from modelfactory.scoring.results import FORECASTS, REJECTS, SCORES, read_batch
from tests.support.serving import MODEL

pytestmark = pytest.mark.integration
BROKEN = {4: ("age", "forty"), 9: ("job", None), 19: ("campaign", 2.5)}  # 0-based rows


@pytest.fixture(scope="module")
def bank_batch(bank_file, tmp_path_factory):
    """The real UCI file as a batch, three of its rows broken; with its file row numbers."""
    frame = load_bank_marketing(bank_file).astype({"age": object, "campaign": object})
    for row, (column, value) in BROKEN.items():
        frame.loc[row, column] = value
    path = tmp_path_factory.mktemp("batch") / "customers.csv"
    frame.to_csv(path, sep=";", index=False)
    return path, frame


def _score(monkeypatch, uri, *args):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    result = CliRunner().invoke(app, ["score", *args], env={"COLUMNS": "200"})
    return result


def test_cli_scores_every_good_row_and_rejects_the_broken_ones_with_reasons(
    registered, bank_batch, served_models, tmp_path, monkeypatch
):
    uri, champion, _ = registered
    path, frame = bank_batch
    to = f"sqlite:///{tmp_path / 'scores.db'}"
    result = _score(monkeypatch, uri, MODEL, "--data", str(path), "--to", to, "--batch-id", "b1")
    assert result.exit_code == 0, result.output
    assert f"{len(frame):,} rows read" in result.output and "3 rejected" in result.output
    assert "rows/s" in result.output

    scores = read_batch(to, SCORES, "b1")
    assert len(scores) == len(frame) - 3
    assert set(scores["model_name"]) == {MODEL} and set(scores["model_version"]) == {champion}
    rejects = read_batch(to, REJECTS, "b1").set_index("row_key")
    assert sorted(rejects.index, key=int) == ["5", "10", "20"]  # the file's rows, from 1
    assert rejects.loc["5", "reason"] == 'age: expected an integer, got "forty"'
    assert rejects.loc["10", "reason"] == "job: missing"
    assert rejects.loc["20", "reason"] == "campaign: expected an integer, got 2.5"
    assert json.loads(rejects.loc["5", "record"])["age"] == "forty"

    # The same probabilities as the served model answers, record by record.
    served = served_models[champion]
    sample = frame.drop(index=list(BROKEN)).sample(300, random_state=0)
    answers = served.predict(
        sample[list(FEATURES)].astype({"age": int, "campaign": int}).to_dict("records")
    )
    by_key = scores.set_index("row_key")
    keys = [str(i + 1) for i in sample.index]
    np.testing.assert_allclose(
        by_key.loc[keys, "probability"], [a["probability"] for a in answers], atol=1e-9
    )
    assert by_key.loc[keys, "prediction"].tolist() == [a["class"] for a in answers]


def test_a_rerun_replaces_its_batch_in_postgresql_and_a_failed_one_changes_nothing(
    registered, bank_batch, postgres_url, tmp_path, monkeypatch
):
    uri, _, challenger = registered
    path, frame = bank_batch
    for _ in range(2):
        args = ["--data", str(path), "--to", postgres_url, "--batch-id", "daily"]
        assert _score(monkeypatch, uri, MODEL, *args).exit_code == 0
    other = ["--data", str(path), "--to", postgres_url, "--batch-id", "other"]
    assert _score(monkeypatch, uri, MODEL, *other, "--version", challenger).exit_code == 0
    daily, every = read_batch(postgres_url, SCORES, "daily"), read_batch(postgres_url, SCORES)
    assert len(daily) == len(frame) - 3 and len(every) == 2 * (len(frame) - 3)
    assert set(read_batch(postgres_url, SCORES, "other")["model_version"]) == {challenger}

    # A key column with repeated values cannot be written: the transaction rolls back whole.
    repeated = _score(
        monkeypatch,
        uri,
        MODEL,
        "--data",
        str(path),
        "--to",
        postgres_url,
        "--batch-id",
        "daily",
        "--key",
        "month",
    )
    assert repeated.exit_code == 1 and "nothing changed" in repeated.output
    assert "a row key repeats" in repeated.output and "Traceback" not in repeated.output
    pd.testing.assert_frame_equal(read_batch(postgres_url, SCORES, "daily"), daily)


def test_a_source_without_a_model_input_stops_before_anything_is_written(
    registered, bank_batch, tmp_path, monkeypatch
):
    uri, _, _ = registered
    path, frame = bank_batch
    lacking = tmp_path / "lacking.parquet"
    frame.drop(columns=["euribor3m"]).astype(str).to_parquet(lacking)
    out = tmp_path / "out.parquet"
    result = _score(monkeypatch, uri, MODEL, "--data", str(lacking), "--to", str(out))
    assert result.exit_code == 1 and "missing column(s) euribor3m" in result.output
    assert not out.exists()


def test_the_pipeline_fans_out_over_row_groups_and_matches_the_cli(
    registered, bank_batch, isolated_home, tmp_path, monkeypatch
):
    uri, _, _ = registered
    _, frame = bank_batch
    source = tmp_path / "customers.parquet"
    frame.astype({"age": str, "campaign": str}).to_parquet(source, row_group_size=10_000)
    by_cli = tmp_path / "cli.parquet"
    args = ["--data", str(source), "--to", str(by_cli), "--batch-id", "p"]
    assert _score(monkeypatch, uri, MODEL, *args).exit_code == 0
    events = []
    summary = run_locally(
        compiled_pipeline("batch_scoring"),
        {
            "to": str(tmp_path / "pipeline.parquet"),
            "model_name": MODEL,
            "data": str(source),
            "batch_id": "p",
            "n_partitions": 3,
            "mlflow_tracking_uri": uri,
        },
        isolated_home / "batch-runs",
        events.append,
    )
    assert [e.task for e in events if e.status == "running"].count("score-partition") == 3
    assert summary["parts"] == 3 and summary["rejects"] == 3
    assert summary["results"] == len(frame) - 3
    ours = read_batch(str(tmp_path / "pipeline.parquet"), SCORES)
    cli = read_batch(str(by_cli), SCORES)
    # Each row's trees are summed in one order whichever thread walks it: equal, exactly.
    pd.testing.assert_frame_equal(ours.drop(columns="scored_at"), cli.drop(columns="scored_at"))
    assert len(read_batch(str(tmp_path / "pipeline.parquet"), REJECTS)) == 3


def test_the_forecaster_writes_every_store_times_the_horizon(
    mlflow_server, model_set_dir, model_set, tmp_path, monkeypatch
):
    import mlflow

    from modelfactory.forecasting.model_set import forecast
    from modelfactory.forecasting.registered import log_model_set
    from modelfactory.registry import Registry

    name = "store-sales-batch"
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_experiment(name)
    with mlflow.start_run() as run:
        info = log_model_set(model_set_dir)
    registry = Registry(mlflow_server)
    version = registry.register(name, info.model_uri, run.info.run_id, "forecasting").version
    registry.set_alias(name, "champion", version)
    to = f"sqlite:///{tmp_path / 'forecasts.db'}"
    result = _score(monkeypatch, mlflow_server, name, "--horizon", "14", "--to", to)
    assert result.exit_code == 0, result.output
    forecasts = read_batch(to, FORECASTS)
    assert len(forecasts) == 3 * 14 and sorted(forecasts["store"].unique()) == [1, 2, 3]
    expected = forecast(model_set.store_model(2), 14)
    store2 = forecasts[forecasts["store"] == 2]
    np.testing.assert_allclose(store2["yhat"], expected["yhat"], rtol=1e-9)
    assert [str(d) for d in store2["ds"]] == [f"{d:%Y-%m-%d}" for d in expected["ds"]]
    refused = _score(monkeypatch, mlflow_server, name, "--data", "x.csv", "--to", to)
    assert refused.exit_code == 1 and "takes no --data" in refused.output
