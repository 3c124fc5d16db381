"""Where the real public datasets are: ``MODELFACTORY_DATA_DIR``, by default ``../shared/data``
beside the repository (see its SOURCES.md). The product never needs them; the tests do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("MODELFACTORY_DATA_DIR") or REPO.parent / "shared" / "data")

BANK_MARKETING = "bank-marketing/bank-additional-full.csv.gz"
ROSSMANN_TRAIN = "rossmann/train.csv.gz"
TAXI_JANUARY = "taxi/green_tripdata_2023-01.csv.gz"


def shared_file(relative: str) -> Path:
    """The real dataset file at ``relative`` under the data folder; the test fails, saying where it
    looked and how to point elsewhere, when the file is not there."""
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.fail(
            f"the real dataset {relative} is missing: looked for {path}. Put the shared data "
            "beside the repository (../shared/data) or set MODELFACTORY_DATA_DIR to its folder.",
            pytrace=False,
        )
    return path
