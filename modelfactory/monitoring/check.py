"""One monitoring check from end to end.

:func:`run_check` takes a :class:`~modelfactory.monitoring.config.MonitorConfig`, the
monitor's :class:`~modelfactory.monitoring.policy.MonitorState` and the model's
:class:`~modelfactory.use_case.UseCase` (the caller resolves it: serving's and monitoring's
floor never reach up to the list of use cases), and returns a :class:`CheckResult` and the next
state. It reads the window of the prediction log, compares it with the champion's reference
(Evidently), measures realized performance from ground truth, lets the policy decide, records
the check as an MLflow run (:mod:`~modelfactory.monitoring.recording`), and starts a retraining
run when the policy says so (:mod:`~modelfactory.monitoring.retrain`). :func:`run_monitor` does
the same with the state loaded from and saved to a
:class:`~modelfactory.monitoring.state.StateStore`; the state is saved only once the check is
over, so a check that fails half-way leaves the previous state as it was.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from modelfactory.config import Settings, get_settings
from modelfactory.errors import ModelFactoryError
from modelfactory.monitoring.config import MonitorConfig
from modelfactory.monitoring.drift import ColumnTest, DriftReport, drift_report
from modelfactory.monitoring.performance import (
    VersionPerformance,
    read_labelled,
    realized_performance,
)
from modelfactory.monitoring.policy import Decision, Evidence, MonitorState, decide
from modelfactory.monitoring.recording import REPORT, SNAPSHOT, CheckRun, record_check
from modelfactory.monitoring.reference import (
    Reference,
    VersionFigures,
    champion_figures,
    training_data,
    version_figures,
)
from modelfactory.monitoring.retrain import (
    RetrainContext,
    Retrainer,
    RetrainRun,
    retrainer_for,
    start_retrain,
)
from modelfactory.monitoring.state import StateStore
from modelfactory.monitoring.window import LoggedWindow, Window, read_window
from modelfactory.registry import Registry
from modelfactory.status import Moment, camel_case
from modelfactory.use_case import MonitoringSpec, UseCase


@camel_case
@dataclass
class CheckSummary:
    """A check as the DriftMonitor status's ``lastResult`` shows it."""

    time: Moment
    rows: int
    decision: str
    reason: str
    champion_version: str | None = None
    drifted_share: float | None = None
    drifted_columns: list[str] = field(default_factory=list)
    report_url: str | None = None
    sampled_rows: int | None = None
    realized_performance: dict[str, dict[str, Any]] | None = None
    retrain_error: str | None = None


@camel_case
@dataclass
class CheckResult:
    """What one check read, measured, decided and started (the run's ``check.json``)."""

    model: str
    use_case: str
    checked_at: Moment
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

    def summary(self) -> CheckSummary:
        drift = self.drift
        return CheckSummary(
            time=self.checked_at,
            rows=self.rows,
            decision=self.decision.action,
            reason=self.decision.reason,
            champion_version=self.champion_version,
            drifted_share=round(drift.drifted_share, 4) if drift else None,
            drifted_columns=[*drift.drifted_inputs, *drift.drifted_outputs] if drift else [],
            report_url=self.report_url,
            sampled_rows=self.read_rows if self.sampled else None,
            realized_performance={
                p.version: {
                    "labelledRows": p.labelled_rows,
                    **{k: round(v, 4) for k, v in p.realized.items() if v == v},  # not NaN
                    **({"flagged": dict(p.flagged)} if p.flagged else {}),
                }
                for p in self.performance
            }
            or None,
            retrain_error=self.retrain_error,
        )


def run_check(
    config: MonitorConfig,
    state: MonitorState,
    case: UseCase,
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
    """One check of ``config.model`` (served by ``case``); returns the result and the state the
    next check starts from.

    ``act=False`` (``modelfactory drift check``) decides as the monitor would but starts no
    retrain; its state is not meant to be kept. ``retrainer`` starts retraining runs
    (:func:`~modelfactory.monitoring.retrain.retrainer_for` the settings when none is given).
    ``on_event(kind, value)`` hears the steps as they happen (``report`` with the HTML path,
    ``retrain`` with the request) so a caller can print them.
    """
    spec = case.monitoring
    if spec is None:
        raise ModelFactoryError(f"the {case.name} use case logs no predictions to monitor")
    settings = settings or get_settings()
    now = now or dt.datetime.now(dt.UTC)
    store_url = store_url or settings.prediction_store_url
    registry = Registry(tracking_uri)
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
        report = _compare(logged, champion, spec, config, monitoring.max_rows, seed)
    performance: list[VersionPerformance] = []
    if config.performance.enabled:
        performance = _performance(config, spec, registry, store_url, now, monitoring.chunk_rows)
    if champion is None and performance:
        champion = champion_figures(registry, config.model)
    evidence = _evidence(logged, report, performance, champion, case)
    decision, new_state = decide(evidence, policy, state, now, config.retrain.enabled)
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
        record_check(run, result, logged)
        if report is not None and report.snapshot is not None:
            run.log_files({REPORT: folder / REPORT, SNAPSHOT: folder / SNAPSHOT})
            result.report_url = run.artifact_url(REPORT)
        on_event("decision", decision)
        if decision.retrain and act:
            context = RetrainContext(
                config.model, case, config.retrain, registry, store_url, now, run, folder
            )
            try:
                result.retrain = start_retrain(
                    context, decision.reason, retrainer or retrainer_for(settings), on_event
                )
            except Exception as exc:
                # The retrain did not start: the next check tries again, with no cooldown.
                result.retrain_error = f"{type(exc).__name__}: {exc}"
                on_event("retrain_failed", result.retrain_error)
                new_state = replace(
                    new_state,
                    consecutive_drifted_checks=decision.consecutive_drifted_checks,
                    last_retrain=state.last_retrain,
                )
            else:
                on_event("retrained", result.retrain)
                new_state = new_state.with_retrain(result.retrain.run_id, result.retrain.version)
        run.log_record("check.json", result)
    except BaseException:
        failed = True
        raise
    finally:
        run.close(failed)
    return result, new_state


def run_monitor(
    config: MonitorConfig, store: StateStore, case: UseCase, **options: Any
) -> tuple[CheckResult, MonitorState]:
    """:func:`run_check` with the state loaded from ``store`` and, once the check is over, saved
    back (``options`` as for run_check; with ``act=False`` nothing is saved)."""
    result, state = run_check(config, store.load(), case, **options)
    if options.get("act", True):
        store.save(state, result.summary())
    return result, state


def _compare(
    logged: LoggedWindow,
    champion: VersionFigures,
    spec: MonitoringSpec,
    config: MonitorConfig,
    max_rows: int,
    seed: int,
) -> DriftReport:
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
    spec: MonitoringSpec,
    registry: Registry,
    store_url: str,
    now: dt.datetime,
    chunk_rows: int,
) -> list[VersionPerformance]:
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
