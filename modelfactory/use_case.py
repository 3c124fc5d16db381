"""What a use case is: its data format, registered model, gate metric, how it is served and
monitored.

Each use case package (``classification/``, ``forecasting/``, ``anomaly/``) describes
itself with one :class:`UseCase` in its ``__init__``; :mod:`modelfactory.use_cases` lists
them. Loaders of served models and HTTP APIs are functions that import when called:
MLflow, Prophet and FastAPI stay out of processes that only train.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from modelfactory.promotion import GateMetric

if TYPE_CHECKING:
    from fastapi import FastAPI

    from modelfactory.config import Settings
    from modelfactory.inference.served import ServedModel
    from modelfactory.monitoring.reference import Reference, VersionFigures
    from modelfactory.scoring.batch import BatchModel


def lazy(module: str, name: str) -> Callable[..., Any]:
    """``module.name``, imported when first called: a use case's package stays light to import
    (serving a classifier never imports Prophet, the operator never imports scikit-learn)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"{module}.{name}, imported on first call."
    return call


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
class LoggedColumn:
    """One value monitoring reads from each logged prediction: a feature or an output, read as a
    number, a category, or kept as decoded JSON (a forecast's list of daily values)."""

    name: str
    source: Literal["features", "output"]
    kind: Literal["number", "category", "json"]


@dataclass(frozen=True)
class MonitoringSpec:
    """How drift and performance monitoring read a use case's prediction log and ground truth.

    ``logged``: what a check reads of each logged prediction. ``compared(window)`` turns those
    rows into the rows compared with the reference (default: as read; the forecaster's are one
    per forecast day); ``reference(reference)`` makes the reference rows from the champion's
    training data. Of the compared columns, ``numeric`` and ``categorical`` say how each is
    compared and ``outputs`` which are the model's (prediction drift; the others are input drift),
    by ``output_test`` (method, threshold) unless the monitor names one.
    ``check_actual(value)`` turns one ground-truth value into what is stored, or raises
    ValueError saying what is wrong. ``performance(labelled, figures, max_drop)`` gives realized
    metrics of one version's labelled rows (named like its ``holdout_*`` metrics) and what it
    flags by name, each with its reason (a store whose error grew more than ``max_drop`` over its
    holdout figure). ``training_rows(labelled)`` writes labelled logged rows in the
    use case's raw training format, so a retraining run can learn from what was served.
    """

    logged: tuple[LoggedColumn, ...]
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    outputs: tuple[str, ...]
    check_actual: Callable[[Any], Any]
    reference: Callable[[Reference], pd.DataFrame]
    performance: Callable[
        [pd.DataFrame, VersionFigures, float], tuple[dict[str, float], Mapping[str, str]]
    ]
    compared: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    training_rows: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    output_test: tuple[str, float] = ("psi", 0.1)

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(c for c in (*self.numeric, *self.categorical) if c not in self.outputs)


@dataclass(frozen=True)
class UseCase:
    name: str  # the CLI's and the pipeline's name: pipelines/<name>.py, pipelines/<name>.yaml
    model_name: str  # the registered model (and its MLflow experiment)
    data: DataFormat
    synthetic_rows: int  # rows of demo data `modelfactory run` generates by default
    gate_metric: GateMetric | None = None  # None: the pipeline registers no model
    serving: ServingSpec | None = None  # None: nothing to serve
    batch: BatchSpec | None = None  # None: no batch scoring
    monitoring: MonitoringSpec | None = None  # None: no prediction log to monitor

    @property
    def gate(self) -> GateMetric:
        """The gate metric of a use case that registers models."""
        if self.gate_metric is None:
            raise ValueError(f"the {self.name} use case registers no model")
        return self.gate_metric
