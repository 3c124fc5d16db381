"""The use cases modelfactory ships, each with its data loader, validator and demo generator.

Pipeline steps look a use case up by name, so the generic steps (ingest,
validate) serve all of them and a new use case is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from modelfactory.data import bank_marketing, batch_formats


@dataclass(frozen=True)
class UseCase:
    name: str
    model_name: str
    load: Callable[[str | Path], pd.DataFrame]
    validate: Callable[[pd.DataFrame, str], pd.DataFrame]
    generate: Callable[..., pd.DataFrame]
    write: Callable[[pd.DataFrame, str | Path], Path]
    file_name: str


USE_CASES: dict[str, UseCase] = {
    "classification": UseCase(
        name="classification",
        model_name="bank-marketing",
        load=bank_marketing.load_bank_marketing,
        validate=bank_marketing.validate_bank_marketing,
        generate=bank_marketing.generate_bank_marketing,
        write=bank_marketing.write_bank_marketing,
        file_name="bank-additional.csv",
    ),
    "forecasting": UseCase(
        name="forecasting",
        model_name="store-sales",
        load=batch_formats.load_sales,
        validate=batch_formats.validate_sales,
        generate=batch_formats.generate_sales,
        write=batch_formats.write_sales,
        file_name="train.csv",
    ),
    # Anomaly detection registers no model: each daily batch is clustered on its own.
    "anomaly": UseCase(
        name="anomaly",
        model_name="taxi-anomaly",
        load=batch_formats.load_rides,
        validate=batch_formats.validate_rides,
        generate=batch_formats.generate_rides,
        write=batch_formats.write_rides,
        file_name="rides.csv",
    ),
}


def use_case(name: str) -> UseCase:
    try:
        return USE_CASES[name]
    except KeyError:
        raise ValueError(f"unknown use case {name!r}; choose one of {', '.join(USE_CASES)}") from None
