"""The classifier from pipeline run to served model, with real parts only.

A real `mlflow server` (sqlite, served artifacts) on a free port, the pipeline run
by the kfp local SubprocessRunner on the real UCI bank-marketing file, and a real
`bentoml serve` process answering HTTP. Not covered here: containers (see
tests/containers) and a Kubernetes cluster (tests/cluster).
"""

from __future__ import annotations

import httpx
import mlflow
import pytest
from modelfactory_pipelines.classification import classification_pipeline
from prometheus_client.parser import text_string_to_metric_families

from modelfactory.classification.training import features
from modelfactory.local.pipeline_runs import PipelineFailed, run_locally
from modelfactory.local.ports import free_port
from modelfactory.local.serving import ServingProcess
from modelfactory.promotion import Comparison, GateEvidence
from modelfactory.registration import register_behind_gate
from modelfactory.registry import Registry
from modelfactory.use_cases import use_case

pytestmark = pytest.mark.integration
MODEL = "bank-marketing-it"


@pytest.fixture(scope="module")
def first_run(mlflow_server, bank_file, isolated_home):
    events = []
    summary = run_locally(
        classification_pipeline,
        {
            "source": str(bank_file),
            "mlflow_tracking_uri": mlflow_server,
            "model_name": MODEL,
            "n_estimators": 60,
        },
        isolated_home / "runs",
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
        log_file=isolated_home / "serving.log",
    )
    with process:
        yield process


def test_pipeline_registers_a_champion_that_beats_its_baseline(first_run, mlflow_server):
    summary, events = first_run
    finished = [e.task for e in events if e.status == "SUCCESS"]
    assert finished == [
        "ingest-data",
        "validate-data",
        "split-dataset",
        "train-classifier",
        "evaluate-classifier",
        "register-model",
    ]
    assert summary["version"] == "1" and summary["promoted"] and summary["alias"] == "champion"
    assert summary["candidate"] > summary["baseline"]
    registry = Registry(mlflow_server)
    champion = registry.version_by_alias(MODEL, "champion")
    assert champion.version == "1"
    assert registry.version_by_alias(MODEL, "challenger").version == "1"
    assert champion.tags["promotion.decision"] == "promoted"


def test_the_run_holds_metrics_signature_example_and_training_data(first_run, mlflow_server):
    summary, _ = first_run
    client = Registry(mlflow_server).client
    run = client.get_run(summary["run_id"])
    for name in ("roc_auc", "pr_auc", "f1", "true_positives", "false_positives"):
        assert (
            f"holdout_{name}" in run.data.metrics and f"baseline_holdout_{name}" in run.data.metrics
        )
    assert run.data.tags["modelfactory.batch_id"]
    assert [a.path for a in client.list_artifacts(summary["run_id"], "reference_data")] == [
        "reference_data/train"
    ]
    # The rows and labels it was accepted on, for the gate to score a later version on.
    assert [a.path for a in client.list_artifacts(summary["run_id"], "holdout_data")] == [
        "holdout_data/holdout"
    ]
    assert run.inputs.dataset_inputs[0].tags[0].value == "training"
    mlflow.set_tracking_uri(mlflow_server)
    info = mlflow.models.get_model_info(f"models:/{MODEL}/1")
    assert "duration" not in [c.name for c in info.signature.inputs.inputs]
    assert info.saved_input_example_info is not None


def test_bad_data_stops_the_run_naming_column_and_rows_and_registers_nothing(
    first_run, mlflow_server, real_bank, tmp_path, isolated_home
):
    bad = real_bank.head(500).drop(columns=["euribor3m"]).astype({"age": object})
    bad.loc[[2, 7], "age"] = "fifty"
    path = tmp_path / "bad.csv"
    bad.to_csv(path, sep=";", index=False)
    before = len(list(Registry(mlflow_server).versions(MODEL)))
    with pytest.raises(PipelineFailed) as failed:
        run_locally(
            classification_pipeline,
            {"source": str(path), "mlflow_tracking_uri": mlflow_server, "model_name": MODEL},
            isolated_home / "runs",
        )
    assert failed.value.task == "validate-data"
    assert "missing column(s): euribor3m" in failed.value.reason
    assert "column 'age': expected numbers, found 'fifty' in rows 3, 8" in failed.value.reason
    assert len(list(Registry(mlflow_server).versions(MODEL))) == before


def test_a_second_run_that_fails_the_gate_gets_no_alias_and_the_champion_keeps_serving(
    first_run, mlflow_server, bank_file, isolated_home
):
    summary = run_locally(
        classification_pipeline,
        {
            "source": str(bank_file),
            "mlflow_tracking_uri": mlflow_server,
            "model_name": MODEL,
            "n_estimators": 60,
            "promotion_margin": 0.001,
        },
        isolated_home / "runs",
    )
    assert summary["version"] == "2" and not summary["promoted"]
    assert "does not exceed the margin 0.001" in summary["reason"]
    registry = Registry(mlflow_server)
    assert registry.version_by_alias(MODEL, "champion").version == "1"
    # The pipeline's default promotion is "rollout": a rejected version gets no alias, never
    # rolled out; the challenger alias stays where it was.
    assert registry.version_by_alias(MODEL, "challenger").version == "1"
    assert registry.version_by_alias(MODEL, "champion").tags["promotion.decision"] == "promoted"
    assert registry.client.get_model_version(MODEL, "2").tags["promotion.decision"] == "rejected"


