"""A model set in the MLflow registry: one pyfunc model per registered version of ``store-sales``.

The whole model-set directory (manifest + a file per store, see
:mod:`modelfactory.forecasting.model_set`) is logged as the artifact ``model_set`` of
one ``mlflow.pyfunc`` model, so a registered version is one consistent set of per-store
models and their metrics. :class:`ModelSetPyfunc` loads a store's model the first time
that store is asked for (a set may hold a thousand stores; a request names one).

``predict`` takes a frame with ``store`` and ``horizon_days`` (one row per request) and
returns the stacked daily forecasts with a ``store`` column.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow.pyfunc import PythonModel

from modelfactory.forecasting.cache import LRUCache
from modelfactory.forecasting.model_set import (
    forecast,
    list_stores,
    load_store_model,
    read_manifest,
)

ARTIFACT = "model_set"


class ModelSetPyfunc(PythonModel):
    """Per-store Prophet models from the ``model_set`` artifact, loaded lazily and kept in an
    LRU."""

    def __init__(self, max_models: int = 32):
        self.max_models = max_models
        self.directory: Path | None = None
        self._models: LRUCache | None = None

    def load_context(self, context) -> None:
        self.directory = Path(context.artifacts[ARTIFACT])
        self._models = LRUCache(max_entries=self.max_models)

    def __getstate__(self):  # what MLflow pickles: settings only, never loaded models
        return {"max_models": self.max_models, "directory": None, "_models": None}

    def _loaded(self) -> tuple[Path, LRUCache]:
        if self.directory is None or self._models is None:
            raise RuntimeError("the model set is not loaded (MLflow calls load_context first)")
        return self.directory, self._models

    def stores(self) -> list[int]:
        return list_stores(self._loaded()[0])

    def manifest(self) -> dict:
        return read_manifest(self._loaded()[0])

    def store_model(self, store: int):
        directory, models = self._loaded()
        return models.get_or_compute(int(store), lambda: load_store_model(directory, int(store)))

    def predict(
        self, context, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        policy = (params or {}).get("future_regressors", "last_year")
        frames = []
        for store, horizon in zip(
            model_input["store"].astype(int), model_input["horizon_days"].astype(int), strict=True
        ):
            out = forecast(self.store_model(store), horizon, policy)
            frames.append(out.assign(store=store))
        return pd.concat(frames, ignore_index=True)[
            ["store", "ds", "yhat", "yhat_lower", "yhat_upper", "open"]
        ]


def log_model_set(directory: str | Path, input_example: pd.DataFrame | None = None):
    """Log ``directory`` as one pyfunc model named ``model`` in the active run; returns
    ModelInfo."""
    import mlflow

    return mlflow.pyfunc.log_model(
        name="model",
        python_model=ModelSetPyfunc(),
        artifacts={ARTIFACT: str(directory)},
        pip_requirements=_requirements(),
        input_example=input_example,
    )


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("mlflow", "prophet", "pandas", "numpy")]


@dataclass
class LoadedModelSet:
    """A registered version's model set, downloaded and ready to load stores from."""

    name: str
    version: str
    model: ModelSetPyfunc
    run_id: str | None = None

    @property
    def directory(self) -> Path:
        return self.model._loaded()[0]


def load_model_set(name: str, version: str, tracking_uri: str | None = None) -> LoadedModelSet:
    """Download version ``version`` of ``name`` and return its (lazily loading) model set.

    Touches no process-wide MLflow setting (tracking or registry URI): a serving process
    or a test may talk to several servers.
    """
    import mlflow
    from mlflow import MlflowClient

    from modelfactory.registry import _model_id

    uri = tracking_uri or mlflow.get_tracking_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    found = client.get_model_version(name, str(version))
    # MLflow 3 versions point at a logged model (models:/m-...); its artifact location is a
    # plain artifact URI that downloads from this server, whatever the process-wide setting.
    model_id = found.model_id or _model_id(found.source or "")
    source = client.get_logged_model(model_id).artifact_location if model_id else found.source
    # Our own directory, removed once nothing holds the model set any more (a serving process
    # drops a version when the rollout moves on: ~200 MB per version for all Rossmann stores).
    directory = tempfile.mkdtemp(prefix=f"modelfactory-{name}-v{version}-")
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=source, tracking_uri=uri, dst_path=directory
        )
        model = mlflow.pyfunc.load_model(local).unwrap_python_model()
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    weakref.finalize(model, shutil.rmtree, directory, ignore_errors=True)
    return LoadedModelSet(name, str(version), model, found.run_id)
