"""`modelfactory rollout ...`: traffic tags by hand, and the local automated rollout's commands."""

from __future__ import annotations

from typer.testing import CliRunner

from modelfactory.local.rollout_cli import rollout_app
from tests.support.serving import MODEL


def test_set_status_clear(registered, monkeypatch):
    uri, champion, challenger = registered
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    runner = CliRunner()
    result = runner.invoke(
        rollout_app, ["set", MODEL, "--mode", "canary", "--weight", "25", "--budget-ms", "30"]
    )
    assert result.exit_code == 0, result.output
    assert f"canary v{challenger} at 25%" in result.output and "budget 30 ms" in result.output
    status = runner.invoke(rollout_app, ["traffic", MODEL])
    assert f"champion v{champion}" in status.output and "25%" in status.output
    bad = runner.invoke(rollout_app, ["set", MODEL, "--mode", "blue-green"])
    assert bad.exit_code == 1 and "unknown" in bad.output
    cleared = runner.invoke(rollout_app, ["clear", MODEL])
    assert cleared.exit_code == 0 and f"champion v{champion} only" in cleared.output


def test_local_commands_queue_an_action_and_show_the_status(tmp_path, monkeypatch):
    from modelfactory.config import get_settings
    from modelfactory.local.rollouts import LocalRollouts
    from modelfactory.rollout.status import Status

    monkeypatch.setenv("MODELFACTORY_HOME", str(tmp_path))
    get_settings.cache_clear()
    runner = CliRunner()
    missing = runner.invoke(rollout_app, ["status", "nothing-here"])
    said = " ".join(missing.output.split())  # the terminal wraps long lines
    assert missing.exit_code == 1 and "modelfactory rollout run nothing-here" in said
    store = LocalRollouts(tmp_path / "rollouts")
    status = Status(
        phase="Paused",
        champion="1",
        challenger="2",
        weight=10,
        mode="canary",
        message="step 2/4 (pause until promoted) of v2",
    )
    store.save(
        "m", status, {"model": "m", "rollout": {"steps": [{"setWeight": 10}, {"pause": {}}]}}
    )
    shown = runner.invoke(rollout_app, ["status", "m"])
    assert (
        shown.exit_code == 0 and "Paused" in shown.output and "pause until promoted" in shown.output
    )
    promoted = runner.invoke(rollout_app, ["promote", "m"])
    assert promoted.exit_code == 0 and store.take_action("m") == "promote"
    assert runner.invoke(rollout_app, ["abort", "m"]).exit_code == 0
    assert store.take_action("m") == "abort" and store.take_action("m") is None
    get_settings.cache_clear()
