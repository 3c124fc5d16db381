"""train_store_shard: one Prophet model per store of one shard, reading only that shard's rows."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output
from modelfactory_components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_store_shard(
    train: Input[Dataset],
    holdout: Input[Dataset],
    shard: int,
    n_shards: int,
    interval_width: float,
    seasonality_mode: str,
    regressor_policy: str,
    max_failure_share: float,
    n_jobs: int,
    model: Output[Model],
):
    """``n_jobs`` 0 means one worker per core of this task; ``model`` is the shard's model set."""
    from modelfactory.forecasting.config import ForecastConfig
    from modelfactory.forecasting.steps import train_shard

    config = ForecastConfig(
        interval_width=interval_width,
        seasonality_mode=seasonality_mode,
        regressor_policy=regressor_policy,
        max_failure_share=max_failure_share,
        holdout_weeks=int(holdout.metadata.get("holdout_weeks", 6)),
    )
    info = train_shard(
        train.path, holdout.path, model.path, int(shard), n_shards, config, n_jobs or None
    )
    model.metadata.update(info)
