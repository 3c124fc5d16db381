"""``modelfactory drift check|run|batches`` and ``modelfactory feedback``: monitoring from the CLI.

- ``drift check MODEL`` compares the recent prediction log with the champion's reference and
  prints each column's method, score and flag, realized performance, the decision the monitor
  would take and where the report is. It starts nothing and keeps no state.
- ``drift run --model MODEL`` is one monitor check that acts: the decision is recorded, a retrain
  starts when the policy says so (a kfp local run here; a ``kfp.Client`` submission when
  ``MODELFACTORY_MONITORING_KFP_HOST`` is set), and the monitor's state is kept in
  ``MODELFACTORY_HOME/monitoring/<model>/state.json`` between runs. A DriftMonitor's CronJob runs
  the same check with the state in its status.
- ``drift batches`` records the anomaly batch's drift per batch date.
- ``feedback MODEL --data actuals.csv`` loads ground truth (``request_id,actual[,record]``).

Mounted by the main CLI (``app.add_typer(drift_app, name="drift")``).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from modelfactory.errors import ModelFactoryError

drift_app = typer.Typer(
    help="Drift and performance checks of the prediction log, and the retraining they start.",
    no_args_is_help=True,
)
console = Console()
_MANIFEST_ONLY = ("schedule", "suspend")  # DriftMonitor fields for the operator, not the check


def _errors(command):
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from mlflow.exceptions import MlflowException

        try:
            return command(*args, **kwargs)
        except (ModelFactoryError, LookupError, ValueError, MlflowException) as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper


def monitor_config(
    model: str | None,
    config: Path | None = None,
    since: str | None = None,
    last: int | None = None,
    version: str | None = None,
    min_rows: int | None = None,
):
    """A MonitorConfig from a YAML/JSON file (a monitor's settings, or a whole DriftMonitor
    manifest) with the command line's options over it."""
    import yaml

    from modelfactory.monitoring.monitor import MonitorConfig

    values: dict[str, Any] = {}
    if config is not None:
        try:
            loaded = yaml.safe_load(Path(config).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ModelFactoryError(f"{config}: cannot be read ({exc})") from None
        if not isinstance(loaded, dict):
            raise ModelFactoryError(f"{config}: expected a mapping of monitor settings")
        values = dict(loaded.get("spec", loaded))
        for key in _MANIFEST_ONLY:
            values.pop(key, None)
    if model:
        values["model"] = model
    if not values.get("model"):
        raise ModelFactoryError("name the model to monitor (MODEL, or `model:` in --config)")
    window = dict(values.get("window") or {})
    if since is not None:
        window.update(since=since, lastRows=None)
    if last is not None:
        window.update(lastRows=last, since=None)
    if version is not None:
        window["version"] = version
    values["window"] = window
    if min_rows is not None:
        values["minRows"] = min_rows
    return MonitorConfig.model_validate(values)


def _tracking_uri() -> str:
    import os

    from modelfactory.local.cli import _registry_uri

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep the table legible
    return _registry_uri()


def _on_event(kind: str, value) -> None:
    if kind == "report":
        console.print(f"[green]✓[/] drift report: {value}", highlight=False)
    elif kind == "retrain":
        console.print(
            f"[bold]retraining[/] {value.model_name} on {value.source} ({value.use_case} pipeline)",
            highlight=False,
        )
    elif kind == "retrain_failed":
        console.print(f"[red]✗ retraining did not start:[/] {value}", highlight=False)


@drift_app.command()
@_errors
def check(
    model: Annotated[str, typer.Argument(help="Registered model name, e.g. bank-marketing.")],
    since: Annotated[
        str | None, typer.Option(help="Window: the last 24h, 30m, 7d, ... (default 24h).")
    ] = None,
    last: Annotated[
        int | None, typer.Option(help="Window: the newest N logged rows instead of a time span.")
    ] = None,
    version: Annotated[str | None, typer.Option(help="Only rows this version answered.")] = None,
    html: Annotated[Path | None, typer.Option(help="Also write the HTML report here.")] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="Monitor settings (YAML/JSON, or a DriftMonitor manifest)."),
    ] = None,
    min_rows: Annotated[int | None, typer.Option(help="Fewest rows judged (default 500).")] = None,
):
    """Check the prediction log against the champion: columns, methods, scores, flags, decision."""
    from modelfactory.config import get_settings
    from modelfactory.monitoring.monitor import JsonStateStore, run_check

    settings = get_settings()
    monitor = monitor_config(model, config, since, last, version, min_rows)
    state = JsonStateStore.for_model(settings.home, monitor.model).load()
    result, _ = run_check(
        monitor, state, act=False, tracking_uri=_tracking_uri(), on_event=_on_event
    )
    print_check(result, console)
    if html is not None and result.report_path is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_bytes(result.report_path.read_bytes())
        console.print(f"[green]✓[/] report written to {html}", highlight=False)


