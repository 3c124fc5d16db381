"""The daily anomaly batch's schedules: the KFP recurring run's arguments and the crontab line."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from modelfactory_pipelines.anomaly import COMPILED, RECURRING_RUN_NAME, create_daily_recurring_run

from modelfactory.anomaly.crontab import MARKER, CrontabError, crontab_line, install_line
from modelfactory.anomaly.schedule import DailySchedule


class FakeKfpClient:
    def __init__(self):
        self.calls = []

    def create_experiment(self, name, description=None, namespace=None):
        self.calls.append(("create_experiment", {"name": name}))
        return SimpleNamespace(experiment_id="exp-1")

    def create_recurring_run(self, **kwargs):
        self.calls.append(("create_recurring_run", kwargs))
        return SimpleNamespace(recurring_run_id="rr-1")


def test_recurring_run_is_daily_one_at_a_time_with_the_compiled_pipeline():
    client = FakeKfpClient()
    run = create_daily_recurring_run(
        client,
        source="s3://rides/today.parquet",
        schedule=DailySchedule(hour=3, minute=30),
        staging_url="postgresql+psycopg://etl@db/staging",
    )
    assert run.recurring_run_id == "rr-1"
    (_, experiment), (_, kwargs) = client.calls
    assert experiment == {"name": "taxi-anomaly"}
    assert kwargs["experiment_id"] == "exp-1" and kwargs["job_name"] == RECURRING_RUN_NAME
    assert kwargs["cron_expression"] == "0 30 3 * * *"  # KFP's six fields, seconds first
    assert kwargs["max_concurrency"] == 1 and kwargs["no_catchup"] is True
    assert kwargs["pipeline_package_path"] == str(COMPILED) and COMPILED.exists()
    assert kwargs["params"]["source"] == "s3://rides/today.parquet"
    assert kwargs["params"]["staging_url"] == "postgresql+psycopg://etl@db/staging"
    from modelfactory.pipeline_spec import pipeline_spec

    inputs = pipeline_spec(COMPILED.read_text())["root"]["inputDefinitions"]["parameters"]
    assert set(kwargs["params"]) <= set(
        inputs
    )  # every parameter the run passes exists in the pipeline


def test_crontab_line_runs_yesterdays_batch_and_logs(tmp_path):
    line = crontab_line(
        DailySchedule(hour=2, minute=15),
        tmp_path,
        source="/data/rides today.csv",
        executable="/opt/venv/bin/modelfactory",
    )
    assert line.startswith("15 2 * * * ")
    assert "/opt/venv/bin/modelfactory run anomaly" in line
    assert '--batch-date "$(date -u -d "1 day ago" +\\%F)"' in line  # cron needs % escaped
    assert "--data '/data/rides today.csv'" in line
    assert f"MODELFACTORY_HOME={tmp_path}" in line and line.endswith(MARKER)


def _fake_crontab(tmp_path: Path, existing: str) -> Path:
    table = tmp_path / "table"
    table.write_text(existing)
    program = tmp_path / "crontab"
    program.write_text(f'#!/bin/sh\nif [ "$1" = -l ]; then cat {table}; else cat > {table}; fi\n')
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    return program


def test_install_replaces_an_earlier_line_and_keeps_the_others(tmp_path):
    program = _fake_crontab(tmp_path, f"0 1 * * * backup.sh\n0 2 * * * old run {MARKER}\n")
    install_line(f"5 2 * * * new run {MARKER}", crontab=str(program))
    assert (tmp_path / "table").read_text().splitlines() == [
        "0 1 * * * backup.sh",
        f"5 2 * * * new run {MARKER}",
    ]


def test_install_without_crontab_says_what_to_add(monkeypatch):
    monkeypatch.setenv("PATH", os.devnull)
    with pytest.raises(CrontabError, match="add this line"):
        install_line("0 2 * * * x")


def test_cli_schedule_prints_the_line(tmp_path):
    from typer.testing import CliRunner

    from modelfactory.local.cli import app

    result = CliRunner().invoke(app, ["schedule", "anomaly", "--hour", "4"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "0 4 * * * " in result.output and "run anomaly" in result.output
