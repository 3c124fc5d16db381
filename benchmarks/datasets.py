"""The real public datasets the benchmarks run on, found where the tests find them
(``MODELFACTORY_DATA_DIR``, by default ``../shared/data``; see tests/support/data.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.data import (  # noqa: E402
    BANK_MARKETING,
    ROSSMANN_TRAIN,
    SHARED_DATA,
    TAXI_JANUARY,
)

__all__ = ["BANK_MARKETING", "ROSSMANN_TRAIN", "SHARED_DATA", "TAXI_JANUARY", "dataset"]


def dataset(relative: str) -> Path:
    """The dataset file at ``relative`` under the data folder; exits saying where it looked."""
    path = SHARED_DATA / relative
    if not path.is_file():
        raise SystemExit(
            f"the real dataset {relative} is missing: looked for {path}; put the shared data "
            "beside the repository or set MODELFACTORY_DATA_DIR"
        )
    return path