@drift_app.command("run")
@_errors
def run_(
    model: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="Monitor settings (YAML/JSON, or a DriftMonitor manifest)."),
    ] = None,
    since: Annotated[str | None, typer.Option(help="Window: the last 24h, 7d, ...")] = None,
    last: Annotated[int | None, typer.Option(help="Window: the newest N logged rows.")] = None,
    min_rows: Annotated[int | None, typer.Option(help="Fewest rows judged (default 500).")] = None,
    state_file: Annotated[
        Path | None,
        typer.Option(help="Where the monitor's state is kept (default under MODELFACTORY_HOME)."),
    ] = None,
):
    """One monitor check that acts: record it, and retrain when the policy says so."""
    from modelfactory.config import get_settings
    from modelfactory.monitoring.monitor import JsonStateStore, run_monitor

    settings = get_settings()
    monitor = monitor_config(model, config, since, last, None, min_rows)
    store = (
        JsonStateStore(state_file)
        if state_file
        else JsonStateStore.for_model(settings.home, monitor.model)
    )
    uri = _tracking_uri()
    result, state = run_monitor(
        monitor, store, retrainer=retrainer_for(settings, uri), tracking_uri=uri, on_event=_on_event
    )
    print_check(result, console)
    console.print(
        f"state ({store.path}): {json.dumps(state.to_status())}", highlight=False, soft_wrap=True
    )


def retrainer_for(settings, tracking_uri: str):
    """kfp.Client submissions when a KFP endpoint is configured, else a kfp local run here."""
    if settings.monitoring.kfp_host:
        from modelfactory.monitoring.retrain import KfpRetrainer

        return KfpRetrainer(settings.monitoring.kfp_host, settings.monitoring.kfp_experiment)
    from modelfactory.local.retraining import LocalRetrainer

    # The local runner sends kfp's own output to the run's log by redirecting stdout: the step
    # lines go to the stream the terminal has now.
    steps = Console(file=console.file, force_terminal=console.is_terminal, width=console.width)

    def show(event) -> None:
        if event.status == "SUCCESS":
            steps.print(f"  [green]✓[/] {event.task} [dim]({event.seconds:.1f}s)[/]")
        elif event.status != "running":
            steps.print(f"  [red]✗[/] {event.task} [dim]({event.seconds:.1f}s)[/]")

    return LocalRetrainer(tracking_uri, settings.home / "pipeline_runs", show)


def print_check(result, out: Console) -> None:
    """The check as a person reads it: columns, methods, scores, flags; performance; decision."""
    read = (
        f"{result.read_rows:,} sampled of {result.rows:,} rows"
        if result.sampled
        else f"{result.rows:,} rows"
    )
    champion = f", champion v{result.champion_version}" if result.champion_version else ""
    out.print(f"\n[bold]{result.window}[/]: {read}{champion}", highlight=False)
    drift = result.drift
    if drift is not None:
        table = Table("column", "role", "method", "threshold", "score", "drifted")
        for column in sorted(drift.columns, key=lambda c: (c.role != "output", -c.score)):
            table.add_row(
                column.column,
                column.role,
                column.method,
                f"{column.threshold:g}",
                f"{column.score:.4f}",
                "[red]DRIFT[/]" if column.drifted else "-",
            )
        out.print(table)
        out.print(
            f"drifted: {len(drift.drifted_inputs)} of {len(drift.inputs)} inputs "
            f"({drift.drifted_share:.0%})"
            + (f"; outputs: {', '.join(drift.drifted_outputs)}" if drift.drifted_outputs else "")
            + f"; reference {drift.reference_rows:,} rows",
            highlight=False,
        )
        for column, why in drift.skipped.items():
            out.print(f"  not compared: {column} ({why})", highlight=False)
    for version in result.performance:
        figures = ", ".join(
            f"{name} {value:.4f}"
            + (f" (holdout {version.holdout[name]:.4f})" if name in version.holdout else "")
            for name, value in version.realized.items()
            if not name.startswith("store_")
        )
        out.print(
            f"realized v{version.version} on {version.labelled_rows:,} labelled rows: {figures}",
            highlight=False,
        )
        for who, why in version.flagged.items():
            out.print(f"  [yellow]{who}[/]: {why}", highlight=False)
    decision = result.decision
    verb = decision.action if result.acted else f"{decision.action} (a check only: nothing started)"
    out.print(f"[bold]decision[/]: {verb}\n  {decision.reason}", highlight=False)
    if result.retrain is not None:
        started = result.retrain
        out.print(
            f"[bold]retraining run[/] {started.run_id} ({started.where})"
            + (f": registered v{started.version}" if started.version else "")
            + (f", {started.detail}" if started.detail else ""),
            highlight=False,
        )
    if result.retrain_error:
        out.print(f"[red]retraining failed[/]: {result.retrain_error}", highlight=False)
    if result.report_path is not None:
        out.print(f"report: {result.report_path}", highlight=False)
    if result.report_url:
        out.print(f"        {result.report_url}", highlight=False)
    if result.run_url:
        out.print(f"MLflow run: {result.run_url}", highlight=False)


