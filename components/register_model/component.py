"""register_model: new registry version as challenger; the promotion gate may make it champion."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model
from modelfactory_components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def register_model(
    model: Input[Model],
    holdout: Input[Dataset],
    metrics: Input[Metrics],
    model_name: str,
    promotion_margin: float,
    promotion_min_rows: int,
    promotion: str,
    batch_id: str,
    mlflow_tracking_uri: str,
) -> str:
    """Returns the registration summary as JSON (version, alias, decision and reason)."""
    import json

    from modelfactory.classification.steps import register

    # `metrics` orders this step after evaluation, whose numbers the gate reads from the MLflow run.
    summary = register(
        dict(model.metadata),
        holdout.path,
        model_name,
        promotion_margin,
        mlflow_tracking_uri,
        batch_id,
        promotion,
        promotion_min_rows,
    )
    return json.dumps(summary)
