"""ride_features: one batch date's rides with distance, time and speed."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output
from modelfactory_components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def ride_features(data: Input[Dataset], batch_date: str, features: Output[Dataset]) -> str:
    """Returns the batch date scored: ``batch_date``, or (empty) the day most rides are from."""
    from modelfactory.anomaly.steps import features as features_step

    summary = features_step(data.path, features.path, batch_date)
    features.metadata.update(summary)
    return summary["batch_date"]
