"""Store-sales forecasting: ingest → validate → features → time split → train per store → evaluate
→ register.

One Prophet model per store (a model factory), trained in parallel, evaluated against
the seasonal-naive baseline, registered as one version of ``store-sales`` (the whole
set). Upload ``forecasting.yaml`` (compiled from this file) in the KFP UI, or run it on
one machine with ``modelfactory run forecasting --data train.csv [--stores 1,2,3]``.
"""

from kfp import dsl
from modelfactory_components.evaluate_forecasts.component import evaluate_forecasts
from modelfactory_components.forecast_features.component import forecast_features
from modelfactory_components.ingest_data.component import ingest_data
from modelfactory_components.register_model_set.component import register_model_set
from modelfactory_components.split_by_time.component import split_by_time
from modelfactory_components.train_store_models.component import train_store_models
from modelfactory_components.validate_data.component import validate_data
from modelfactory_pipelines import CLUSTER_MLFLOW_URI

from modelfactory.use_cases import FORECASTING as CASE


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
    n_jobs: int = 0,
    seed: int = 42,
    model_name: str = CASE.model_name,
    promotion_margin: float = 0.0,
    mlflow_tracking_uri: str = CLUSTER_MLFLOW_URI,
) -> str:
    ingest = ingest_data(
        use_case=CASE.name, source=source, n_synthetic_rows=n_synthetic_rows, seed=seed
    )
    validate = validate_data(use_case=CASE.name, raw=ingest.outputs["raw"])
    features = forecast_features(data=validate.outputs["validated"], stores=stores)
    parts = split_by_time(
        features=features.outputs["features"],
        holdout_weeks=holdout_weeks,
        min_train_days=min_train_days,
    )
    train = train_store_models(
        train=parts.outputs["train"],
        holdout=parts.outputs["holdout"],
        batch_id=ingest.outputs["Output"],
        source=source,
        interval_width=interval_width,
        seasonality_mode=seasonality_mode,
        regressor_policy=regressor_policy,
        max_failure_share=max_failure_share,
        n_jobs=n_jobs,
        mlflow_tracking_uri=mlflow_tracking_uri,
    )
    evaluate = evaluate_forecasts(
        model=train.outputs["model"], mlflow_tracking_uri=mlflow_tracking_uri
    )
    register = register_model_set(
        model=train.outputs["model"],
        holdout=parts.outputs["holdout"],
        metrics=evaluate.outputs["metrics"],
        model_name=model_name,
        promotion_margin=promotion_margin,
        batch_id=ingest.outputs["Output"],
        mlflow_tracking_uri=mlflow_tracking_uri,
    )
    return register.output
