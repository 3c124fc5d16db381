"""One monitoring check from end to end, and the state a monitor carries between checks.

:func:`run_check` is the one entry point: a :class:`MonitorConfig` (the DriftMonitor's spec:
model, window, minimum rows, drift, performance and retrain settings) and the monitor's
:class:`~modelfactory.monitoring.policy.MonitorState` in; a :class:`CheckResult` and the next
state out. It reads the window of the prediction log, compares it with the champion's reference
(Evidently), measures realized performance from ground truth, lets the policy decide, records
the check as an MLflow run, and starts a retraining run when the policy says so.
:func:`run_monitor` does the same with the state loaded from and saved to a
:class:`StateStore` (a JSON file under ``MODELFACTORY_HOME`` locally; a DriftMonitor's status
on a cluster). The state is saved only once the check is over, so a check that fails half-way
leaves the previous state as it was.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelfactory.config import Settings, get_settings
from modelfactory.errors import ModelFactoryError
from modelfactory.monitoring.drift import ColumnTest, DriftReport, DriftSettings, drift_report
from modelfactory.monitoring.performance import (
    PerformanceSettings,
    VersionPerformance,
    read_labelled,
    realized_performance,
)
from modelfactory.monitoring.policy import Decision, DriftPolicy, Evidence, MonitorState, decide
from modelfactory.monitoring.recording import REPORT, SNAPSHOT, CheckRun
from modelfactory.monitoring.reference import (
    Reference,
    VersionFigures,
    champion_figures,
    training_data,
    version_figures,
)
from modelfactory.monitoring.retrain import (
    FEEDBACK_SOURCE,
    Retrainer,
    RetrainRefused,
    RetrainRequest,
    RetrainRun,
    RetrainSettings,
    training_from_feedback,
    write_training_file,
)
from modelfactory.monitoring.window import LoggedWindow, Window, parse_duration, read_window
from modelfactory.pipeline_spec import pipeline_parameters
from modelfactory.registry import Registry
from modelfactory.use_case import UseCase


class WindowSettings(BaseModel):
    """The rows a check reads: the last ``since`` (a duration, e.g. 24h), or the newest
    ``last_rows``; of one ``version`` when given."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    since: str | None = "24h"
    last_rows: int | None = Field(default=None, ge=1, alias="lastRows")
    version: str | None = None

    @model_validator(mode="after")
    def _readable(self) -> WindowSettings:
        if self.since is not None:
            parse_duration(self.since)
        return self


