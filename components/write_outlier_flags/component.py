"""write_outlier_flags: one outlier flag per ride into the staging table, replacing the batch
date's rows."""

from kfp import dsl
from kfp.dsl import Dataset, Input
from modelfactory_components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def write_outlier_flags(scored: Input[Dataset], staging_url: str, run_id: str) -> str:
    """``staging_url``: a SQLAlchemy URL (its password from a Secret on a cluster); empty means
    sqlite under MODELFACTORY_HOME. Returns a JSON summary."""
    import json

    from modelfactory.anomaly.steps import write_flags
    from modelfactory.pipeline_secrets import STAGING_PASSWORD, url_with_password

    url = url_with_password(staging_url, STAGING_PASSWORD)
    return json.dumps(write_flags(scored.path, url, scored.metadata["batch_date"], run_id))
