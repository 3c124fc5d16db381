"""publish_batch: every partition's part into the destination in one transaction, replacing the
batch id's earlier rows."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input
from modelfactory_components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def publish_batch(
    batch: Input[Artifact],
    parts: Input[list[Dataset]],
    to: str,
    model_name: str,
    batch_id: str,
    horizon_days: int,
    mlflow_tracking_uri: str,
) -> str:
    """Returns the batch summary as JSON (batch id, rows, results, rejects, rows written)."""
    import json

    from modelfactory.pipeline_secrets import DESTINATION_PASSWORD, url_with_password
    from modelfactory.steps import scoring as steps

    to = url_with_password(to, DESTINATION_PASSWORD)  # a database's password: from a Secret
    version = str(batch.metadata["version"])
    model = steps.load_model(model_name, version, mlflow_tracking_uri, horizon_days)
    published = steps.publish([part.path for part in parts], to, model, batch_id)
    totals = {
        name: sum(int(part.metadata.get(name, 0)) for part in parts)
        for name in ("rows", "results", "rejects")
    }
    return json.dumps(
        {**published, **totals, "model_name": model_name, "version": version, "parts": len(parts)}
    )
