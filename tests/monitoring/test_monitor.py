"""A monitor check from end to end with real parts: a champion trained on the UCI file's 2008
summer in a real MLflow server, its answers for 2009-2010 in the prediction log, ground truth,
the Evidently report, the decision recorded as an MLflow run, and a retraining run submitted by a
real ``kfp.Client`` (to a recording KFP API: no KFP server runs here)."""

from __future__ import annotations

import datetime as dt

import pytest

from modelfactory.data.bank_marketing import load_bank_marketing, validate_bank_marketing
from modelfactory.monitoring.check import run_check, run_monitor
from modelfactory.monitoring.config import MonitorConfig
from modelfactory.monitoring.policy import MonitorState
from modelfactory.monitoring.retrain import KfpRetrainer
from modelfactory.monitoring.state import JsonStateStore
from modelfactory.pipeline_spec import compiled_pipeline_file, pipeline_spec
from modelfactory.predictions.feedback import FeedbackStore, parse_feedback
from modelfactory.registry import Registry
from modelfactory.use_cases import CLASSIFICATION
from tests.support.monitoring import MODEL, NOW, log_answers

pytestmark = pytest.mark.integration
MACRO = {"emp.var.rate", "cons.price.idx", "cons.conf.idx", "euribor3m", "nr.employed"}


def config(**changes) -> MonitorConfig:
    return MonitorConfig.model_validate(
        {
            "model": MODEL,
            "window": {"since": "24h"},
            "retrain": {"source": "feedback", "parameters": {"n_estimators": 20}},
            **changes,
        }
    )


def label(url, request_ids, truth):
    store = FeedbackStore(url, MODEL)
    items = [
        {"request_id": request_id, "actual": value}
        for request_id, value in zip(request_ids, truth, strict=True)
    ]
    store.record(parse_feedback(items, CLASSIFICATION.monitoring.check_actual, len(items)))
    store.close()


def check_run(uri, run_id):
    client = Registry(uri).client
    return client.get_run(run_id), [a.path for a in client.list_artifacts(run_id)]


