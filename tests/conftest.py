"""Fixtures shared by the whole suite: the real datasets, one real MLflow server per session, and a
small forecasting model set (3 synthetic stores, Prophet, trained once per session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BANK_FILE = SHARED_DATA / "bank-marketing" / "bank-additional-full.csv.gz"


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory):
    """Nothing a test does lands in the user's real modelfactory home or registry."""
    home = tmp_path_factory.mktemp("modelfactory-home")
    saved = {k: os.environ.get(k) for k in ("MODELFACTORY_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["MODELFACTORY_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from modelfactory.config import get_settings

    get_settings.cache_clear()
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def bank_file() -> Path:
    if not BANK_FILE.exists():
        pytest.fail(f"the real bank-marketing file is missing: {BANK_FILE} (../shared/data beside the repo)")
    return BANK_FILE


@pytest.fixture(scope="session")
def real_bank(bank_file):
    from modelfactory.data.bank_marketing import load_bank_marketing, validate_bank_marketing

    return validate_bank_marketing(load_bank_marketing(bank_file), str(bank_file))


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` (sqlite + served artifacts) on a free port, for the whole session."""
    from modelfactory.mlflow_server import EmbeddedMlflow, free_port

    server = EmbeddedMlflow(tmp_path_factory.mktemp("mlflow"), port=free_port())
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def synthetic_sales():
    from modelfactory.data.rossmann import synthetic_rossmann

    return synthetic_rossmann(n_stores=3, start="2013-06-01", end="2015-07-31", seed=7)


@pytest.fixture(scope="session")
def synthetic_result(synthetic_sales):
    from modelfactory.forecasting import ForecastConfig, train_model_factory

    return train_model_factory(
        synthetic_sales, ForecastConfig(holdout_weeks=4, uncertainty_samples=200)
    )


@pytest.fixture(scope="session")
def model_set_dir(synthetic_result, tmp_path_factory):
    """A model-set directory with stores 1, 2 and 3."""
    from modelfactory.forecasting import save_model_set

    directory = tmp_path_factory.mktemp("model_set")
    save_model_set(directory, synthetic_result, metadata={"source": "synthetic"})
    return directory


@pytest.fixture(scope="session")
def model_set(model_set_dir):
    """The model set as serving loads it (the registered pyfunc, stores loaded lazily)."""
    from types import SimpleNamespace

    from modelfactory.forecasting.registered import ARTIFACT, ModelSetPyfunc

    loaded = ModelSetPyfunc()
    loaded.load_context(SimpleNamespace(artifacts={ARTIFACT: str(model_set_dir)}))
    return loaded
