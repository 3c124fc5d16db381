"""Shared fixtures: real Rossmann stores. The small synthetic model set (``synthetic_sales``,
``synthetic_result``, ``model_set_dir``) is in tests/conftest.py: serving tests use it too."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfactory.data.rossmann import load_rossmann

# The shared datasets live beside the repository (../shared/data), as in tests/conftest.py.
ROSSMANN_TRAIN = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "rossmann" / "train.csv.gz"
)
REAL_STORES = [1, 2, 3, 4, 5, 6, 7, 8]


@pytest.fixture(scope="session")
def real_sales():
    if not ROSSMANN_TRAIN.exists():
        pytest.fail(f"{ROSSMANN_TRAIN} is missing: the real-data tests need the shared datasets")
    return load_rossmann(ROSSMANN_TRAIN, stores=REAL_STORES)
