"""detect_outliers: standardise, DBSCAN, flag noise; clusters, noise and silhouette and the scatter
to MLflow."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output
from modelfactory_components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def detect_outliers(
    features: Input[Dataset],
    eps: float,
    min_samples: int,
    batch_id: str,
    source: str,
    mlflow_tracking_uri: str,
    scored: Output[Dataset],
    metrics: Output[Metrics],
) -> str:
    """Returns the MLflow run id of the batch."""
    from modelfactory.anomaly.detection import DetectionConfig
    from modelfactory.anomaly.steps import detect

    summary = detect(
        features.path,
        scored.path,
        DetectionConfig(eps=eps, min_samples=min_samples),
        mlflow_tracking_uri,
        batch_id,
        source,
    )
    for name in ("rides", "clusters", "noise", "noise_share", "silhouette"):
        if summary.get(name) is not None:
            metrics.log_metric(name, summary[name])
    scored.metadata.update({"batch_date": summary["batch_date"], "run_id": summary["run_id"]})
    return summary["run_id"]
