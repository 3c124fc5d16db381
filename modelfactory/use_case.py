"""What a use case is: its data format, registered model, gate metric and how it is served.

Each use case package (``classification/``, ``forecasting/``, ``anomaly/``) describes
itself with one :class:`UseCase` in its ``__init__``; :mod:`modelfactory.use_cases` lists
them. Loaders of served models and HTTP APIs are functions that import when called:
MLflow, Prophet and FastAPI stay out of processes that only train.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from modelfactory.promotion import GateMetric

if TYPE_CHECKING:
    from fastapi import FastAPI

    from modelfactory.config import Settings
    from modelfactory.inference.served import ServedModel
    from modelfactory.scoring.batch import BatchModel


@dataclass(frozen=True)
class DataFormat:
    """How a use case's raw data is read, checked, made up for demos and written."""

    load: Callable[[str | Path], pd.DataFrame]
    validate: Callable[[pd.DataFrame, str], pd.DataFrame]
    generate: Callable[..., pd.DataFrame]
    write: Callable[[pd.DataFrame, str | Path], Path]
    file_name: str


@dataclass(frozen=True)
class ServingSpec:
    """How a use case's registered model is served (the serving adapter reads nothing else).

    ``load(name, version, tracking_uri, settings)`` loads one version as a served model;
    ``build_api(model_name)`` makes its HTTP API. Both import lazily: MLflow, Prophet and
    FastAPI stay out of processes that only train.
    """

    load: Callable[[str, str, str, Settings], ServedModel]
    build_api: Callable[[str], FastAPI]
    route: str  # the route a user calls first, printed by the CLI
    blocking_predictions: bool = False  # predictions may stall an event loop (cold forecasts)
    timeout_seconds: int = 30


@dataclass(frozen=True)
class BatchSpec:
    """How a use case's registered model scores in batch (:mod:`modelfactory.scoring`).

    ``load(name, version, tracking_uri, options)`` returns a
    :class:`~modelfactory.scoring.batch.BatchModel`; ``options`` carries what only some
    models take (the forecaster's ``horizon_days``).
    """

    load: Callable[[str, str, str, dict], BatchModel]


@dataclass(frozen=True)
class UseCase:
    name: str  # the CLI's and the pipeline's name: pipelines/<name>.py, pipelines/<name>.yaml
    model_name: str  # the registered model (and its MLflow experiment)
    data: DataFormat
    synthetic_rows: int  # rows of demo data `modelfactory run` generates by default
    gate_metric: GateMetric | None = None  # None: the pipeline registers no model
    serving: ServingSpec | None = None  # None: nothing to serve
    batch: BatchSpec | None = None  # None: no batch scoring

    @property
    def gate(self) -> GateMetric:
        """The gate metric of a use case that registers models."""
        if self.gate_metric is None:
            raise ValueError(f"the {self.name} use case registers no model")
        return self.gate_metric