def test_later_months_drift_and_the_second_drifted_check_retrains_through_kfp(
    champion, bank_months, tmp_path, kfp_api
):
    uri, version, model = champion
    _, late = bank_months
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    request_ids = log_answers(url, model, late)
    retrainer = KfpRetrainer(kfp_api.url, experiment="retraining")
    options = dict(
        tracking_uri=uri, store_url=url, report_dir=tmp_path / "reports", retrainer=retrainer
    )

    first, state = run_check(config(), MonitorState(), CLASSIFICATION, now=NOW, **options)
    assert first.decision.action == "drift_pending", first.decision.reason
    assert MACRO <= set(first.drift.drifted_inputs)
    assert "probability" in first.drift.drifted_outputs  # the scores moved too
    assert first.rows == len(late) and first.champion_version == version
    assert state.consecutive_drifted_checks == 1 and kfp_api.runs == []
    run, artifacts = check_run(uri, first.mlflow_run_id)
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["monitoring.decision"] == "drift_pending"
    assert tags["monitoring.champion_version"] == version
    assert tags["monitoring.rows"] == str(len(late))
    assert tags["monitoring.window"].startswith(f"{MODEL}: served rows logged ")
    assert float(tags["monitoring.drifted_share"]) == pytest.approx(
        first.drift.drifted_share, abs=1e-4
    )
    assert MACRO <= set(tags["monitoring.drifted_columns"].split(","))
    assert metrics["drift.euribor3m"] == pytest.approx(
        next(c.score for c in first.drift.columns if c.column == "euribor3m")
    )
    assert {"drift_report.html", "drift_snapshot.json", "check.json"} <= set(artifacts)
    assert (
        run.info.experiment_id
        == Registry(uri).client.get_experiment_by_name(f"monitoring/{MODEL}").experiment_id
    )
    assert first.report_path.read_text().count("euribor3m") > 0

    label(url, request_ids, late["y"].tolist())  # the outcomes arrive
    # A champion of the 2008 summer alone barely ranks (holdout ROC-AUC about 0.56): the
    # realized figure falls about 0.02, which a 0.01 limit counts as the second trigger.
    tight = config(performance={"maxDrop": 0.01})
    second, state = run_check(
        tight, state, CLASSIFICATION, now=NOW + dt.timedelta(hours=1), **options
    )
    assert second.decision.action == "retrain"
    assert {"data_drift", "prediction_drift", "performance"} <= set(second.decision.triggers)
    [realized] = second.performance
    assert realized.version == version and realized.labelled_rows == len(late)
    assert realized.realized["roc_auc"] < realized.holdout["roc_auc"] - 0.01
    assert f"realized roc_auc {realized.realized['roc_auc']:.4f}" in second.decision.reason

    # What a cluster would have been sent: the compiled YAML (caching off) and the arguments.
    [submitted] = kfp_api.runs
    compiled = pipeline_spec(compiled_pipeline_file("classification").read_text())
    # The compiled file as kfp.Client sends it: the spec, and its tasks' Kubernetes settings.
    tasks = submitted["pipeline_spec"]["pipeline_spec"]["root"]["dag"]["tasks"]
    assert all(task["cachingOptions"] == {} for task in tasks.values())
    for task in compiled["root"]["dag"]["tasks"].values():
        task["cachingOptions"] = {}
    assert submitted["pipeline_spec"]["pipeline_spec"] == compiled
    parameters = submitted["runtime_config"]["parameters"]
    assert parameters["model_name"] == MODEL and parameters["n_estimators"] == 20
    # Split in file order: the holdout is the newest half of the labelled months, rows the
    # champion never saw, so the gate compares the two versions fairly.
    assert parameters["split_strategy"] == "sequential"
    holdout_rows = round(parameters["holdout_fraction"] * (6400 + len(late)))
    assert holdout_rows == len(late) // 2
    assert submitted["display_name"].startswith(f"retrain-{MODEL}-")
    # The training data: the champion's training split with the labelled later months appended.
    trained_on = validate_bank_marketing(load_bank_marketing(parameters["source"]), "source")
    assert len(trained_on) == 6400 + len(late)
    assert trained_on["duration"].isna().sum() == len(late)
    newest = trained_on.tail(1)[["age", "job", "euribor3m", "y"]].to_dict(orient="records")
    assert newest == late.tail(1)[["age", "job", "euribor3m", "y"]].to_dict(orient="records")

    assert second.retrain.run_id == "run-1" and second.retrain.where == "kfp"
    assert state.last_retrain.run_id == "run-1" and state.consecutive_drifted_checks == 0
    assert state.last_retrain.time == NOW + dt.timedelta(hours=1)
    run, artifacts = check_run(uri, second.mlflow_run_id)
    assert run.data.tags["retrain.run_id"] == "run-1"
    assert run.data.tags["retrain.reason"] == second.decision.reason
    assert run.data.tags["retrain.where"] == "kfp"
    assert run.data.metrics[f"realized.v{version}.roc_auc"] == pytest.approx(
        realized.realized["roc_auc"]
    )

    third, _ = run_check(
        config(), state, CLASSIFICATION, now=NOW + dt.timedelta(hours=2), **options
    )
    assert third.decision.action == "drift_pending"  # counting afresh; then the cooldown holds
    assert len(kfp_api.runs) == 1


def test_too_few_rows_never_retrain_and_the_decision_is_recorded(
    champion, bank_months, kfp_api, tmp_path
):
    uri, _, model = champion
    _, late = bank_months
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    request_ids = log_answers(url, model, late.head(120))
    label(url, request_ids, late["y"].head(120).tolist())
    result, state = run_check(
        config(),
        MonitorState(consecutive_drifted_checks=7),
        CLASSIFICATION,
        now=NOW,
        tracking_uri=uri,
        store_url=url,
        report_dir=tmp_path,
        retrainer=KfpRetrainer(kfp_api.url),
    )
    assert result.decision.action == "insufficient_data"
    assert "120 rows in the window" in result.decision.reason
    assert result.drift is None and kfp_api.runs == []
    assert state.consecutive_drifted_checks == 7 and state.last_retrain is None
    run, _ = check_run(uri, result.mlflow_run_id)
    assert run.data.tags["monitoring.decision"] == "insufficient_data"
    assert run.data.tags["monitoring.reason"] == result.decision.reason


