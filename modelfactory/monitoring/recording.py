"""Every check is an MLflow run in the experiment ``monitoring/<model>``.

Tags say what was checked and decided (``monitoring.window``, ``monitoring.rows``,
``monitoring.champion_version``, ``monitoring.drifted_share``, ``monitoring.drifted_columns``,
``monitoring.decision``, ``monitoring.reason``) and, when a retrain started, ``retrain.run_id``,
``retrain.reason``, ``retrain.where``, ``retrain.version``. Metrics hold each column's score
(``drift.<column>``), the drifted share, the row counts and realized performance
(``realized.v<version>.<metric>``). Artifacts: the Evidently HTML report
(``drift_report.html``), its JSON snapshot (``drift_snapshot.json``) and the whole result
(``check.json``). The run is opened before a retrain starts, so its report can be read while a
local retraining run works, and its retrain tags are set when the run has started.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.entities import Metric, RunTag

from modelfactory.registry import Registry
from modelfactory.status import to_status
from modelfactory.timestamps import rfc3339

if TYPE_CHECKING:
    from modelfactory.monitoring.check import CheckResult
    from modelfactory.monitoring.window import LoggedWindow

EXPERIMENT_PREFIX = "monitoring/"
REPORT = "drift_report.html"
SNAPSHOT = "drift_snapshot.json"
_MAX_TAG = 5000  # MLflow keeps tag values up to 8000 characters


def experiment_name(model_name: str) -> str:
    return f"{EXPERIMENT_PREFIX}{model_name}"


class CheckRun:
    """One check's MLflow run: opened with what was measured and decided, closed at the end."""

    def __init__(self, registry: Registry, model_name: str, run_name: str):
        self.client = registry.client
        self.tracking_uri = registry.tracking_uri
        name = experiment_name(model_name)
        experiment = self.client.get_experiment_by_name(name)
        self.experiment_id = (
            experiment.experiment_id if experiment else self.client.create_experiment(name)
        )
        self.run_id = self.client.create_run(self.experiment_id, run_name=run_name).info.run_id

    @property
    def url(self) -> str:
        return f"{self.tracking_uri}/#/experiments/{self.experiment_id}/runs/{self.run_id}"

    def artifact_url(self, path: str) -> str:
        return f"{self.tracking_uri}/get-artifact?path={path}&run_uuid={self.run_id}"

    def log(
        self, tags: Mapping[str, str | None], metrics: Mapping[str, float], timestamp_ms: int
    ) -> None:
        self.client.log_batch(
            self.run_id,
            metrics=[
                Metric(_metric_key(k), float(v), timestamp_ms, 0)
                for k, v in metrics.items()
                if v is not None and math.isfinite(float(v))
            ],
            tags=[RunTag(k, str(v)[:_MAX_TAG]) for k, v in tags.items() if v is not None],
        )

    def log_files(self, files: dict[str, Path]) -> None:
        for name, path in files.items():
            with tempfile.TemporaryDirectory() as tmp:
                target = Path(tmp) / name
                target.write_bytes(Path(path).read_bytes())
                self.client.log_artifact(self.run_id, str(target))

    def log_record(self, name: str, value: Any) -> None:
        """``value`` (a dataclass :mod:`modelfactory.status` writes) as the JSON artifact
        ``name``."""
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / name
            target.write_text(json.dumps(to_status(value), indent=2))
            self.client.log_artifact(self.run_id, str(target))

    def close(self, failed: bool = False) -> None:
        # MLflow prints the run's links on stdout as it ends it; callers show ``url`` themselves.
        with contextlib.redirect_stdout(io.StringIO()):
            self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")


def record_check(run: CheckRun, result: CheckResult, logged: LoggedWindow) -> None:
    """The check's findings and decision as the run's tags and metrics."""
    decision, report = result.decision, result.drift
    tags = {
        "monitoring.window": result.window,
        "monitoring.rows": str(result.rows),
        "monitoring.read_rows": str(result.read_rows),
        "monitoring.champion_version": result.champion_version,
        "monitoring.decision": decision.action,
        "monitoring.reason": decision.reason,
        "monitoring.acted": str(result.acted).lower(),
        "monitoring.use_case": result.use_case,
    }
    if logged.first and logged.last:
        tags["monitoring.logged_from"] = rfc3339(logged.first)
        tags["monitoring.logged_to"] = rfc3339(logged.last)
    metrics: dict[str, float] = {"rows": result.rows, "read_rows": result.read_rows}
    if report is not None:
        drifted = [*report.drifted_inputs, *report.drifted_outputs]
        tags["monitoring.drifted_share"] = f"{report.drifted_share:.4f}"
        tags["monitoring.drifted_columns"] = ",".join(drifted) or "none"
        if report.skipped:
            tags["monitoring.skipped_columns"] = json.dumps(report.skipped)
        metrics["drifted_share"] = report.drifted_share
        metrics.update({f"drift.{c.column}": c.score for c in report.columns})
    for version in result.performance:
        metrics[f"realized.v{version.version}.labelled_rows"] = version.labelled_rows
        for name, value in version.realized.items():
            metrics[f"realized.v{version.version}.{name}"] = value
        if version.flagged:
            tags[f"realized.v{version.version}.flagged"] = "; ".join(
                f"{who}: {why}" for who, why in version.flagged.items()
            )
    run.log(tags, metrics, int(result.checked_at.timestamp() * 1000))


def _metric_key(name: str) -> str:
    """MLflow metric names take letters, digits, _ - . / and spaces; anything else becomes _."""
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)
