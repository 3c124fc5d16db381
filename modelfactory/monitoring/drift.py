"""Data drift of a model's inputs and prediction drift of its outputs: one Evidently 0.7 report.

:func:`drift_report` compares the rows of a logged window with the champion's reference rows,
column by column, with the method and threshold :class:`DriftSettings` gives each column
(every column gets one explicitly, so Evidently's size-dependent automatic choice never
applies). The report holds a ``DataDriftPreset`` over the input columns and one over the
output columns (the classifier's probability, the forecaster's ``yhat``), with Evidently's
tests, so its HTML shows both tables and each column's pass/fail; the scores and flags are
read back from the snapshot (``snapshot.dict()``).

Defaults: the Population Stability Index with threshold 0.1 for every column, numeric or
categorical, input or output; why, measured on the UCI file's own months:
docs/adr/0008-drift-checks.md.
"""

from __future__ import annotations

import functools
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelfactory.status import camel_case

log = logging.getLogger(__name__)

# Evidently 0.7's registered drift methods and the column kinds each applies to
# (tests/monitoring/test_drift.py checks this table against Evidently's own registry).
METHODS: dict[str, frozenset[str]] = {
    "psi": frozenset({"numeric", "categorical"}),
    "wasserstein": frozenset({"numeric"}),
    "jensenshannon": frozenset({"numeric", "categorical"}),
    "hellinger": frozenset({"numeric", "categorical"}),
    "kl_div": frozenset({"numeric", "categorical"}),
    "ks": frozenset({"numeric"}),
    "anderson": frozenset({"numeric"}),
    "cramer_von_mises": frozenset({"numeric"}),
    "ed": frozenset({"numeric"}),
    "es": frozenset({"numeric"}),
    "mannw": frozenset({"numeric"}),
    "t_test": frozenset({"numeric"}),
    "empirical_mmd": frozenset({"numeric"}),
    "chisquare": frozenset({"categorical"}),
    "z": frozenset({"categorical"}),
    "fisher_exact": frozenset({"categorical"}),
    "g_test": frozenset({"categorical"}),
    "TVD": frozenset({"categorical"}),
}


class ColumnTest(BaseModel):
    """How one column is compared: an Evidently drift method and its threshold (a distance at
    or above it, or a p-value below it, is drift)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = "psi"
    threshold: float = Field(default=0.1, gt=0)

    @field_validator("method")
    @classmethod
    def _known(cls, method: str) -> str:
        if method not in METHODS:
            raise ValueError(f"unknown drift method {method!r}; choose one of {', '.join(METHODS)}")
        return method

    def describe(self) -> str:
        return f"{self.method} {self.threshold:g}"


class DriftSettings(BaseModel):
    """Methods and thresholds by column kind (``numeric``, ``categorical``, model ``outputs``),
    per-column overrides (``columns``), and what counts as drift: at least ``drifted_share`` of
    the input columns, any one of the ``decisive`` columns, or (``prediction_drift_decides``)
    an output, for ``consecutive_checks`` checks in a row before a retrain (the policy,
    :mod:`modelfactory.monitoring.policy`, applies them). Aliases are the DriftMonitor's names.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    numeric: ColumnTest = ColumnTest()
    categorical: ColumnTest = ColumnTest()
    outputs: ColumnTest | None = None  # None: the use case's own (PSI 0.1 unless it says)
    columns: dict[str, ColumnTest] = Field(default_factory=dict)
    drifted_share: float = Field(default=0.3, gt=0, le=1, alias="driftedShare")
    decisive: tuple[str, ...] = Field(default=(), alias="decisiveColumns")
    prediction_drift_decides: bool = Field(default=True, alias="predictionDriftDecides")
    consecutive_checks: int = Field(default=2, ge=1, alias="consecutiveChecks")

    def test_for(self, column: str, kind: str, output: bool = False) -> ColumnTest:
        """The test of ``column`` (of kind numeric or categorical); a mismatch is a ValueError."""
        test = self.columns.get(column) or (
            (self.outputs or ColumnTest())
            if output
            else (self.numeric if kind == "numeric" else self.categorical)
        )
        if kind not in METHODS[test.method]:
            usable = ", ".join(m for m, kinds in METHODS.items() if kind in kinds)
            raise ValueError(
                f"drift method {test.method!r} does not apply to {kind} column {column!r}; "
                f"choose one of {usable}"
            )
        return test

    @model_validator(mode="after")
    def _outputs_numeric(self) -> DriftSettings:
        if self.outputs is not None and "numeric" not in METHODS[self.outputs.method]:
            raise ValueError(f"outputs: {self.outputs.method!r} does not apply to numbers")
        return self


@camel_case
@dataclass(frozen=True)
class ColumnDrift:
    column: str
    role: str  # input | output
    kind: str  # numeric | categorical
    method: str
    threshold: float
    score: float
    drifted: bool


