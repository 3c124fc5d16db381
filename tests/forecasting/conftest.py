"""Shared fixtures: a small synthetic model set trained once per session, real Rossmann stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfactory.data.rossmann import load_rossmann, synthetic_rossmann
from modelfactory.forecasting import ForecastConfig, save_model_set, train_model_factory

# The shared datasets live beside the repository (../shared/data), as in tests/conftest.py.
ROSSMANN_TRAIN = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "rossmann" / "train.csv.gz"
)
REAL_STORES = [1, 2, 3, 4, 5, 6, 7, 8]


@pytest.fixture(scope="session")
def synthetic_sales():
    return synthetic_rossmann(n_stores=3, start="2013-06-01", end="2015-07-31", seed=7)


@pytest.fixture(scope="session")
def synthetic_result(synthetic_sales):
    return train_model_factory(
        synthetic_sales, ForecastConfig(holdout_weeks=4, uncertainty_samples=200)
    )


@pytest.fixture(scope="session")
def model_set_dir(synthetic_result, tmp_path_factory):
    directory = tmp_path_factory.mktemp("model_set")
    save_model_set(directory, synthetic_result, metadata={"source": "synthetic"})
    return directory


@pytest.fixture(scope="session")
def real_sales():
    if not ROSSMANN_TRAIN.exists():
        pytest.fail(f"{ROSSMANN_TRAIN} is missing: the real-data tests need the shared datasets")
    return load_rossmann(ROSSMANN_TRAIN, stores=REAL_STORES)
