"""The retraining trigger on one machine: a monitor check whose policy says retrain runs the
compiled classification pipeline with the kfp local runner, on the champion's training data with
the labelled later months appended, and the run registers a new version behind the gate."""

from __future__ import annotations

import pytest

from modelfactory.local.retraining import LocalRetrainer
from modelfactory.monitoring.check import run_check
from modelfactory.monitoring.config import MonitorConfig
from modelfactory.monitoring.policy import MonitorState
from modelfactory.predictions.feedback import FeedbackStore, parse_feedback
from modelfactory.registry import Registry
from modelfactory.use_cases import CLASSIFICATION
from tests.support.monitoring import NOW, log_answers, train_champion

pytestmark = pytest.mark.integration
MODEL = "bank-drift-local"


def test_a_retrain_runs_the_compiled_pipeline_here_and_registers_a_version(
    mlflow_server, bank_months, tmp_path, isolated_home
):
    early, late = bank_months
    version, model = train_champion(
        mlflow_server, early.sample(8000, random_state=1), MODEL, tmp_path
    )
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    request_ids = log_answers(url, model, late, name=MODEL)
    store = FeedbackStore(url, MODEL)
    items = [{"request_id": r, "actual": y} for r, y in zip(request_ids, late["y"], strict=True)]
    store.record(parse_feedback(items, CLASSIFICATION.monitoring.check_actual, len(items)))
    store.close()
    steps = []
    config = MonitorConfig.model_validate(
        {
            "model": MODEL,
            "retrain": {
                "source": "feedback",
                "parameters": {"n_estimators": 20, "imbalance": "class_weight"},
            },
        }
    )
    result, state = run_check(
        config,
        MonitorState(consecutive_drifted_checks=1),  # the previous check found drift too
        CLASSIFICATION,
        now=NOW,
        tracking_uri=mlflow_server,
        store_url=url,
        report_dir=tmp_path / "reports",
        retrainer=LocalRetrainer(mlflow_server, isolated_home / "runs", steps.append),
    )
    assert result.decision.action == "retrain", result.retrain_error
    assert result.retrain_error is None
    started = result.retrain
    assert started.where == "local" and started.version == str(int(version) + 1)
    assert [e.task for e in steps if e.status == "SUCCESS"][-1] == "register-model"
    registry = Registry(mlflow_server)
    registered = registry.client.get_model_version(MODEL, started.version)
    assert registered.run_id == started.run_id
    # Judged on the newest labelled months, which the champion never saw, the version that
    # learned from the older ones wins; the pipeline's promotion is "rollout", so it waits as
    # challenger for the rollout and the champion serves on.
    assert registered.tags["promotion.decision"] == "promoted", registered.tags
    assert not started.promoted and started.alias == "challenger"
    assert registry.version_by_alias(MODEL, "challenger").version == started.version
    assert registry.version_by_alias(MODEL, "champion").version == version
    # It learned from what was served: the training run's rows include the labelled months.
    train_rows = int(registry.client.get_run(started.run_id).data.params["train_rows"])
    assert train_rows > 6400  # the champion's own training split was 6,400 rows
    assert (state.last_retrain.run_id, state.last_retrain.version) == (
        started.run_id,
        started.version,
    )
    tags = registry.client.get_run(result.mlflow_run_id).data.tags
    assert tags["retrain.version"] == started.version and tags["retrain.where"] == "local"
    assert tags["retrain.run_id"] == started.run_id
