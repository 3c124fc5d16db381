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

The main CLI mounts ``drift_app`` as ``drift`` and :func:`feedback` as a command of its own.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from modelfactory.errors import ModelFactoryError
from modelfactory.local.console import ModelArgument, console, friendly_errors, tracking_uri

drift_app = typer.Typer(
    help="Drift and performance checks of the prediction log, and the retraining they start.",
    no_args_is_help=True,
)
_MANIFEST_ONLY = ("schedule", "suspend")  # DriftMonitor fields for the operator, not the check
Since = Annotated[
    str | None, typer.Option(help="Window: the last 24h, 30m, 7d, 1h30m, ... (default 24h).")
]
Last = Annotated[
    int | None, typer.Option(help="Window: the newest N logged rows instead of a time span.")
]
MinRows = Annotated[int | None, typer.Option(help="Fewest rows judged (default 500).")]
MonitorFile = Annotated[
    Path | None, typer.Option(help="Monitor settings (YAML/JSON, or a DriftMonitor manifest).")
]


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

    from modelfactory.monitoring.config import MonitorConfig

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


def _registry_and_use_case(monitor):
    """The registry the check uses, and the use case whose log it reads."""
    from modelfactory.registry import Registry
    from modelfactory.use_cases import monitored_use_case

    uri = tracking_uri()
    return uri, monitored_use_case(monitor.model, monitor.use_case, Registry(uri))


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
@friendly_errors
def check(
    model: ModelArgument,
    since: Since = None,
    last: Last = None,
    version: Annotated[str | None, typer.Option(help="Only rows this version answered.")] = None,
    html: Annotated[Path | None, typer.Option(help="Also write the HTML report here.")] = None,
    config: MonitorFile = None,
    min_rows: MinRows = None,
):
    """Check the prediction log against the champion: columns, methods, scores, flags, decision."""
    from modelfactory.config import get_settings
    from modelfactory.local.drift_view import print_check
    from modelfactory.monitoring.check import run_check
    from modelfactory.monitoring.state import JsonStateStore

    monitor = monitor_config(model, config, since, last, version, min_rows)
    state = JsonStateStore.for_model(get_settings().home, monitor.model).load()
    uri, case = _registry_and_use_case(monitor)
    result, _ = run_check(monitor, state, case, act=False, tracking_uri=uri, on_event=_on_event)
    print_check(result, console)
    if html is not None and result.report_path is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_bytes(result.report_path.read_bytes())
        console.print(f"[green]✓[/] report written to {html}", highlight=False)


@drift_app.command("run")
@friendly_errors
def run_(
    model: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
    config: MonitorFile = None,
    since: Since = None,
    last: Last = None,
    min_rows: MinRows = None,
    state_file: Annotated[
        Path | None,
        typer.Option(help="Where the monitor's state is kept (default under MODELFACTORY_HOME)."),
    ] = None,
):
    """One monitor check that acts: record it, and retrain when the policy says so."""
    from modelfactory.config import get_settings
    from modelfactory.local.drift_view import print_check
    from modelfactory.local.retraining import cli_retrainer
    from modelfactory.monitoring.check import run_monitor
    from modelfactory.monitoring.state import JsonStateStore, status_of

    settings = get_settings()
    monitor = monitor_config(model, config, since, last, None, min_rows)
    store = (
        JsonStateStore(state_file)
        if state_file
        else JsonStateStore.for_model(settings.home, monitor.model)
    )
    uri, case = _registry_and_use_case(monitor)
    retrainer = cli_retrainer(settings, uri, console)
    result, state = run_monitor(
        monitor, store, case, retrainer=retrainer, tracking_uri=uri, on_event=_on_event
    )
    print_check(result, console)
    console.print(
        f"state ({store.path}): {json.dumps(status_of(state))}", highlight=False, soft_wrap=True
    )


@drift_app.command()
@friendly_errors
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
    from modelfactory.anomaly.monitoring import batch_drift, read_staged_rides, record_batch_drift
    from modelfactory.anomaly.steps import default_staging_url
    from modelfactory.config import get_settings
    from modelfactory.local.drift_view import print_batches
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
    record_batch_drift(results, Registry(tracking_uri()), ANOMALY.model_name, home)
    print_batches(results, console)


@friendly_errors
def feedback(
    model: ModelArgument,
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="CSV with columns request_id, actual and optionally record (a record of a "
            "multi-record request, from 0).",
        ),
    ],
    use_case: Annotated[
        str | None, typer.Option(help="The model's use case, when its name does not say.")
    ] = None,
):
    """Load ground truth for logged predictions (a repeated request id replaces its value)."""
    from modelfactory.config import get_settings
    from modelfactory.predictions.feedback import FeedbackStore, UnknownRequests
    from modelfactory.use_cases import served_use_case

    settings = get_settings()
    spec = served_use_case(model, use_case).monitoring
    if spec is None:
        raise ModelFactoryError(f"{model}: its use case takes no ground truth")
    items = load_feedback_file(data, spec.check_actual)
    store = FeedbackStore(settings.prediction_store_url, model)
    try:
        stored = store.record(items)
    except UnknownRequests as exc:
        raise ModelFactoryError(f"{data}: nothing stored; {exc}") from None
    finally:
        store.close()
    console.print(
        f"[green]✓[/] {stored['stored']} ground-truth values for {model} "
        f"({stored['replaced']} replaced earlier ones) in {settings.prediction_store_url}",
        highlight=False,
    )


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
