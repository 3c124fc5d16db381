"""`modelfactory rollout set|status|clear` writes and reads the registry tags serving follows."""

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
    status = runner.invoke(rollout_app, ["status", MODEL])
    assert f"champion v{champion}" in status.output and "25%" in status.output
    bad = runner.invoke(rollout_app, ["set", MODEL, "--mode", "blue-green"])
    assert bad.exit_code == 1 and "unknown" in bad.output
    cleared = runner.invoke(rollout_app, ["clear", MODEL])
    assert cleared.exit_code == 0 and f"champion v{champion} only" in cleared.output