class MonitorConfig(BaseModel):
    """What a monitor checks and does: the DriftMonitor's spec, field for field (camelCase
    aliases), or the CLI's options."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    model: str
    use_case: str | None = Field(default=None, alias="useCase")
    window: WindowSettings = WindowSettings()
    min_rows: int = Field(default=500, ge=1, alias="minRows")
    drift: DriftSettings = DriftSettings()
    performance: PerformanceSettings = PerformanceSettings()
    retrain: RetrainSettings = RetrainSettings()

    @model_validator(mode="after")
    def _durations(self) -> MonitorConfig:
        for name, text in (
            ("performance.since", self.performance.since),
            ("retrain.cooldown", self.retrain.cooldown),
            ("retrain.labelledSince", self.retrain.labelled_since),
        ):
            try:
                parse_duration(text)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return self

    def policy(self) -> DriftPolicy:
        return DriftPolicy(
            min_rows=self.min_rows,
            drifted_share=self.drift.drifted_share,
            decisive=self.drift.decisive,
            prediction_drift_decides=self.drift.prediction_drift_decides,
            consecutive_checks=self.drift.consecutive_checks,
            cooldown=parse_duration(self.retrain.cooldown),
            max_performance_drop=self.performance.max_drop,
            min_labelled_rows=self.performance.min_labelled_rows,
        )

    def window_at(self, now: dt.datetime) -> Window:
        settings = self.window
        if settings.last_rows:
            return Window(self.model, settings.version, last_rows=settings.last_rows)
        if settings.since is None:
            return Window(self.model, settings.version, until=now)
        return Window.recent(self.model, settings.since, now, settings.version)


@dataclass
class CheckResult:
    """What one check read, measured, decided and started."""

    model: str
    use_case: str
    checked_at: dt.datetime
    window: str
    rows: int
    read_rows: int
    decision: Decision
    champion_version: str | None = None
    drift: DriftReport | None = None
    performance: list[VersionPerformance] = field(default_factory=list)
    retrain: RetrainRun | None = None
    retrain_error: str | None = None
    mlflow_run_id: str | None = None
    run_url: str | None = None
    report_url: str | None = None
    report_path: Path | None = None
    acted: bool = True

    @property
    def sampled(self) -> bool:
        return self.read_rows < self.rows

    def to_status(self) -> dict:
        """The DriftMonitor status's ``lastResult`` (camelCase, as a person reads it)."""
        drift = self.drift
        status: dict[str, Any] = {
            "time": _rfc3339(self.checked_at),
            "rows": self.rows,
            "decision": self.decision.action,
            "reason": self.decision.reason,
            "championVersion": self.champion_version,
            "driftedShare": round(drift.drifted_share, 4) if drift else None,
            "driftedColumns": [*drift.drifted_inputs, *drift.drifted_outputs] if drift else [],
            "reportUrl": self.report_url,
        }
        if self.sampled:
            status["sampledRows"] = self.read_rows
        if self.performance:
            status["realizedPerformance"] = {
                p.version: {
                    "labelledRows": p.labelled_rows,
                    **{k: round(v, 4) for k, v in p.realized.items() if v == v},
                    **({"flagged": dict(p.flagged)} if p.flagged else {}),
                }
                for p in self.performance
            }
        if self.retrain_error:
            status["retrainError"] = self.retrain_error
        return status

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "use_case": self.use_case,
            "checked_at": _rfc3339(self.checked_at),
            "window": self.window,
            "rows": self.rows,
            "read_rows": self.read_rows,
            "champion_version": self.champion_version,
            "decision": self.decision.as_dict(),
            "drift": self.drift.as_dict() if self.drift else None,
            "performance": [p.as_dict() for p in self.performance],
            "retrain": self.retrain.as_dict() if self.retrain else None,
            "retrain_error": self.retrain_error,
            "mlflow_run_id": self.mlflow_run_id,
            "report_url": self.report_url,
        }


