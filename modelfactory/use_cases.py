"""The use cases modelfactory ships, by name (``classification``) or by registered model
(``bank-marketing``).

Each use case package describes itself (:class:`~modelfactory.use_case.UseCase`, in its
``__init__``); this module lists them for the parts that serve every use case: the generic
pipeline steps (ingest, validate), the CLI, the local pipeline runner and the serving
adapter. A new use case is a package beside ``classification/`` (training, steps, served
model, its ``UseCase``), its data module under ``data/``, its pipeline under ``pipelines/``
and one entry below; no model name is typed anywhere else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelfactory.anomaly import ANOMALY
from modelfactory.classification import CLASSIFICATION
from modelfactory.errors import ModelFactoryError
from modelfactory.forecasting import FORECASTING
from modelfactory.use_case import UseCase

if TYPE_CHECKING:
    from modelfactory.registry import Registry

USE_CASES: dict[str, UseCase] = {case.name: case for case in (CLASSIFICATION, FORECASTING, ANOMALY)}
__all__ = [
    "ANOMALY",
    "CLASSIFICATION",
    "FORECASTING",
    "USE_CASES",
    "UseCase",
    "served_use_case",
    "use_case",
]


def use_case(name: str) -> UseCase:
    try:
        return USE_CASES[name]
    except KeyError:
        raise ValueError(
            f"unknown use case {name!r}; choose one of {', '.join(USE_CASES)}"
        ) from None


def served_use_case(model_name: str, explicit: str | None = None) -> UseCase:
    """The use case whose served model serves ``model_name``: ``explicit`` (a use case name, from
    ``MODELFACTORY_USE_CASE``) when given, else the one registering that model, else classification
    (a classifier registered under another name by the classification pipeline)."""
    if explicit:
        case = use_case(explicit)
    else:
        case = next((c for c in USE_CASES.values() if c.model_name == model_name), CLASSIFICATION)
    if case.serving is None:
        raise ValueError(f"the {case.name} use case has no model to serve")
    return case


def monitored_use_case(
    model_name: str, explicit: str | None = None, registry: Registry | None = None
) -> UseCase:
    """The use case whose prediction log a monitor of ``model_name`` reads: ``explicit`` (the
    monitor's ``useCase``), else the one the registry recorded for the model, else (a model not
    registered yet) the one its name says; ModelFactoryError when that use case logs no
    predictions."""
    from mlflow.exceptions import MlflowException

    name = explicit
    if name is None and registry is not None:
        try:
            name = registry.use_case_of(model_name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
    case = use_case(name) if name else served_use_case(model_name)
    if case.monitoring is None:
        raise ModelFactoryError(f"the {case.name} use case logs no predictions to monitor")
    return case
