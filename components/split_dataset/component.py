"""split_dataset: train/holdout split by a named strategy (random with seed, or sequential)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output
from modelfactory_components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def split_dataset(
    data: Input[Dataset],
    strategy: str,
    holdout_fraction: float,
    seed: int,
    train: Output[Dataset],
    holdout: Output[Dataset],
):
    import logging

    from modelfactory.classification.steps import split

    summary = split(data.path, train.path, holdout.path, strategy, holdout_fraction, seed)
    for warning in summary.pop("warnings"):
        logging.warning("split_dataset: %s", warning)
    train.metadata.update({"rows": summary["train_rows"], "strategy": strategy})
    holdout.metadata.update({"rows": summary["holdout_rows"], "strategy": strategy})
