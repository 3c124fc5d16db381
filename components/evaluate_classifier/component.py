"""evaluate_classifier: model and baseline on the same holdout; metrics to MLflow and to KFP."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output
from modelfactory_components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate_classifier(
    model: Input[Model], holdout: Input[Dataset], mlflow_tracking_uri: str, metrics: Output[Metrics]
):
    from modelfactory.classification.steps import evaluate

    results = evaluate(dict(model.metadata), holdout.path, mlflow_tracking_uri)
    for name, value in results["model"].items():
        metrics.log_metric(name, value)
    for name, value in results["baseline"].items():
        metrics.log_metric(f"baseline_{name}", value)
