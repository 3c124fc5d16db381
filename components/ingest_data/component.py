"""ingest_data: copy the source file unchanged (or generate demo data) and stamp it with a batch
id."""

from kfp import dsl
from kfp.dsl import Dataset, Output
from modelfactory_components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def ingest_data(
    use_case: str,
    source: str,
    n_synthetic_rows: int,
    seed: int,
    raw: Output[Dataset],
    mlflow_tracking_uri: str = "",
) -> str:
    """Returns the batch id; empty ``source`` means synthetic demo data; a ``source`` on the
    tracking server (a retrain's file) is fetched with the pipeline's MLflow account."""
    from modelfactory.steps.data import ingest

    lineage = ingest(
        use_case,
        source,
        raw.path,
        n_synthetic_rows=n_synthetic_rows,
        seed=seed,
        tracking_uri=mlflow_tracking_uri,
    )
    raw.metadata.update(lineage)
    return lineage["batch_id"]
