"""forecast_features: open days as Prophet rows (ds, y, promo and holiday regressors), optionally
a subset of stores."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output
from modelfactory_components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def forecast_features(data: Input[Dataset], stores: str, features: Output[Dataset]):
    """``stores``: comma-separated store ids; empty means every store in the data."""
    from modelfactory.forecasting.steps import features as features_step

    summary = features_step(data.path, features.path, stores)
    features.metadata.update(
        {
            "rows": summary["rows"],
            "stores": summary["stores"],
            "missing_stores": {str(k): v for k, v in summary["missing_stores"].items()},
            "batch_id": data.metadata.get("batch_id", ""),
        }
    )
