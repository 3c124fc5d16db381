"""validate_data: schema and quality checks; bad data stops the run naming the column and rows."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output
from modelfactory_components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def validate_data(use_case: str, raw: Input[Dataset], validated: Output[Dataset]):
    from modelfactory.steps.data import validate

    source = raw.metadata.get("source") or raw.path
    validated.metadata.update(validate(use_case, raw.path, validated.path, source_name=source))
    validated.metadata["batch_id"] = raw.metadata.get("batch_id", "")
