"""Classification steps: split, train (logged to MLflow), evaluate on the holdout, register behind
the gate (judged on rows neither version trained on, :func:`gate_evidence`)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path

import mlflow
from mlflow.models import infer_signature

from modelfactory.classification import CLASSIFICATION
from modelfactory.classification.metrics import classification_metrics
from modelfactory.classification.training import (
    ClassifierConfig,
    evaluate_classifier,
    features,
    roc_auc_difference_error,
    train_classifier,
)
from modelfactory.data import bank_marketing as bank
from modelfactory.data.identity import unseen
from modelfactory.data.io import read_dataset, write_dataset
from modelfactory.data.split import class_balance_warnings, split_strategy
from modelfactory.promotion import Comparison, GateEvidence
from modelfactory.registration import register_behind_gate
from modelfactory.registry import (
    HOLDOUT_DATA_PATH,
    REFERENCE_DATA_PATH,
    Registry,
    resolve_tracking_uri,
)

GATE_METRIC = CLASSIFICATION.gate
# skops refuses tree internals unless trusted; we trust the trees we trained ourselves.
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]
EXPERIMENT = CLASSIFICATION.model_name


def split(
    data_path: str,
    train_path: str,
    holdout_path: str,
    strategy: str = "random",
    holdout_fraction: float = 0.2,
    seed: int = 42,
) -> dict:
    frame = read_dataset(data_path)
    parts = split_strategy(strategy, holdout_fraction, seed, stratify_on=bank.TARGET).split(frame)
    warnings = class_balance_warnings(
        parts, bank.target_vector(parts.train), bank.target_vector(parts.holdout)
    )
    write_dataset(parts.train, train_path)
    write_dataset(parts.holdout, holdout_path)
    return {
        "train_rows": len(parts.train),
        "holdout_rows": len(parts.holdout),
        "strategy": strategy,
        "warnings": warnings,
    }


def train(
    train_path: str,
    model_path: str,
    tracking_uri: str = "",
    batch_id: str = "",
    source: str = "",
    config: ClassifierConfig | None = None,
    experiment: str = EXPERIMENT,
) -> dict:
    """Train model and baseline, log both to a new MLflow run with the training data as
    reference."""
    config = config or ClassifierConfig()
    mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
    mlflow.set_experiment(experiment)
    train_frame = read_dataset(train_path)
    trained = train_classifier(train_frame, config)
    X = features(train_frame)
    with mlflow.start_run(run_name=f"{experiment}-{batch_id}" if batch_id else None) as run:
        mlflow.set_tags(
            {
                "modelfactory.use_case": "classification",
                "modelfactory.batch_id": batch_id,
                "modelfactory.source": source,
            }
        )
        mlflow.log_params(
            {
                **asdict(config),
                "imbalance_chosen": trained.imbalance,
                "train_rows": len(train_frame),
                "train_positive_share": round(float(bank.target_vector(train_frame).mean()), 4),
            }
        )
        mlflow.log_metrics(
            {f"validation_pr_auc_{k}": v for k, v in trained.validation_pr_auc.items()}
        )
        mlflow.log_input(
            mlflow.data.from_pandas(  # type: ignore[attr-defined]
                train_frame,
                source=source or train_path,
                name=f"train-{batch_id}",
                targets=bank.TARGET,
            ),
            context="training",
        )
        mlflow.log_artifact(
            train_path, REFERENCE_DATA_PATH
        )  # drift detection compares against this
        sample = X.head(200)
        signature = infer_signature(sample, trained.model.predict_proba(sample))
        logged = {}
        for name, model in (("model", trained.model), ("baseline", trained.baseline)):
            logged[name] = mlflow.sklearn.log_model(
                model,
                name=name,
                signature=signature,
                input_example=X.head(5),
                skops_trusted_types=TRUSTED_TYPES,
                pyfunc_predict_fn="predict_proba",
                pip_requirements=_requirements(),
                metadata={"labels": ["no", bank.POSITIVE], "threshold": 0.5},
            ).model_uri
    result = {
        "run_id": run.info.run_id,
        "model_uri": logged["model"],
        "baseline_uri": logged["baseline"],
        "imbalance": trained.imbalance,
        "tracking_uri": mlflow.get_tracking_uri(),
    }
    Path(model_path).parent.mkdir(parents=True, exist_ok=True)
    Path(model_path).write_text(json.dumps(result, indent=2))
    return result


def _requirements() -> list[str]:
    """What the model needs to load, stated rather than inferred (inference loads the model in a
    subprocess and costs tens of seconds per model)."""
    from importlib.metadata import version

    return [
        f"{package}=={version(package)}"
        for package in ("mlflow", "scikit-learn", "skops", "pandas", "numpy")
    ]


def load_classifier(model_uri: str):
    return mlflow.sklearn.load_model(model_uri)


def evaluate(model_info: dict, holdout_path: str, tracking_uri: str = "") -> dict:
    """Score model and baseline on the same holdout; log ``holdout_*`` and
    ``baseline_holdout_*``, and the holdout itself (``holdout_data/``: a later gate scores its
    challenger on the rows and labels this version was accepted on)."""
    mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri or model_info.get("tracking_uri")))
    holdout = read_dataset(holdout_path)
    model_metrics = evaluate_classifier(load_classifier(model_info["model_uri"]), holdout)
    baseline_metrics = evaluate_classifier(load_classifier(model_info["baseline_uri"]), holdout)
    with mlflow.start_run(run_id=model_info["run_id"]):
        mlflow.log_metrics({f"holdout_{k}": v for k, v in model_metrics.items()})
        mlflow.log_metrics({f"baseline_holdout_{k}": v for k, v in baseline_metrics.items()})
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "holdout_metrics.json"
            report.write_text(
                json.dumps({"model": model_metrics, "baseline": baseline_metrics}, indent=2)
            )
            mlflow.log_artifact(str(report), "evaluation")
        mlflow.log_artifact(holdout_path, HOLDOUT_DATA_PATH)
    return {"model": model_metrics, "baseline": baseline_metrics}


def register(
    model_info: dict,
    holdout_path: str,
    model_name: str,
    margin: float = 0.0,
    tracking_uri: str = "",
    batch_id: str = "",
    promotion: str = "direct",
    min_rows: int = 0,
) -> dict:
    """Register the new version as challenger; the gate (ROC-AUC, on rows neither version trained
    on) may make it champion. ``min_rows`` (0: the gate metric's) is the fewest rows it judges on.
    """

    def gather(version: str, uri: str) -> GateEvidence:
        return gate_evidence(model_info, holdout_path, model_name, version, uri)

    return register_behind_gate(
        model_info,
        model_name,
        CLASSIFICATION,
        gather,
        margin,
        tracking_uri,
        {"modelfactory.batch_id": batch_id},
        promotion,
        min_rows or None,
    )


def gate_evidence(
    model_info: dict, holdout_path: str, model_name: str, champion_version: str, tracking_uri: str
) -> GateEvidence:
    """The new model and the champion scored on the rows neither trained on: of this run's
    holdout, and of the champion's holdout (with its labels, the evidence it was accepted on).

    A row is a customer: its features without the label (``ROW_IDENTITY``), so relabelled rows
    are never new ones, and a feature vector either version trained on, under any label, is left
    out (the real file repeats some).
    """
    import pandas as pd

    from modelfactory.monitoring.reference import (
        NoReference,
        holdout_data,
        run_figures,
        training_data,
        version_figures,
    )

    registry = Registry(tracking_uri)
    champion = version_figures(registry, model_name, champion_version)
    who = f"champion v{champion_version}"
    models = (
        load_classifier(model_info["model_uri"]),
        load_classifier(f"models:/{model_name}/{champion_version}"),
    )
    identity = list(bank.ROW_IDENTITY)
    ours = training_data(run_figures(registry, model_name, model_info["run_id"]))[identity]
    holdout = read_dataset(holdout_path)
    try:
        either = pd.concat([training_data(champion)[identity], ours], ignore_index=True)
    except NoReference as exc:
        either = ours
        fresh = Comparison(0, len(holdout), note=f"the rows {who} trained on are unknown ({exc})")
    else:
        new = unseen(holdout, either, identity, "this run's holdout", "the training data")
        left_out = f"were in {who}'s or this run's training data"
        fresh = _compare(models, holdout[new], len(holdout), left_out)
    own = holdout_data(champion)
    if own is None:
        kept = Comparison(0, 0, note=f"{who} logged no {HOLDOUT_DATA_PATH}/ (registered before)")
    else:
        new = unseen(own, either, identity, f"{who}'s holdout", "the training data")
        kept = _compare(models, own[new], len(own), "were in either version's training data")
    return GateEvidence(champion_version, fresh, kept)


def _compare(models: tuple, rows, of_rows: int, left_out: str) -> Comparison:
    """Both models' gate metric on the same labelled ``rows``, and the noise of the difference."""
    if rows.empty:
        return Comparison(0, of_rows, left_out=left_out)
    y = bank.target_vector(rows)
    new, old = (model.predict_proba(features(rows))[:, 1] for model in models)
    candidate, champion = (classification_metrics(y, p)[GATE_METRIC.name] for p in (new, old))
    if y.min() == y.max():
        note = f"only one class of '{bank.TARGET}' among them"
        return Comparison(len(rows), of_rows, candidate, champion, left_out, note)
    noise = roc_auc_difference_error(y, new, old)
    return Comparison(len(rows), of_rows, candidate, champion, left_out, noise=noise)
