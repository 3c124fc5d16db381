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

from modelfactory.anomaly import ANOMALY
from modelfactory.classification import CLASSIFICATION
from modelfactory.forecasting import FORECASTING
from modelfactory.use_case import UseCase

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
