"""Faulty versions of a served model, for the demo and the tests of rollouts: a registered
model's champion behind a fault (a sleep, an error), registered as a new version that becomes
challenger, so a rollout has something to roll back."""

from __future__ import annotations

import time
from collections.abc import Callable

from modelfactory.registry import Registry
from modelfactory.use_cases import CLASSIFICATION


def sleep_80ms(frame):
    time.sleep(0.08)
    return frame


def register_faulty_version(
    tracking_uri: str, model: str, base_version: str, fault: Callable, tags: dict[str, str]
) -> str:
    """A new version of ``model``: ``fault`` run on the records before ``base_version``'s model
    (a scikit-learn Pipeline, pickled with cloudpickle), registered as challenger."""
    import mlflow
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    registry = Registry(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    base = mlflow.sklearn.load_model(f"models:/{model}/{base_version}")
    info = mlflow.models.get_model_info(f"models:/{model}/{base_version}")
    faulty = Pipeline([("fault", FunctionTransformer(fault)), ("model", base)])
    mlflow.set_experiment(model)
    with mlflow.start_run(tags=tags) as run:
        logged = mlflow.sklearn.log_model(
            faulty,
            name="model",
            signature=info.signature,
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            pyfunc_predict_fn="predict_proba",
            metadata=info.metadata or {"labels": ["no", "yes"], "threshold": 0.5},
        )
    version = registry.register(model, logged.model_uri, run.info.run_id, CLASSIFICATION.name)
    return str(version.version)