def run_check(
    config: MonitorConfig,
    state: MonitorState,
    *,
    retrainer: Retrainer | None = None,
    act: bool = True,
    now: dt.datetime | None = None,
    settings: Settings | None = None,
    tracking_uri: str | None = None,
    store_url: str | None = None,
    report_dir: Path | None = None,
    on_event: Callable[[str, Any], None] = lambda kind, value: None,
) -> tuple[CheckResult, MonitorState]:
    """One check of ``config.model``; returns the result and the state the next check starts
    from.

    ``act=False`` (``modelfactory drift check``) decides as the monitor would but starts no
    retrain; its state is not meant to be kept. ``retrainer`` starts retraining runs (a
    :class:`~modelfactory.monitoring.retrain.KfpRetrainer` when
    ``MODELFACTORY_MONITORING_KFP_HOST`` is set and none is given). ``on_event(kind, value)``
    hears the steps as they happen (``report`` with the HTML path, ``retrain`` with the request)
    so a caller can print them.
    """
    settings = settings or get_settings()
    now = now or dt.datetime.now(dt.UTC)
    store_url = store_url or settings.prediction_store_url
    registry = Registry(tracking_uri)
    case = _use_case(config, registry)
    spec = case.monitoring
    assert spec is not None  # _use_case checked it
    policy = config.policy()
    window = config.window_at(now)
    monitoring = settings.monitoring
    seed = int(now.timestamp())  # a repeatable sample per check time
    logged = read_window(
        store_url, window, spec.logged, monitoring.max_rows, monitoring.chunk_rows, seed=seed
    )
    champion: VersionFigures | None = None
    report: DriftReport | None = None
    if logged.rows >= policy.min_rows:
        champion = champion_figures(registry, config.model)
        report = _compare(logged, champion, case, config, monitoring.max_rows, seed)
    performance: list[VersionPerformance] = []
    if config.performance.enabled:
        performance = _performance(config, case, registry, store_url, now, monitoring.chunk_rows)
    if champion is None and performance:
        champion = champion_figures(registry, config.model)
    evidence = _evidence(logged, report, performance, champion, case)
    retrain_allowed = config.retrain.enabled
    decision, new_state = decide(evidence, policy, state, now, retrain_enabled=retrain_allowed)
    result = CheckResult(
        model=config.model,
        use_case=case.name,
        checked_at=now,
        window=window.describe(),
        rows=logged.rows,
        read_rows=logged.read,
        decision=decision,
        champion_version=champion.version if champion else None,
        drift=report,
        performance=performance,
        acted=act,
    )
    folder = (report_dir or settings.home / "monitoring" / config.model) / now.strftime(
        "%Y%m%dT%H%M%SZ"
    )
    if report is not None and report.snapshot is not None:
        result.report_path = report.save_html(folder / REPORT)
        report.save_json(folder / SNAPSHOT)
        on_event("report", result.report_path)
    run = CheckRun(registry, config.model, f"check-{now:%Y%m%d-%H%M%S}")
    result.mlflow_run_id, result.run_url = run.run_id, run.url
    failed = False
    try:
        _record_check(run, result, logged, report, now)
        if report is not None and report.snapshot is not None:
            run.log_files({REPORT: folder / REPORT, SNAPSHOT: folder / SNAPSHOT})
            result.report_url = run.artifact_url(REPORT)
        on_event("decision", decision)
        if decision.retrain and act:
            new_state = _retrain(
                config, case, registry, store_url, now, state, decision, new_state, result,
                retrainer or _default_retrainer(settings), run, folder, on_event,
            )  # fmt: skip
        run.log_json("check.json", result.as_dict())
    except BaseException:
        failed = True
        raise
    finally:
        run.close(failed)
    return result, new_state


def _use_case(config: MonitorConfig, registry: Registry) -> UseCase:
    from modelfactory.use_cases import served_use_case, use_case

    name = config.use_case
    if name is None:
        try:
            name = registry.use_case_of(config.model)
        except Exception:  # not registered (yet): fall back on the model's name
            name = None
    case = use_case(name) if name else served_use_case(config.model)
    if case.monitoring is None:
        raise ModelFactoryError(f"the {case.name} use case logs no predictions to monitor")
    return case


def _compare(
    logged: LoggedWindow,
    champion: VersionFigures,
    case: UseCase,
    config: MonitorConfig,
    max_rows: int,
    seed: int,
) -> DriftReport:
    spec = case.monitoring
    assert spec is not None
    training = training_data(champion, max_rows, seed)
    reference = spec.reference(Reference(training, logged.frame, champion, max_rows, seed))
    current = spec.compared(logged.frame) if spec.compared else logged.frame
    settings = config.drift
    if settings.outputs is None:
        method, threshold = spec.output_test
        settings = settings.model_copy(
            update={"outputs": ColumnTest(method=method, threshold=threshold)}
        )
    return drift_report(
        reference,
        current,
        spec.numeric,
        spec.categorical,
        spec.outputs,
        settings,
        drifted_share=settings.drifted_share,
    )


def _performance(
    config: MonitorConfig,
    case: UseCase,
    registry: Registry,
    store_url: str,
    now: dt.datetime,
    chunk_rows: int,
) -> list[VersionPerformance]:
    spec = case.monitoring
    assert spec is not None
    window = Window.recent(config.model, config.performance.since, now, config.window.version)
    labelled = read_labelled(store_url, window, spec.logged, chunk_rows)
    figures: dict[str, VersionFigures] = {}

    def figures_of(version: str) -> VersionFigures:
        if version not in figures:
            figures[version] = version_figures(registry, config.model, version)
        return figures[version]

    return realized_performance(labelled, spec, figures_of, config.performance.max_drop)