@camel_case
@dataclass
class DriftReport:
    """Per-column results of one comparison, and the Evidently snapshot they came from (saved
    as its own files, never written with the result)."""

    columns: list[ColumnDrift]
    current_rows: int
    reference_rows: int
    skipped: dict[str, str]  # columns not compared, and why
    snapshot: Annotated[Any, Field(exclude=True)] = None

    @property
    def inputs(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.role == "input"]

    @property
    def outputs(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.role == "output"]

    @property
    def drifted_inputs(self) -> list[str]:
        return [c.column for c in self.inputs if c.drifted]

    @property
    def drifted_outputs(self) -> list[str]:
        return [c.column for c in self.outputs if c.drifted]

    @property
    def drifted_share(self) -> float:
        inputs = self.inputs
        return len(self.drifted_inputs) / len(inputs) if inputs else 0.0

    def save_html(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.snapshot.save_html(str(path))
        return path

    def save_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.snapshot.save_json(str(path))
        return path


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: tuple[str, ...] | list[str],
    categorical: tuple[str, ...] | list[str],
    outputs: tuple[str, ...] | list[str] = (),
    settings: DriftSettings | None = None,
    drifted_share: float = 0.5,
) -> DriftReport:
    """Compare ``current`` with ``reference`` over the ``numeric`` and ``categorical`` columns;
    those named in ``outputs`` are the model's outputs (prediction drift), the others its inputs.
    ``drifted_share`` is the policy's, shown as the report's "share of drifted columns" test.

    A column with no values on either side is skipped and named in ``skipped``.
    """
    from evidently import DataDefinition, Dataset, Report

    settings = settings or DriftSettings()
    kinds = {**{c: "numeric" for c in numeric}, **{c: "categorical" for c in categorical}}
    skipped: dict[str, str] = {}
    for column in kinds:
        for side, frame in (("window", current), ("reference", reference)):
            if column not in frame.columns or frame[column].notna().sum() == 0:
                skipped.setdefault(column, f"no values in the {side}")
    compared = [c for c in kinds if c not in skipped]
    tests = {c: settings.test_for(c, kinds[c], output=c in outputs) for c in compared}
    groups = {
        "input": [c for c in compared if c not in outputs],
        "output": [c for c in compared if c in outputs],
    }
    definition = DataDefinition(
        numerical_columns=[c for c in compared if kinds[c] == "numeric"],
        categorical_columns=[c for c in compared if kinds[c] == "categorical"],
    )
    presets = [
        _titled_preset()(
            heading=HEADINGS[role],
            columns=columns,
            drift_share=drifted_share,
            per_column_method={c: tests[c].method for c in columns},
            per_column_threshold={c: tests[c].threshold for c in columns},
        )
        for role, columns in groups.items()
        if columns
    ]
    if not presets:
        return DriftReport([], len(current), len(reference), skipped)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's divide warnings inside the statistics
        snapshot = Report(presets, include_tests=True).run(
            current_data=Dataset.from_pandas(_typed(current, compared, kinds), definition),
            reference_data=Dataset.from_pandas(_typed(reference, compared, kinds), definition),
        )
    scores, flags = _results(snapshot.dict())
    results = [
        ColumnDrift(
            column=column,
            role=role,
            kind=kinds[column],
            method=tests[column].method,
            threshold=tests[column].threshold,
            score=scores[column],
            drifted=flags[column],
        )
        for role, columns in groups.items()
        for column in columns
    ]
    return DriftReport(results, len(current), len(reference), skipped, snapshot)


HEADINGS = {
    "input": "Input drift: the model's inputs in the window against its reference",
    "output": "Prediction drift: the model's outputs in the window against its reference",
}


@functools.cache
def _titled_preset():
    """Evidently's DataDriftPreset under a heading, so a report's input and output sections are
    told apart (both are titled "Dataset Drift" otherwise). Made on first use: Evidently is a
    heavy import."""
    from evidently.legacy.renderers.html_widgets import text_widget
    from evidently.presets import DataDriftPreset

    class TitledDataDriftPreset(DataDriftPreset):
        heading: str = ""

        def __init__(self, heading: str = "", **options):
            self.heading = heading  # set before the preset's own init freezes the object
            super().__init__(**options)

        def render(self, context, child_widgets=None):
            title = text_widget(title=self.heading, text="")
            return [title, *super().render(context, child_widgets)]

    return TitledDataDriftPreset


def _typed(frame: pd.DataFrame, columns: list[str], kinds: dict[str, str]) -> pd.DataFrame:
    """Only the compared columns; numbers as float, categories as strings (one type per side)."""
    typed: dict[str, pd.Series] = {}
    for column in columns:
        values = frame[column].reset_index(drop=True)
        if kinds[column] == "numeric":
            typed[column] = pd.to_numeric(values, errors="coerce").astype("float64")
        else:
            typed[column] = values.astype("string").astype("category")
    return pd.DataFrame(typed)


def _results(snapshot: dict) -> tuple[dict[str, float], dict[str, bool]]:
    """Each column's ValueDrift score and whether its test failed (drift), from the snapshot."""
    column_of, scores = {}, {}
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith(":ValueDrift"):
            column_of[metric["id"]] = config["column"]
            scores[config["column"]] = float(metric["value"])
    flags = {column: False for column in scores}
    for test in snapshot.get("tests", []):
        fingerprint = (test.get("metric_config") or {}).get("metric_id")
        if fingerprint in column_of:
            flags[column_of[fingerprint]] = test["status"] == "FAIL"
    return scores, flags
