"""Bank-marketing classification: ingest → validate → split → train → evaluate → register.

Upload ``classification.yaml`` (compiled from this file) in the KFP UI, or run it
on one machine with ``modelfactory run classification``.
"""

from kfp import dsl
from modelfactory_components.evaluate_classifier.component import evaluate_classifier
from modelfactory_components.ingest_data.component import ingest_data
from modelfactory_components.register_model.component import register_model
from modelfactory_components.split_dataset.component import split_dataset
from modelfactory_components.train_classifier.component import train_classifier
from modelfactory_components.validate_data.component import validate_data
from modelfactory_pipelines import CLUSTER_MLFLOW_URI, with_mlflow_account

from modelfactory.pipeline_secrets import MLFLOW_SECRET
from modelfactory.use_cases import CLASSIFICATION as CASE


@dsl.pipeline(
    name="bank-marketing-classification",
    description="Train, evaluate and register the bank-marketing term-deposit classifier.",
)
def classification_pipeline(
    source: str = "",
    n_synthetic_rows: int = CASE.synthetic_rows,
    split_strategy: str = "random",
    holdout_fraction: float = 0.2,
    imbalance: str = "auto",
    n_estimators: int = 150,
    seed: int = 42,
    model_name: str = CASE.model_name,
    promotion_margin: float = 0.0,
    # The fewest rows neither version trained on that the gate judges on (below: no judgement).
    promotion_min_rows: int = CASE.gate.min_rows,
    # True: labels that moved beyond the limit from the champion's training data are expected.
    expect_label_shift: bool = False,
    # rollout: a version that passes the gate stays challenger for the operator to roll out;
    # direct: it becomes champion at once.
    promotion: str = "rollout",
    mlflow_tracking_uri: str = CLUSTER_MLFLOW_URI,
    # The Kubernetes Secret (in the namespace the run's pods run in) with the pipelines' MLflow
    # account, keys username and password; absent: no account is sent.
    mlflow_credentials_secret: str = MLFLOW_SECRET,
) -> str:
    ingest = ingest_data(
        use_case=CASE.name,
        source=source,
        n_synthetic_rows=n_synthetic_rows,
        seed=seed,
        mlflow_tracking_uri=mlflow_tracking_uri,
    )
    validate = validate_data(
        use_case=CASE.name,
        raw=ingest.outputs["raw"],
        model_name=model_name,
        mlflow_tracking_uri=mlflow_tracking_uri,
        expect_label_shift=expect_label_shift,
    )
    parts = split_dataset(
        data=validate.outputs["validated"],
        strategy=split_strategy,
        holdout_fraction=holdout_fraction,
        seed=seed,
    )
    train = train_classifier(
        train=parts.outputs["train"],
        batch_id=ingest.outputs["Output"],
        source=source,
        imbalance=imbalance,
        n_estimators=n_estimators,
        seed=seed,
        mlflow_tracking_uri=mlflow_tracking_uri,
    )
    evaluate = evaluate_classifier(
        model=train.outputs["model"],
        holdout=parts.outputs["holdout"],
        mlflow_tracking_uri=mlflow_tracking_uri,
    )
    register = register_model(
        model=train.outputs["model"],
        holdout=parts.outputs["holdout"],
        metrics=evaluate.outputs["metrics"],
        model_name=model_name,
        promotion_margin=promotion_margin,
        promotion_min_rows=promotion_min_rows,
        promotion=promotion,
        batch_id=ingest.outputs["Output"],
        mlflow_tracking_uri=mlflow_tracking_uri,
    )
    with_mlflow_account(mlflow_credentials_secret, ingest, validate, train, evaluate, register)
    return register.output
