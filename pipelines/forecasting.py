"""Store-sales forecasting: ingest → validate → features → time split → plan shards → train each
shard (in parallel) → merge → evaluate → register.

One Prophet model per store (a model factory). The stores are split into ``n_shards``
shards (a store always lands in the same one); each shard is trained in its own task of a
``dsl.ParallelFor`` (on a cluster, one pod per shard, at most ``MAX_PARALLEL_SHARDS`` at
once; a failed shard task is retried), reading only its stores' rows. The shards' sets are
merged into the one model set that is evaluated against the seasonal-naive baseline and
registered as one version of ``store-sales``: the same set whatever the number of shards.
Upload ``forecasting.yaml`` (compiled from this file) in the KFP UI, or run it on one
machine with ``modelfactory run forecasting --data train.csv [--stores 1,2,3] [--shards N]``
(kfp's local runner runs ParallelFor too, at most two iterations at once).
"""

from kfp import dsl
from modelfactory_components.evaluate_forecasts.component import evaluate_forecasts
from modelfactory_components.forecast_features.component import forecast_features
from modelfactory_components.ingest_data.component import ingest_data
from modelfactory_components.merge_store_models.component import merge_store_models
from modelfactory_components.plan_shards.component import plan_shards
from modelfactory_components.register_model_set.component import register_model_set
from modelfactory_components.split_by_time.component import split_by_time
from modelfactory_components.train_store_shard.component import train_store_shard
from modelfactory_components.validate_data.component import validate_data
from modelfactory_pipelines import CLUSTER_MLFLOW_URI, with_mlflow_account

from modelfactory.pipeline_secrets import MLFLOW_SECRET
from modelfactory.use_cases import FORECASTING as CASE

# Shard tasks running at once on a cluster (pods); the rest wait. A compile-time constant:
# KFP takes no pipeline parameter here.
MAX_PARALLEL_SHARDS = 16
# A shard task that fails (a node drained, an evicted pod) is run again, 30 s later, then 60 s.
SHARD_RETRIES = 2


@dsl.pipeline(
    name="store-sales-forecasting",
    description="Train, evaluate and register one Prophet model per store as one model set.",
)
def forecasting_pipeline(
    source: str = "",
    n_synthetic_rows: int = CASE.synthetic_rows,
    stores: str = "",
    holdout_weeks: int = 6,
    min_train_days: int = 180,
    interval_width: float = 0.95,
    seasonality_mode: str = "additive",
    regressor_policy: str = "auto",
    max_failure_share: float = 0.05,
    n_shards: int = 8,
    n_jobs: int = 0,
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
    features = forecast_features(data=validate.outputs["validated"], stores=stores)
    parts = split_by_time(
        features=features.outputs["features"],
        holdout_weeks=holdout_weeks,
        min_train_days=min_train_days,
    )
    shards = plan_shards(train=parts.outputs["train"], n_shards=n_shards)
    with dsl.ParallelFor(shards.output, parallelism=MAX_PARALLEL_SHARDS) as shard:
        trained = train_store_shard(
            train=parts.outputs["train"],
            holdout=parts.outputs["holdout"],
            shard=shard,
            n_shards=n_shards,
            interval_width=interval_width,
            seasonality_mode=seasonality_mode,
            regressor_policy=regressor_policy,
            max_failure_share=max_failure_share,
            n_jobs=n_jobs,
        ).set_retry(num_retries=SHARD_RETRIES, backoff_duration="30s", backoff_factor=2.0)
    train = merge_store_models(
        shards=dsl.Collected(trained.outputs["model"]),
        train=parts.outputs["train"],
        batch_id=ingest.outputs["Output"],
        source=source,
        mlflow_tracking_uri=mlflow_tracking_uri,
    )
    evaluate = evaluate_forecasts(
        model=train.outputs["model"],
        holdout=parts.outputs["holdout"],
        mlflow_tracking_uri=mlflow_tracking_uri,
    )
    register = register_model_set(
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
