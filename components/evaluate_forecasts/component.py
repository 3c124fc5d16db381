"""evaluate_forecasts: per-store and aggregate holdout MAPE/RMSE against the seasonal-naive
baseline; the holdout, with the forecast it was scored on, logged for later gates."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output
from modelfactory_components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate_forecasts(
    model: Input[Model], holdout: Input[Dataset], mlflow_tracking_uri: str, metrics: Output[Metrics]
):
    from modelfactory.forecasting.steps import evaluate

    results = evaluate(dict(model.metadata), model.path, mlflow_tracking_uri, holdout.path)
    for name, value in results["model"].items():
        metrics.log_metric(name, value)
    for name, value in results["baseline"].items():
        metrics.log_metric(f"baseline_{name}", value)
