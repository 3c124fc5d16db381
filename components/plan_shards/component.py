"""plan_shards: the shards of stores that have data; the pipeline trains each in its own task."""

from kfp import dsl
from kfp.dsl import Dataset, Input
from modelfactory_components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def plan_shards(train: Input[Dataset], n_shards: int) -> list:
    """The ids of the shards that have stores (which store is where: forecasting/shards.py)."""
    import logging

    from modelfactory.forecasting.steps import plan

    planned = plan(train.path, n_shards)
    logging.info("plan_shards: stores per shard %s", planned["stores_per_shard"])
    return planned["shards"]