def test_under_rollout_promotion_a_version_that_passes_the_gate_waits_as_challenger(
    first_run, mlflow_server
):
    summary, _ = first_run
    registry = Registry(mlflow_server)
    model_info = {
        "run_id": summary["run_id"],
        "model_uri": registry.client.get_model_version(MODEL, "1").source,
    }
    better, worse = summary["candidate"], summary["candidate"] - 0.05
    # On the rows neither trained on, the champion scored lower; on its own holdout, the same.
    evidence = GateEvidence(
        "1", Comparison(1000, 8238, better, worse), Comparison(1000, 8238, better, better)
    )

    waiting = register_behind_gate(
        model_info,
        MODEL,
        use_case("classification"),
        lambda version, uri: evidence,
        tracking_uri=mlflow_server,
        promotion="rollout",
    )

    assert waiting["eligible"] and not waiting["promoted"] and waiting["alias"] == "challenger"
    assert "eligible for a rollout" in waiting["reason"]
    assert registry.version_by_alias(MODEL, "champion").version == "1"
    assert registry.version_by_alias(MODEL, "challenger").version == waiting["version"]


def test_served_champion_predicts_what_the_registered_model_predicts(
    served, real_bank, mlflow_server
):
    rows = features(real_bank.sample(20, random_state=1))
    answer = httpx.post(
        f"{served.url}/predict", json={"records": rows.to_dict(orient="records")}, timeout=30
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["model"] == MODEL and body["model_version"] == "1"
    assert answer.headers["x-model-version"] == "1"
    mlflow.set_tracking_uri(mlflow_server)
    reference = mlflow.sklearn.load_model(f"models:/{MODEL}/1").predict_proba(rows)[:, 1]
    served_probabilities = [p["probability"] for p in body["predictions"]]
    assert served_probabilities == pytest.approx(list(reference), abs=1e-9)
    assert {p["class"] for p in body["predictions"]} <= {"yes", "no"}


@pytest.mark.parametrize(
    "payload, status, fragment",
    [
        ({"records": [{"age": "forty"}]}, 422, 'records[0].age: expected an integer, got "forty"'),
        ({"records": [{}]}, 422, "records[0].job: missing"),
        ({"records": []}, 422, "records: expected at least one record"),
        ({"rows": []}, 422, "records: missing"),
        ([1, 2], 422, "records: missing"),
    ],
)
def test_bad_requests_get_4xx_naming_the_fields(served, payload, status, fragment):
    answer = httpx.post(f"{served.url}/predict", json=payload, timeout=30)
    assert answer.status_code == status
    assert any(fragment in problem for problem in answer.json()["problems"])


def test_malformed_json_is_refused_as_client_error(served):
    answer = httpx.post(
        f"{served.url}/predict",
        content=b"{not json",
        timeout=30,
        headers={"content-type": "application/json"},
    )
    assert 400 <= answer.status_code < 500
    assert "not valid JSON" in answer.json()["error"]


def test_health_readiness_model_card_and_metrics(served, real_bank):
    assert httpx.get(f"{served.url}/healthz").status_code == 200
    assert httpx.get(f"{served.url}/readyz").status_code == 200
    card = httpx.get(f"{served.url}/model").json()
    assert card["version"] == "1" and card["fast_path"] is True and card["parity_gap"] < 1e-9
    record = features(real_bank.head(1)).to_dict(orient="records")
    httpx.post(f"{served.url}/predict", json={"records": record}, timeout=30).raise_for_status()
    httpx.post(f"{served.url}/predict", json={"records": [{"age": 1}]}, timeout=30)
    samples = [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(
            httpx.get(f"{served.metrics_url}/metrics").text
        )
        for s in family.samples
    ]

    def total(name: str, **labels: str) -> float:
        return sum(
            value
            for sample, found, value in samples
            if sample == name and all(found.get(k) == v for k, v in labels.items())
        )

    assert total("modelfactory_predictions_total", model=MODEL, version="1") >= 1
    assert total("modelfactory_request_errors_total", model=MODEL, reason="invalid") >= 1
    assert total("modelfactory_predict_latency_seconds_count", model=MODEL, version="1") >= 1


def test_cli_lists_models_with_versions_aliases_and_gate_metrics(
    first_run, mlflow_server, monkeypatch
):
    from typer.testing import CliRunner

    from modelfactory.local.cli import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    result = CliRunner().invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert MODEL in result.output
    row = next(line for line in result.output.splitlines() if line.startswith("│ 1 "))
    assert "champion" in row and "roc_auc" in row and "promoted" in row


def test_cli_run_on_bad_data_prints_the_reason_without_a_traceback(
    mlflow_server, tmp_path, monkeypatch
):
    from typer.testing import CliRunner

    from modelfactory.local.cli import app

    path = tmp_path / "comma.csv"
    path.write_text("age,job,y\n30,admin.,no\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    result = CliRunner().invoke(
        app, ["run", "classification", "--data", str(path)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 1
    assert "failed at step 'validate-data'" in result.output
    assert "comma-separated" in result.output
    assert "Traceback" not in result.output