def test_a_retrain_that_cannot_start_keeps_the_state_and_says_why(
    champion, bank_months, kfp_api, tmp_path
):
    uri, _, model = champion
    _, late = bank_months
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    log_answers(url, model, late.head(1500))
    typo = config(retrain={"source": str(tmp_path / "x.csv"), "parameters": {"n_trees": 5}})
    store = JsonStateStore(tmp_path / "state.json")
    store.save(MonitorState(consecutive_drifted_checks=1))
    result, state = run_monitor(
        typo,
        store,
        CLASSIFICATION,
        now=NOW,
        tracking_uri=uri,
        store_url=url,
        report_dir=tmp_path,
        retrainer=KfpRetrainer(kfp_api.url),
    )
    assert result.decision.action == "retrain" and result.retrain is None
    assert "n_trees: the pipeline takes no such parameter" in result.retrain_error
    assert kfp_api.runs == []
    assert state.last_retrain is None and state.consecutive_drifted_checks == 2  # tried again next
    assert store.load() == state
    run, _ = check_run(uri, result.mlflow_run_id)
    assert "n_trees" in run.data.tags["retrain.error"]


def test_feedback_as_the_source_needs_new_labels(champion, bank_months, kfp_api, tmp_path):
    uri, _, model = champion
    _, late = bank_months
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    log_answers(url, model, late.head(1500))
    result, state = run_check(
        config(),
        MonitorState(consecutive_drifted_checks=1),
        CLASSIFICATION,
        now=NOW,
        tracking_uri=uri,
        store_url=url,
        report_dir=tmp_path,
        retrainer=KfpRetrainer(kfp_api.url),
    )
    assert result.decision.retrain and kfp_api.runs == []
    assert "no new labelled predictions to retrain on" in result.retrain_error
    assert state.last_retrain is None


def test_a_check_of_a_model_without_a_champion_is_refused_by_name(
    mlflow_server, tmp_path, bank_months
):
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    from tests.support.prediction_log import write_log

    _, late = bank_months
    records = late.head(600).to_dict(orient="records")
    write_log(
        url, records, [{"probability": 0.5}] * 600, "nobody", start=NOW - dt.timedelta(hours=1)
    )
    with pytest.raises(Exception, match="nobody has no champion"):
        run_check(
            MonitorConfig(model="nobody", useCase="classification"),
            MonitorState(),
            CLASSIFICATION,
            now=NOW,
            tracking_uri=mlflow_server,
            store_url=url,
            report_dir=tmp_path,
        )


def test_the_drift_monitor_spec_is_the_config():
    spec = {
        "model": "bank-marketing",
        "window": {"since": "6h"},
        "minRows": 1000,
        "drift": {
            "numeric": {"method": "wasserstein", "threshold": 0.2},
            "columns": {"euribor3m": {"method": "psi", "threshold": 0.05}},
            "driftedShare": 0.5,
            "decisiveColumns": ["euribor3m"],
            "consecutiveChecks": 3,
        },
        "performance": {"since": "14d", "maxDrop": 0.03, "minLabelledRows": 500},
        "retrain": {"enabled": True, "source": "s3://bucket/bank.csv", "cooldown": "12h"},
    }
    policy = MonitorConfig.model_validate(spec).policy()
    assert (policy.min_rows, policy.drifted_share, policy.decisive) == (1000, 0.5, ("euribor3m",))
    assert (policy.consecutive_checks, policy.cooldown) == (3, dt.timedelta(hours=12))
    assert (policy.max_performance_drop, policy.min_labelled_rows) == (0.03, 500)
    with pytest.raises(ValueError, match="retrain.cooldown: 'soon' is not a duration"):
        MonitorConfig.model_validate({**spec, "retrain": {"cooldown": "soon"}})
    with pytest.raises(ValueError, match="unknown drift method 'psy'"):
        MonitorConfig.model_validate({**spec, "drift": {"numeric": {"method": "psy"}}})
    with pytest.raises(ValueError, match="minRow"):
        MonitorConfig.model_validate({**spec, "minRow": 3})  # a misspelt field is named
