"""train_classifier: random forest (imbalance handled) and baseline, logged to a new MLflow run."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output
from modelfactory_components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_classifier(
    train: Input[Dataset],
    batch_id: str,
    source: str,
    imbalance: str,
    n_estimators: int,
    seed: int,
    mlflow_tracking_uri: str,
    model: Output[Model],
):
    from modelfactory.classification.steps import train as train_step
    from modelfactory.classification.training import ClassifierConfig

    config = ClassifierConfig(imbalance=imbalance, n_estimators=n_estimators, seed=seed)
    info = train_step(train.path, model.path, mlflow_tracking_uri, batch_id, source, config)
    model.metadata.update(info)
