"""validate_data: schema and quality checks, and the labels against the champion's training data;
bad data, or labels that moved beyond the limit, stop the run naming the column and rows or
figures."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output
from modelfactory_components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def validate_data(
    use_case: str,
    raw: Input[Dataset],
    validated: Output[Dataset],
    model_name: str = "",
    mlflow_tracking_uri: str = "",
    expect_label_shift: bool = False,
):
    """``model_name``: compare the labels with its champion's training data (empty: do not);
    ``expect_label_shift``: a shift beyond the limit is recorded, not refused."""
    from modelfactory.steps.data import validate

    source = raw.metadata.get("source") or raw.path
    validated.metadata.update(
        validate(
            use_case,
            raw.path,
            validated.path,
            source_name=source,
            model_name=model_name,
            tracking_uri=mlflow_tracking_uri,
            expect_label_shift=expect_label_shift,
        )
    )
    validated.metadata["batch_id"] = raw.metadata.get("batch_id", "")
