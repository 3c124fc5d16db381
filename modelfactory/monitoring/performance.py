"""Realized performance: logged predictions joined with their ground truth, per model version.

:func:`read_labelled` joins a window of the prediction log with the ``feedback`` table in SQL
(by request id, and by each row's position within its request, ``row_number()``), so only
labelled rows leave the database, a chunk at a time. :func:`realized_performance` hands each
version's labelled rows to the use case's ``performance`` function (the classifier: ROC-AUC,
precision, recall, F1; the forecaster: MAPE per store, naming stores whose error drifted) and
sets the figures beside the version's holdout figures: a fall of the gate metric beyond the
policy's limit is the second trigger for retraining.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from modelfactory.monitoring.reference import VersionFigures
from modelfactory.monitoring.window import RowDecoder, Window
from modelfactory.predictions.store import feedback_table, predictions_table
from modelfactory.promotion import GateMetric
from modelfactory.sql import engine as store_engine
from modelfactory.status import camel_case
from modelfactory.use_case import LoggedColumn, MonitoringSpec


class PerformanceSettings(BaseModel):
    """Realized performance over the last ``since`` (labels arrive later than predictions, so
    it looks further back than the drift window); a fall of more than ``max_drop`` in the gate
    metric on at least ``min_labelled_rows`` labelled rows triggers a retrain."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    enabled: bool = True
    since: str = "30d"
    max_drop: float = Field(default=0.05, ge=0, alias="maxDrop")
    min_labelled_rows: int = Field(default=200, ge=1, alias="minLabelledRows")


@camel_case
@dataclass
class VersionPerformance:
    """One version's realized figures over labelled rows, beside its holdout figures."""

    version: str
    labelled_rows: int
    realized: dict[str, float]
    holdout: dict[str, float]
    flagged: dict[str, str] = field(default_factory=dict)

    def drop(self, metric: GateMetric) -> float | None:
        """How much worse the realized ``metric`` is than on the holdout (positive = worse)."""
        realized, holdout = self.realized.get(metric.name), self.holdout.get(metric.name)
        if realized is None or holdout is None or realized != realized:  # NaN: undefined
            return None
        return metric.gain(holdout, realized)


def read_labelled(
    url_or_engine: str | sa.Engine,
    window: Window,
    columns: tuple[LoggedColumn, ...],
    chunk_rows: int = 20_000,
) -> pd.DataFrame:
    """The window's rows that have ground truth: ``id``, ``model_version``, ``request_id``, the
    logged ``columns`` and ``actual``."""
    engine = store_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    log, truth = predictions_table, feedback_table
    try:
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            if not (inspector.has_table(log.name) and inspector.has_table(truth.name)):
                return RowDecoder(columns, request_ids=True, actual=True).frame()[0]
            labelled_requests = sa.select(truth.c.request_id).where(
                truth.c.model_name == window.model_name
            )
            served = (
                sa.select(
                    log.c.id,
                    log.c.model_version,
                    log.c.created_at,
                    sa.cast(log.c.features, sa.Text).label("features"),
                    sa.cast(log.c.output, sa.Text).label("output"),
                    log.c.request_id,
                    (
                        sa.func.row_number().over(partition_by=log.c.request_id, order_by=log.c.id)
                        - 1
                    ).label("record"),
                )
                .where(*window.conditions(), log.c.request_id.in_(labelled_requests))
                .subquery()
            )
            query = sa.select(
                served.c.id,
                served.c.model_version,
                served.c.created_at,
                served.c.features,
                served.c.output,
                served.c.request_id,
                sa.cast(truth.c.actual, sa.Text),
            ).join_from(
                served,
                truth,
                sa.and_(
                    truth.c.model_name == window.model_name,
                    truth.c.request_id == served.c.request_id,
                    truth.c.record == served.c.record,
                ),
            )
            decoder = RowDecoder(columns, request_ids=True, actual=True)
            result = connection.execution_options(yield_per=chunk_rows).execute(query)
            for part in result.partitions():
                decoder.add(part)
            return decoder.frame()[0]
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()


def realized_performance(
    labelled: pd.DataFrame,
    spec: MonitoringSpec,
    figures_of: Callable[[str], VersionFigures],
    max_drop: float,
) -> list[VersionPerformance]:
    """Per version with labelled rows: the use case's realized metrics beside its holdout ones."""
    results: list[VersionPerformance] = []
    if labelled.empty:
        return results
    for version, rows in labelled.groupby("model_version", observed=True, sort=True):
        figures = figures_of(str(version))
        realized, flagged = spec.performance(rows.reset_index(drop=True), figures, max_drop)
        holdout = {
            name: figures.metrics[f"holdout_{name}"]
            for name in realized
            if f"holdout_{name}" in figures.metrics
        }
        results.append(
            VersionPerformance(str(version), len(rows), realized, holdout, dict(flagged))
        )
    return results
