"""plan_batch: the version a batch scores with (the champion unless one is named, resolved once so
every partition uses the same) and its partitions; the pipeline scores each in its own task."""

from kfp import dsl
from kfp.dsl import Artifact, Output
from modelfactory_components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def plan_batch(
    model_name: str,
    version: str,
    data: str,
    query: str,
    n_partitions: int,
    horizon_days: int,
    mlflow_tracking_uri: str,
    batch: Output[Artifact],
) -> list:
    """Returns the partition ids. ``batch`` carries the resolved version and the partition count
    in its metadata: kfp's local runner replaces every parameter a task inside a ParallelFor takes
    from an upstream task with the loop item, so the loop's tasks read these from an artifact."""
    from modelfactory.pipeline_secrets import SOURCE_PASSWORD, url_with_password
    from modelfactory.steps import scoring as steps

    data = url_with_password(data, SOURCE_PASSWORD)  # a database's password: from a Secret

    resolved = steps.resolve(model_name, version, mlflow_tracking_uri)
    model = steps.load_model(model_name, resolved, mlflow_tracking_uri, horizon_days)
    source = steps.open_source(model, data, query)
    try:
        partitions = steps.plan(model, source, n_partitions)
    finally:
        if source is not None:
            source.close()
    with open(batch.path, "w") as handle:
        handle.write(f"{model_name} v{resolved}: {len(partitions)} partition(s)\n")
    batch.metadata.update({"version": resolved, "partitions": len(partitions)})
    return partitions
