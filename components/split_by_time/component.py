"""split_by_time: hold out the last N weeks of every store; stores with too little history are
named and left out."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output
from modelfactory_components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def split_by_time(
    features: Input[Dataset],
    holdout_weeks: int,
    min_train_days: int,
    train: Output[Dataset],
    holdout: Output[Dataset],
):
    import logging

    from modelfactory.forecasting.steps import split

    summary = split(features.path, train.path, holdout.path, holdout_weeks, min_train_days)
    for warning in summary["warnings"]:
        logging.warning("split_by_time: %s", warning)
    # Stores that cannot be trained travel with the training data, so the run reports them.
    failures = {
        **features.metadata.get("missing_stores", {}),
        **{str(k): v for k, v in summary["skipped"].items()},
    }
    train.metadata.update(
        {
            "rows": summary["train_rows"],
            "stores": summary["stores"],
            "failures": failures,
            "warnings": summary["warnings"],
        }
    )
    holdout.metadata.update({"rows": summary["holdout_rows"], "holdout_weeks": holdout_weeks})
