"""``modelfactory drift check|run`` and ``modelfactory feedback`` as a user runs them: against a
real MLflow server and a prediction store named by the usual environment variables."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from modelfactory.config import get_settings
from modelfactory.local.cli import app
from modelfactory.predictions.store import feedback_table
from modelfactory.sql import engine as store_engine
from tests.support.monitoring import MODEL, log_answers

pytestmark = pytest.mark.integration


@pytest.fixture
def environment(champion, tmp_path, monkeypatch):
    uri, _, model = champion
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MODELFACTORY_PREDICTION_STORE_URL", url)
    monkeypatch.setenv("MODELFACTORY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "160")
    get_settings.cache_clear()
    yield url, model
    get_settings.cache_clear()


def invoke(*args):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_drift_check_prints_columns_scores_flags_the_decision_and_the_report(
    environment, bank_months, tmp_path
):
    url, model = environment
    _, late = bank_months
    log_answers(url, model, late)
    html = tmp_path / "out" / "report.html"
    done = invoke("drift", "check", MODEL, "--since", "24h", "--html", str(html))
    assert done.exit_code == 0, done.output
    out = done.output
    assert f"{MODEL}: served rows logged" in out and f"{len(late):,} rows" in out
    line = next(line for line in out.splitlines() if "euribor3m" in line)
    assert "input" in line and "psi" in line and "DRIFT" in line
    assert "decision: drift_pending (a check only: nothing started)" in out
    assert "drift_report.html" in out and "get-artifact?path=drift_report.html" in out
    assert html.read_bytes().startswith(b"<html") or b"<!DOCTYPE" in html.read_bytes()[:200]
    state = tmp_path / "home" / "monitoring" / MODEL / "state.json"
    assert not state.exists()  # a check keeps no state


def test_drift_run_keeps_the_monitors_state_between_runs(environment, bank_months, tmp_path):
    url, model = environment
    _, late = bank_months
    log_answers(url, model, late.head(300))
    state = tmp_path / "home" / "monitoring" / MODEL / "state.json"
    done = invoke("drift", "run", "--model", MODEL)
    assert done.exit_code == 0, done.output
    assert "decision: insufficient_data" in done.output
    assert json.loads(state.read_text())["consecutiveDriftedChecks"] == 0
    log_answers(url, model, late.iloc[300:1500])
    done = invoke("drift", "run", "--model", MODEL)
    assert "decision: drift_pending" in done.output, done.output
    status = json.loads(state.read_text())  # what a DriftMonitor's status holds
    assert status["consecutiveDriftedChecks"] == 1
    last = status["lastResult"]
    assert (last["rows"], last["decision"]) == (1500, "drift_pending")
    assert "euribor3m" in last["driftedColumns"] and last["driftedShare"] > 0.3
    assert "/get-artifact?path=drift_report.html&run_uuid=" in last["reportUrl"]


def test_a_monitor_can_be_given_as_a_drift_monitor_manifest(environment, bank_months, tmp_path):
    url, model = environment
    _, late = bank_months
    log_answers(url, model, late.head(800))
    manifest = tmp_path / "monitor.yaml"
    manifest.write_text(
        "apiVersion: modelfactory.io/v1alpha1\nkind: DriftMonitor\n"
        f"metadata: {{name: {MODEL}}}\n"
        f"spec:\n  model: {MODEL}\n  schedule: '0 * * * *'\n  minRows: 1000\n"
    )
    done = invoke("drift", "check", "--config", str(manifest), MODEL)
    assert "800 rows in the window, the policy judges drift from 1000 rows" in done.output


def stored(url) -> dict:
    engine = store_engine(url)
    try:
        with engine.connect() as connection:
            return {
                (r.request_id, r.record): r.actual
                for r in connection.execute(sa.select(feedback_table))
            }
    finally:
        engine.dispose()


def test_feedback_loads_a_file_and_names_the_rows_at_fault(environment, bank_months, tmp_path):
    url, model = environment
    _, late = bank_months
    ids = log_answers(url, model, late.head(3))
    good = tmp_path / "actuals.csv"
    good.write_text(f"request_id,actual\n{ids[0]},yes\n{ids[1]},no\n{ids[2]},1\n{ids[0]},no\n")
    done = invoke("feedback", MODEL, "--data", str(good))
    assert done.exit_code == 0, done.output
    assert "3 ground-truth values" in done.output
    assert stored(url) == {(ids[0], 0): 0, (ids[1], 0): 0, (ids[2], 0): 1}

    bad = tmp_path / "bad.csv"
    bad.write_text(f"request_id,actual\n{ids[0]},yes\n{ids[1]},perhaps\n")
    done = invoke("feedback", MODEL, "--data", str(bad))
    assert done.exit_code == 1
    assert 'row 2: actual: expected "yes" or "no"' in " ".join(done.output.split())
    unknown = tmp_path / "unknown.csv"
    unknown.write_text(f"request_id,actual\n{ids[0]},yes\nnot-a-request,no\n")
    done = invoke("feedback", MODEL, "--data", str(unknown))
    said = " ".join(done.output.split())  # as read, whatever the terminal's width
    assert done.exit_code == 1 and "nothing stored" in said
    assert "no logged prediction of bank-drift for request_id 'not-a-request'" in said
    assert stored(url)[(ids[0], 0)] == 0  # neither refused file changed anything
