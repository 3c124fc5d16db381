"""score_partition: one partition of a batch scored in chunks; results and rejects to a part."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output
from modelfactory_components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def score_partition(
    batch: Input[Artifact],
    model_name: str,
    data: str,
    query: str,
    key_column: str,
    partition: int,
    horizon_days: int,
    chunk_rows: int,
    mlflow_tracking_uri: str,
    part: Output[Dataset],
):
    """``batch``: plan_batch's version and partition count; ``part``: a folder of Parquet files."""
    from modelfactory.pipeline_secrets import SOURCE_PASSWORD, url_with_password
    from modelfactory.steps import scoring as steps

    data = url_with_password(data, SOURCE_PASSWORD)  # a database's password: from a Secret

    version, partitions = str(batch.metadata["version"]), int(batch.metadata["partitions"])
    model = steps.load_model(model_name, version, mlflow_tracking_uri, horizon_days)
    source = steps.open_source(model, data, query, key_column)
    try:
        summary = steps.score(model, source, part.path, int(partition), partitions, chunk_rows)
    finally:
        if source is not None:
            source.close()
    part.metadata.update(summary)