def _evidence(
    logged: LoggedWindow,
    report: DriftReport | None,
    performance: list[VersionPerformance],
    champion: VersionFigures | None,
    case: UseCase,
) -> Evidence:
    measured = next(
        (p for p in performance if champion is not None and p.version == champion.version), None
    )
    metric = case.gate_metric
    drop = measured.drop(metric) if measured is not None and metric is not None else None
    return Evidence(
        rows=logged.rows,
        input_columns=len(report.inputs) if report else 0,
        drifted_inputs=tuple(report.drifted_inputs) if report else (),
        drifted_outputs=tuple(report.drifted_outputs) if report else (),
        labelled_rows=measured.labelled_rows if measured else 0,
        metric=metric.name if metric else None,
        realized=measured.realized.get(metric.name) if measured and metric else None,
        holdout=measured.holdout.get(metric.name) if measured and metric else None,
        performance_drop=drop,
    )


def _record_check(
    run: CheckRun,
    result: CheckResult,
    logged: LoggedWindow,
    report: DriftReport | None,
    now: dt.datetime,
) -> None:
    decision = result.decision
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
        tags["monitoring.logged_from"] = _rfc3339(logged.first)
        tags["monitoring.logged_to"] = _rfc3339(logged.last)
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
    run.log(tags, metrics, int(now.timestamp() * 1000))


def _retrain(
    config: MonitorConfig,
    case: UseCase,
    registry: Registry,
    store_url: str,
    now: dt.datetime,
    state: MonitorState,
    decision: Decision,
    new_state: MonitorState,
    result: CheckResult,
    retrainer: Retrainer | None,
    run: CheckRun,
    folder: Path,
    on_event: Callable[[str, Any], None],
) -> MonitorState:
    """Start the retraining run; on failure keep the previous retrain in the state (so the next
    check tries again, with no cooldown) and record why."""
    reason = decision.reason
    try:
        if retrainer is None:
            raise RetrainRefused(
                "no way to run the pipeline: set MODELFACTORY_MONITORING_KFP_HOST on a cluster, "
                "or run `modelfactory drift run` on this machine"
            )
        source, split = _training_source(config, case, registry, store_url, now, folder, run)
        request = RetrainRequest(
            case.name, config.model, reason, source, {**split, **config.retrain.parameters}
        )
        on_event("retrain", request)
        started = retrainer.submit(request)
    except Exception as exc:
        result.retrain_error = f"{type(exc).__name__}: {exc}"
        run.log(
            {"retrain.error": result.retrain_error, "retrain.reason": reason},
            {},
            int(now.timestamp() * 1000),
        )
        on_event("retrain_failed", result.retrain_error)
        return replace(
            new_state,
            consecutive_drifted=decision.consecutive_drifted,
            last_retrain_at=state.last_retrain_at,
            last_retrain_reason=state.last_retrain_reason,
            last_retrain_run_id=state.last_retrain_run_id,
            last_retrain_version=state.last_retrain_version,
        )
    result.retrain = started
    run.log(
        {
            "retrain.run_id": started.run_id,
            "retrain.reason": reason,
            "retrain.where": started.where,
            "retrain.url": started.url,
            "retrain.version": started.version,
            "retrain.promoted": None if started.promoted is None else str(started.promoted).lower(),
            "retrain.alias": started.alias,
            "retrain.source": request.source,
        },
        {},
        int(now.timestamp() * 1000),
    )
    on_event("retrained", started)
    return new_state.with_retrain(started.run_id, started.version)


