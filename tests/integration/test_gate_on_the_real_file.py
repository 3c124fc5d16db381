"""The promotion gate on the real UCI bank-marketing file, as a user meets it with `modelfactory
run --promotion direct`: a file whose every label was flipped never becomes champion, and a
retrain of the same file with another seed is judged on the rows neither version trained on.

A real `mlflow server`, the compiled classification pipeline run by the kfp local runner through
the CLI's own flow (``workflows.run_pipeline`` and ``print_registration``, what `modelfactory run`
calls) and `modelfactory models` through the CLI.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from rich.console import Console

from modelfactory.classification.training import evaluate_classifier
from modelfactory.data import bank_marketing as bank
from modelfactory.local import workflows
from modelfactory.local.pipeline_runs import PipelineFailed
from modelfactory.registry import Registry

pytestmark = pytest.mark.integration
MODEL = "bank-marketing-gate"
# As `modelfactory run classification --data FILE --promotion direct [--seed N] ...` would, with
# fewer trees (the gate, not the forest, is under test).
OPTIONS = {"n_estimators": 60, "model_name": MODEL}


def run(mlflow_server, source, seed=42, **flags):
    """One `modelfactory run`: the pipeline's summary and what the command printed."""
    console = Console(record=True, width=200, force_terminal=False)
    summary = workflows.run_pipeline(
        "classification",
        mlflow_server,
        console,
        source=str(source),
        promotion="direct",
        **workflows.use_case_arguments("classification", seed=seed, **flags),
        **OPTIONS,
    )
    workflows.print_registration(summary, mlflow_server, console)
    return summary, console.export_text()


@pytest.fixture(scope="module")
def champion(mlflow_server, bank_file):
    summary, _ = run(mlflow_server, bank_file)
    assert summary["version"] == "1" and summary["promoted"], summary["reason"]
    return summary


@pytest.fixture(scope="module")
def flipped_file(bank_file, tmp_path_factory):
    """The real file with every label flipped: 4,640 yes become no, 36,548 no become yes."""
    raw = bank.load_bank_marketing(bank_file)
    raw["y"] = np.where(raw["y"] == "yes", "no", "yes")
    return bank.write_bank_marketing(raw, tmp_path_factory.mktemp("flipped") / "flipped.csv")


@pytest.fixture(scope="module")
def flipped_at_the_gate(champion, mlflow_server, flipped_file):
    """The flipped file, told that its label shift is expected: it reaches the gate."""
    return run(mlflow_server, flipped_file, expect_label_shift=True)


@pytest.fixture(scope="module")
def other_seed(champion, mlflow_server, bank_file):
    """The same file, split and trained with seed 7: most of its holdout is v1's training data."""
    return run(mlflow_server, bank_file, seed=7)


def versions(mlflow_server) -> list[str]:
    return [v.version for v in Registry(mlflow_server).versions(MODEL)]


def test_a_flipped_file_stops_at_validate_data_naming_the_column_and_both_rates(
    champion, mlflow_server, flipped_file
):
    before = versions(mlflow_server)
    with pytest.raises(PipelineFailed) as failed:
        run(mlflow_server, flipped_file)
    assert failed.value.task == "validate-data"
    assert (
        "target column 'y': positive rate ('yes') 88.7% against 11.3% in champion v1's training "
        "data, 77.5 points apart (more than 25 allowed)"
    ) in failed.value.reason
    assert "--expect-label-shift" in failed.value.reason
    assert versions(mlflow_server) == before


