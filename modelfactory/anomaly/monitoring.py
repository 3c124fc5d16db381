"""Drift of the daily anomaly batch: each day's rides against the days before it.

The anomaly batch registers no model: each day is standardised and clustered on its own, so
DBSCAN's outlier rate alone cannot tell a day whose rides changed (longer trips everywhere,
a detour) from a day with more anomalies. :func:`batch_drift` compares each batch date's
rides with the trailing ``reference_days`` before it (from the staging table), and sets the
day's outlier rate beside the reference days': the verdict says which of the two moved.

What is compared: the rides DBSCAN kept as inliers, on a log scale (``log1p`` of distance, time
and speed), by the same Evidently report as the served models. On raw values a few 100-mile or
day-long records squeeze the bulk of the rides into one of PSI's equal-width bins and hide a
shift of every trip; comparing all rides lets scattered anomalies pass for changed data
(docs/adr/0008-drift-checks.md).

:func:`record_batch_drift` keeps one MLflow run per batch date and check in the
experiment ``monitoring/<model>`` (metrics ``drifted_share``, ``outlier_rate``,
``reference_outlier_rate``, ``drift.<feature>``; tags ``monitoring.batch_date``,
``monitoring.verdict``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from modelfactory.data.taxi import RIDE_FEATURES
from modelfactory.monitoring.drift import DriftReport, DriftSettings, drift_report
from modelfactory.monitoring.recording import REPORT, CheckRun
from modelfactory.registry import Registry
from modelfactory.status import camel_case

VERDICTS = ("as before", "data changed", "more anomalies", "data changed, more anomalies")


@camel_case
@dataclass
class BatchDrift:
    """One batch date against the days before it (the run's ``batch.json``)."""

    batch_date: dt.date
    rides: int
    reference_rides: int
    reference_dates: tuple[dt.date, dt.date] | None
    outlier_rate: float
    reference_outlier_rate: float | None
    drift: DriftReport | None
    verdict: str

    @property
    def drifted_share(self) -> float | None:
        return self.drift.drifted_share if self.drift else None


def read_staged_rides(url: str, since: dt.date | None = None) -> pd.DataFrame:
    """Scored rides from the staging table (``ride_outliers``), from ``since`` on."""
    from modelfactory.anomaly.staging import ride_outliers, staging_engine

    engine = staging_engine(url)
    try:
        columns = [ride_outliers.c.batch_date, *(ride_outliers.c[f] for f in RIDE_FEATURES)]
        query = sa.select(*columns, ride_outliers.c.is_outlier)
        if since is not None:
            query = query.where(ride_outliers.c.batch_date >= since)
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(ride_outliers.name):
                return pd.DataFrame(columns=["batch_date", *RIDE_FEATURES, "is_outlier"])
            return pd.read_sql(query, connection)
    finally:
        engine.dispose()


def batch_drift(
    rides: pd.DataFrame,
    dates: list[dt.date] | None = None,
    reference_days: int = 7,
    settings: DriftSettings | None = None,
    drifted_share: float = 0.3,
    min_rides: int = 100,
    min_reference_days: int = 3,
    outlier_ratio: float = 1.5,
    outlier_increase: float = 0.01,
) -> list[BatchDrift]:
    """Per batch date (``dates``, default every date in ``rides``): drift of its inliers'
    log-scaled features against those of the ``reference_days`` days before it, and its outlier
    rate beside theirs.

    A day "changed" when at least ``drifted_share`` of the features drift; it has "more
    anomalies" when its outlier rate is at least ``outlier_ratio`` times the reference days'
    and higher by at least ``outlier_increase``. A day with fewer than ``min_rides`` rides, or
    fewer than ``min_reference_days`` days with rides before it within the reference days, has
    no verdict beyond "no reference yet" (one day, a holiday say, is a poor measure of usual).
    """
    days = pd.to_datetime(rides["batch_date"]).dt.date
    wanted = sorted(set(days)) if dates is None else sorted(dates)
    results = []
    for day in wanted:
        current = rides[days == day]
        start = day - dt.timedelta(days=reference_days)
        window = (days >= start) & (days < day)
        reference = rides[window]
        rate = float(current["is_outlier"].mean()) if len(current) else 0.0
        reference_days_seen = len(set(days[window]))
        if (
            len(reference) < min_rides
            or len(current) < min_rides
            or reference_days_seen < min_reference_days
        ):
            results.append(
                BatchDrift(
                    day, len(current), len(reference), None, rate, None, None, "no reference yet"
                )
            )
            continue
        report = drift_report(
            _log_inliers(reference),
            _log_inliers(current),
            RIDE_FEATURES,
            (),
            (),
            settings,
            drifted_share,
        )
        reference_rate = float(reference["is_outlier"].mean())
        changed = report.drifted_share >= drifted_share
        more = rate >= outlier_ratio * reference_rate and rate - reference_rate >= outlier_increase
        verdict = VERDICTS[int(changed) + 2 * int(more)]
        span = (min(days[window]), max(days[window]))
        results.append(
            BatchDrift(
                day, len(current), len(reference), span, rate, reference_rate, report, verdict
            )
        )
    return results


def _log_inliers(rides: pd.DataFrame) -> pd.DataFrame:
    inliers = rides[~rides["is_outlier"].astype(bool)]
    return pd.DataFrame({f: np.log1p(inliers[f].clip(lower=0)) for f in RIDE_FEATURES})


def record_batch_drift(
    results: list[BatchDrift], registry: Registry, model_name: str, report_dir: Path
) -> dict[dt.date, str]:
    """One MLflow run per batch date with a verdict; returns their run ids by date."""
    runs = {}
    for result in results:
        run = CheckRun(registry, model_name, f"batch-{result.batch_date.isoformat()}")
        try:
            metrics = {"rides": result.rides, "outlier_rate": result.outlier_rate}
            if result.drift is not None:
                metrics["drifted_share"] = result.drift.drifted_share
                metrics["reference_outlier_rate"] = result.reference_outlier_rate or 0.0
                metrics.update({f"drift.{c.column}": c.score for c in result.drift.columns})
            tags = {
                "monitoring.batch_date": result.batch_date.isoformat(),
                "monitoring.verdict": result.verdict,
                "monitoring.rows": str(result.rides),
                "monitoring.reference_rows": str(result.reference_rides),
                "monitoring.compared": "inliers, log1p of each feature",
            }
            if result.drift is not None:
                tags["monitoring.drifted_columns"] = ",".join(result.drift.drifted_inputs) or "none"
            moment = dt.datetime.combine(result.batch_date, dt.time(), dt.UTC)
            run.log(tags, metrics, int(moment.timestamp() * 1000))
            if result.drift is not None and result.drift.snapshot is not None:
                path = result.drift.save_html(
                    Path(report_dir) / result.batch_date.isoformat() / REPORT
                )
                run.log_files({REPORT: path})
            run.log_record("batch.json", result)
        finally:
            run.close()
        runs[result.batch_date] = run.run_id
    return runs