@drift_app.command()
@_errors
def batches(
    staging_url: Annotated[
        str, typer.Option(help="The anomaly batch's staging table (default sqlite in the home).")
    ] = "",
    days: Annotated[int, typer.Option(help="Trailing days each batch date is compared with.")] = 7,
    since: Annotated[
        str | None, typer.Option(help="First batch date to record (YYYY-MM-DD); default all.")
    ] = None,
):
    """The anomaly batch: each day's rides against the days before, and its outlier rate."""
    from modelfactory.anomaly.steps import default_staging_url
    from modelfactory.config import get_settings
    from modelfactory.monitoring.batches import batch_drift, read_staged_rides, record_batch_drift
    from modelfactory.registry import Registry
    from modelfactory.use_cases import ANOMALY

    first = dt.date.fromisoformat(since) if since else None
    reference_start = first - dt.timedelta(days=days) if first else None
    rides = read_staged_rides(staging_url or default_staging_url(), reference_start)
    if rides.empty:
        raise ModelFactoryError("no scored rides in the staging table: run the anomaly batch first")
    dates = sorted({d for d in rides["batch_date"] if first is None or d >= first})
    results = batch_drift(rides, dates, reference_days=days)
    home = get_settings().home / "monitoring" / ANOMALY.model_name
    record_batch_drift(results, Registry(_tracking_uri()), ANOMALY.model_name, home)
    table = Table("batch date", "rides", "outlier rate", "days before", "drifted share", "verdict")
    for result in results:
        table.add_row(
            result.batch_date.isoformat(),
            f"{result.rides:,}",
            f"{result.outlier_rate:.2%}",
            "-"
            if result.reference_outlier_rate is None
            else f"{result.reference_outlier_rate:.2%}",
            "-" if result.drifted_share is None else f"{result.drifted_share:.0%}",
            result.verdict,
        )
    console.print(table)


def load_feedback_file(path: Path, check_actual, max_items: int | None = None) -> list:
    """Items of a CSV file with columns request_id, actual and optionally record; an ``actual``
    written as JSON (a forecast's list of sales) is read as JSON. Problems name the file's rows."""
    from modelfactory.data.io import read_table
    from modelfactory.predictions.feedback import InvalidFeedback, parse_feedback

    frame = read_table(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("request_id", "actual") if c not in frame.columns]
    if missing:
        raise ModelFactoryError(
            f"{path}: missing column(s) {', '.join(missing)} (expected request_id,actual[,record])"
        )
    items = []
    for row in frame.itertuples(index=False):
        item: dict[str, Any] = {"request_id": row.request_id, "actual": _cell(str(row.actual))}
        record = getattr(row, "record", "")
        if record not in ("", None):
            item["record"] = int(record) if str(record).isdigit() else record
        items.append(item)
    try:
        return parse_feedback(items, check_actual, max_items or max(len(items), 1))
    except InvalidFeedback as exc:
        rows = [_file_row(problem) for problem in exc.problems]
        shown = "\n".join(f"  - {p}" for p in rows[:20])
        raise ModelFactoryError(f"{path}: {len(rows)} problem(s):\n{shown}") from None


def _file_row(problem: str) -> str:
    """'[3].actual: ...' (an item index) as 'row 4: actual: ...' (the file's row, 1-based)."""
    match = re.match(r"\[(\d+)\]\.?(.*)", problem)
    return f"row {int(match[1]) + 1}: {match[2]}" if match else problem


def _cell(text: str):
    stripped = text.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return json.loads(stripped)
        except ValueError:
            return text
    return text
