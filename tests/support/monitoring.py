"""A small bank-marketing champion in a real MLflow server, and a prediction log of what it
answered (the monitoring, retraining and drift CLI tests). Loaded by tests/conftest.py
(``pytest_plugins``)."""

from __future__ import annotations

import datetime as dt

import pytest

from modelfactory.data.bank_marketing import FEATURES
from modelfactory.registry import Registry
from tests.support.prediction_log import write_log

MODEL = "bank-drift"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def train_champion(uri: str, frame, name: str, folder):
    """Train, evaluate and register a small classifier on ``frame`` as the champion of ``name``;
    returns (version, model)."""
    import mlflow

    from modelfactory.classification import steps
    from modelfactory.classification.training import ClassifierConfig
    from modelfactory.data.io import write_dataset

    write_dataset(frame, str(folder / "data.parquet"))
    train, holdout = str(folder / "train.parquet"), str(folder / "holdout.parquet")
    steps.split(str(folder / "data.parquet"), train, holdout, seed=0)
    info = steps.train(
        train,
        str(folder / "model.json"),
        tracking_uri=uri,
        config=ClassifierConfig(n_estimators=25, imbalance="class_weight", n_jobs=1),
        experiment=name,
    )
    steps.evaluate(info, holdout, tracking_uri=uri)
    version = steps.register(info, holdout, name, tracking_uri=uri)["version"]
    # The 2008 summer alone barely ranks customers (ROC-AUC ~0.56) and may lose the gate to its
    # own baseline; these tests need it serving, as a champion.
    Registry(uri).set_alias(name, "champion", version)
    mlflow.set_tracking_uri(uri)
    return version, mlflow.sklearn.load_model(f"models:/{name}/{version}")


def log_answers(
    url, model, frame, version="1", start=None, every=dt.timedelta(seconds=10), name=MODEL
):
    """Log what ``model`` answered for each row of ``frame``; returns the request ids."""
    features = frame[list(FEATURES)].reset_index(drop=True)
    probability = model.predict_proba(features)[:, 1]
    records = features.to_dict(orient="records")
    outputs = [{"class": "yes" if p >= 0.5 else "no", "probability": float(p)} for p in probability]
    start = start or NOW - dt.timedelta(hours=20)
    rows = write_log(url, records, outputs, name, version, start, every)
    return [row.request_id for row in rows]


@pytest.fixture(scope="session")
def champion(mlflow_server, bank_months, tmp_path_factory):
    """(tracking uri, version, fitted model) of ``bank-drift``: 8,000 rows of May-August 2008."""
    early, _ = bank_months
    folder = tmp_path_factory.mktemp("champion")
    version, model = train_champion(
        mlflow_server, early.sample(8000, random_state=0), MODEL, folder
    )
    return mlflow_server, version, model
