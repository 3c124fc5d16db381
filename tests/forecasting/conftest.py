"""Shared fixtures: real Rossmann stores. The small synthetic model set (``synthetic_sales``,
``synthetic_result``, ``model_set_dir``) is in tests/conftest.py: serving tests use it too."""

from __future__ import annotations

import pytest

from modelfactory.data.rossmann import load_rossmann
from tests.support.data import ROSSMANN_TRAIN, shared_file

REAL_STORES = [1, 2, 3, 4, 5, 6, 7, 8]


@pytest.fixture(scope="session")
def real_sales():
    return load_rossmann(shared_file(ROSSMANN_TRAIN), stores=REAL_STORES)
