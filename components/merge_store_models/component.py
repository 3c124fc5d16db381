"""merge_store_models: the shards' model sets as one model set, logged to MLflow as one model."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output
from modelfactory_components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def merge_store_models(
    shards: Input[list[Model]],
    train: Input[Dataset],
    batch_id: str,
    source: str,
    mlflow_tracking_uri: str,
    model: Output[Model],
):
    """Fails, naming the stores, when more than ``max_failure_share`` of all stores failed."""
    from modelfactory.forecasting.steps import merge

    info = merge(
        [shard.path for shard in shards],
        train.path,
        model.path,
        mlflow_tracking_uri,
        batch_id,
        source,
        known_failures=train.metadata.get("failures", {}),
        warnings=train.metadata.get("warnings", []),
        train_rows=sum(int(shard.metadata.get("train_rows", 0)) for shard in shards),
    )
    model.metadata.update(info)