def _training_source(
    config: MonitorConfig,
    case: UseCase,
    registry: Registry,
    store_url: str,
    now: dt.datetime,
    folder: Path,
    run: CheckRun,
) -> tuple[str, dict[str, Any]]:
    """The path or URL the retraining run ingests, and the split arguments it needs.

    The configured source as it is; or (``feedback``) the champion's training data followed by
    the recently labelled predictions in the order they were logged, written under the check's
    folder and logged on its MLflow run (whose artifact URL a cluster's pipeline can download).
    Such a file is split in file order so that the holdout is the newest half of the labelled
    predictions: rows the champion never saw, so the gate compares both versions fairly (a
    random holdout would hold the champion's own training rows), while the new version learns
    from the older half.
    """
    source = config.retrain.source
    if source != FEEDBACK_SOURCE:
        return source, {}
    spec = case.monitoring
    assert spec is not None
    if spec.training_rows is None:
        raise RetrainRefused(
            f"the {case.name} use case cannot learn from its prediction log: set the monitor's "
            "retrain source to a data file"
        )
    champion = champion_figures(registry, config.model)
    window = Window.recent(config.model, config.retrain.labelled_since, now)
    labelled = read_labelled(store_url, window, spec.logged).sort_values("id")
    previous = training_data(champion)
    new_rows = spec.training_rows(labelled)
    combined = training_from_feedback(previous, new_rows, list(new_rows.columns))
    path = write_training_file(combined, case.data.write, folder, case.data.file_name)
    run.log_files({"retrain_" + case.data.file_name: path})
    remote = run.tracking_uri.startswith(("http://", "https://")) and not _is_local(run)
    where = run.artifact_url("retrain_" + case.data.file_name) if remote else str(path.resolve())
    holdout = max(1, (len(combined) - len(previous)) // 2)
    split = {"split_strategy": "sequential", "holdout_fraction": holdout / len(combined)}
    return where, {k: v for k, v in split.items() if k in pipeline_parameters(case.name)}


def _is_local(run: CheckRun) -> bool:
    """Whether the tracking server runs on this machine (then the file itself is readable)."""
    host = run.tracking_uri.split("://", 1)[1].split("/", 1)[0].split(":")[0]
    return host in ("127.0.0.1", "localhost", "::1")


def _default_retrainer(settings: Settings) -> Retrainer | None:
    monitoring = settings.monitoring
    if monitoring.kfp_host:
        from modelfactory.monitoring.retrain import KfpRetrainer

        return KfpRetrainer(monitoring.kfp_host, monitoring.kfp_experiment)
    return None


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- where a monitor's state lives between checks ---------------------------------------------


class StateStore(Protocol):
    """Keeps one monitor's state between checks (a DriftMonitor's status, a JSON file).

    ``save`` also gets the check's result, whose :meth:`CheckResult.to_status` is the status's
    ``lastResult`` (rows, drifted share and columns, realized performance, report link)."""

    def load(self) -> MonitorState: ...

    def save(self, state: MonitorState, result: CheckResult | None = None) -> None: ...


class JsonStateStore:
    """A monitor's state in a JSON file (the DriftMonitor status's fields), replaced atomically:
    a crash while saving leaves the previous state, never half a file."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def for_model(cls, home: Path, model: str) -> JsonStateStore:
        return cls(Path(home) / "monitoring" / model / "state.json")

    def load(self) -> MonitorState:
        if not self.path.exists():
            return MonitorState()
        try:
            return MonitorState.from_status(json.loads(self.path.read_text()))
        except (ValueError, TypeError, AttributeError) as exc:
            raise ModelFactoryError(
                f"{self.path}: the monitor's state cannot be read ({exc}); fix or delete it "
                "(a deleted state starts the consecutive count and the cooldown afresh)"
            ) from None

    def save(self, state: MonitorState, result: CheckResult | None = None) -> None:
        status = state.to_status()
        if result is not None:
            status["lastResult"] = result.to_status()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".state-")
        try:
            with os.fdopen(handle, "w") as file:
                json.dump(status, file, indent=2)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def run_monitor(
    config: MonitorConfig, store: StateStore, **options
) -> tuple[CheckResult, MonitorState]:
    """:func:`run_check` with the state loaded from ``store`` and, once the check is over, saved
    back (``options`` as for run_check; with ``act=False`` nothing is saved)."""
    result, state = run_check(config, store.load(), **options)
    if options.get("act", True):
        store.save(state, result)
    return result, state
