"""train_store_models: one Prophet model per store in parallel, saved as one model set and logged
to MLflow."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output
from modelfactory_components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_store_models(
    train: Input[Dataset],
    holdout: Input[Dataset],
    batch_id: str,
    source: str,
    interval_width: float,
    seasonality_mode: str,
    regressor_policy: str,
    max_failure_share: float,
    n_jobs: int,
    mlflow_tracking_uri: str,
    model: Output[Model],
):
    """``n_jobs`` 0 means one worker per core; ``model`` is the model-set directory."""
    from modelfactory.forecasting.config import ForecastConfig
    from modelfactory.forecasting.steps import train as train_step

    config = ForecastConfig(
        interval_width=interval_width,
        seasonality_mode=seasonality_mode,
        regressor_policy=regressor_policy,
        max_failure_share=max_failure_share,
        holdout_weeks=int(holdout.metadata.get("holdout_weeks", 6)),
    )
    info = train_step(
        train.path,
        holdout.path,
        model.path,
        mlflow_tracking_uri,
        batch_id,
        source,
        config,
        known_failures=train.metadata.get("failures", {}),
        warnings=train.metadata.get("warnings", []),
        n_jobs=n_jobs or None,
    )
    model.metadata.update(info)