def test_a_flipped_file_said_to_be_expected_is_refused_on_the_champions_own_holdout(
    flipped_at_the_gate, mlflow_server
):
    summary, printed = flipped_at_the_gate
    assert not summary["promoted"] and not summary["eligible"]
    registry = Registry(mlflow_server)
    assert registry.version_by_alias(MODEL, "champion").version == "1"
    own = summary["evidence"]["champion_holdout"]
    # Scored with the labels v1 was accepted on, on v1's holdout rows neither version trained on.
    assert own["rows"] >= 500 and own["champion"] > 0.75 and own["candidate"] < 0.3
    assert summary["reason"].startswith(
        f"roc_auc {own['candidate']:.4f} vs champion v1's {own['champion']:.4f} on champion v1's "
        f"holdout ({own['rows']:,} rows neither version trained on, with the labels champion v1 "
        "was accepted on)"
    )
    # On its own (flipped) labels it looked better: the gate says so, and is not fooled.
    fresh = summary["evidence"]["fresh"]
    assert fresh["candidate"] > 0.75 and fresh["champion"] < 0.3
    assert f"on {fresh['rows']:,} rows neither version trained on (of 8,238" in summary["reason"]
    tags = registry.client.get_model_version(MODEL, summary["version"]).tags
    assert (
        tags["promotion.decision"] == "rejected" and tags["promotion.reason"] == summary["reason"]
    )
    assert tags["promotion.champion_holdout_rows"] == str(own["rows"])
    assert "gate evidence against champion v1" in printed and "reason: roc_auc" in printed


def test_a_retrain_with_another_seed_is_judged_on_rows_neither_version_trained_on(
    other_seed, mlflow_server, tmp_path
):
    summary, printed = other_seed
    fresh = summary["evidence"]["fresh"]
    # About a fifth of its 8,238 holdout rows were in v1's holdout too; the rest v1 trained on.
    assert 1000 < fresh["rows"] < 2000 and fresh["of_rows"] == 8238
    assert (
        f"{fresh['rows']:,} rows neither version trained on (of 8,238 holdout rows; "
        f"{8238 - fresh['rows']:,} were in champion v1's or this run's training data)"
    ) in summary["reason"]
    # Both score alike there; on this run's whole holdout v1 would have scored in-sample.
    assert abs(fresh["candidate"] - fresh["champion"]) < 0.03
    holdout = mlflow.artifacts.download_artifacts(
        run_id=summary["run_id"],
        artifact_path="holdout_data",
        dst_path=str(tmp_path),
        tracking_uri=mlflow_server,
    )
    mlflow.set_tracking_uri(mlflow_server)
    v1 = mlflow.sklearn.load_model(f"models:/{MODEL}/1")
    in_sample = evaluate_classifier(v1, _read(holdout))
    assert in_sample["roc_auc"] > fresh["champion"] + 0.05
    # Whatever it decided, it did not decide on v1's in-sample score.
    assert f"{in_sample['roc_auc']:.4f}" not in summary["reason"]
    assert (
        f"on champion v1's holdout ({summary['evidence']['champion_holdout']['rows']:,}"
        in (summary["reason"])
    )
    metrics = Registry(mlflow_server).run_metrics(summary["run_id"])
    assert metrics["gate_fresh_rows"] == fresh["rows"]
    assert metrics["gate_fresh_champion_roc_auc"] == pytest.approx(fresh["champion"])
    assert "this run's holdout" in printed and f"{fresh['rows']:,}" in printed


def test_models_lists_each_decision_with_its_rows_and_reason(
    flipped_at_the_gate, other_seed, mlflow_server, monkeypatch
):
    from typer.testing import CliRunner

    from modelfactory.local.cli import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    result = CliRunner().invoke(app, ["models"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    flipped, retrained = flipped_at_the_gate[0], other_seed[0]
    for summary in (flipped, retrained):
        fresh = summary["evidence"]["fresh"]
        assert f"{fresh['rows']:,} rows: {fresh['candidate']:.4f} vs v1" in result.output
        assert f"v{summary['version']}: {summary['reason'][:60]}" in result.output


def _read(folder: str):
    from pathlib import Path

    import pandas as pd

    return pd.concat([pd.read_parquet(p) for p in sorted(Path(folder).iterdir())])
