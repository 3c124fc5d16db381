"""What the CLI commands do, beyond parsing options: run a pipeline, show models, the demo.

Kept apart from :mod:`modelfactory.local.cli` so the same flows are callable (and
tested) without a terminal; output goes to the rich ``Console`` passed in.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from modelfactory.config import get_settings
from modelfactory.errors import ModelFactoryError
from modelfactory.local.pipeline_runs import StepEvent, compiled_pipeline, run_locally
from modelfactory.registry import Registry
from modelfactory.use_cases import CLASSIFICATION, FORECASTING
from modelfactory.use_cases import use_case as get_use_case


def run_pipeline(
    use_case: str,
    tracking_uri: str,
    console: Console,
    source: str | None = None,
    promotion_margin: float | None = None,
    promotion: str = "direct",
    **arguments,
) -> dict:
    """Run ``use_case``'s pipeline locally, one progress line per step; return the registration
    summary."""
    settings = get_settings()
    case = get_use_case(use_case)
    if source and Path(source).exists():
        source = str(Path(source).resolve())
    margin = settings.promotion_margin if promotion_margin is None else promotion_margin
    args = {
        "source": source or "",
        "mlflow_tracking_uri": tracking_uri,
        "model_name": case.model_name,
        "promotion_margin": margin,
        "promotion": promotion,
        **arguments,
    }
    pipeline = compiled_pipeline(case.name)
    accepted = set(pipeline.component_spec.inputs or {})
    # Each pipeline takes its own options (classification: split, forecasting: stores, ...).
    args = {k: v for k, v in args.items() if k in accepted}
    # run_locally sends kfp's own output to the run's log by redirecting stdout; the progress
    # lines must still reach the terminal the console writes to now.
    progress = Console(
        file=console.file,
        force_terminal=console.is_terminal,
        width=console.width,
        no_color=console.no_color,
    )
    status = progress.status("Starting the pipeline...")
    status.start()

    def show(event: StepEvent) -> None:
        if event.status == "running":
            status.update(f"Running [bold]{event.task}[/]...")
        elif event.status == "SUCCESS":
            progress.print(f"[green]✓[/] {event.task} [dim]({event.seconds:.1f}s)[/]")
        else:
            progress.print(f"[red]✗[/] {event.task} [dim]({event.seconds:.1f}s)[/]")

    try:
        return run_locally(pipeline, args, settings.home / "pipeline_runs", show)
    finally:
        status.stop()


def print_registration(summary: dict, tracking_uri: str, console: Console) -> None:
    registry = Registry(tracking_uri)
    metrics = registry.run_metrics(summary["run_id"])
    if summary["promoted"]:
        verdict = "[green]promoted to champion[/]"
    elif summary.get("eligible"):
        verdict = (
            f"[cyan]challenger, eligible for a rollout[/] (modelfactory rollout run "
            f"{summary['model_name']})"
        )
    elif summary["alias"]:
        verdict = "[yellow]kept as challenger[/]"
    else:
        verdict = "[yellow]rejected by the gate: no alias, never rolled out[/]"
    console.print(
        f"\n[bold]{summary['model_name']}[/] version [bold]{summary['version']}[/] "
        f"(alias {summary['alias']}): {verdict}"
    )
    console.print(f"  reason: {summary['reason']}", highlight=False)
    table = Table("holdout metric", "model", "baseline", title=f"run {summary['run_id']}")
    for name in ("roc_auc", "pr_auc", "f1", "precision", "recall", "mape", "median_mape", "rmse"):
        if f"holdout_{name}" in metrics:
            table.add_row(
                name,
                f"{metrics[f'holdout_{name}']:.4f}",
                f"{metrics.get(f'baseline_holdout_{name}', float('nan')):.4f}",
            )
    console.print(table)
    if summary.get("failed_stores"):
        console.print(
            f"  [yellow]stores without a model[/] ({len(summary['failed_stores'])}):",
            highlight=False,
        )
        for store, reason in list(summary["failed_stores"].items())[:20]:
            console.print(f"    store {store}: {reason}", highlight=False)
    experiment = registry.client.get_run(summary["run_id"]).info.experiment_id
    console.print(
        f"  MLflow run: {tracking_uri}/#/experiments/{experiment}/runs/{summary['run_id']}"
    )


def print_models(tracking_uri: str, console: Console) -> None:
    registry = Registry(tracking_uri)
    names = registry.model_names()
    if not names:
        console.print(
            f"No registered models at {tracking_uri} yet: run `modelfactory run classification`."
        )
        return
    for name in names:
        table = Table(
            "version",
            "aliases",
            "registered",
            "gate metric",
            "model",
            "baseline",
            "champion then",
            "decision",
            title=name,
            title_justify="left",
        )
        for v in registry.versions(name):
            metric = v.tags.get("promotion.metric", "roc_auc")
            table.add_row(
                v.version,
                ", ".join(v.aliases) or "-",
                time.strftime("%Y-%m-%d %H:%M", time.localtime(v.created / 1000)),
                metric,
                _fmt(v.metrics.get(f"holdout_{metric}")),
                _fmt(v.metrics.get(f"baseline_holdout_{metric}")),
                v.tags.get("promotion.champion", "-"),
                v.tags.get("promotion.decision", "-"),
            )
        console.print(table)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def demo(tracking_uri: str, console: Console, rows: int = 20000) -> None:
    """Generate data, run the classification pipeline, serve the champion, send real predictions;
    then traffic from a later period, its ground truth, a drift check and the retraining it
    starts."""
    from modelfactory.data.bank_marketing import (
        FEATURES,
        generate_bank_marketing,
        write_bank_marketing,
    )
    from modelfactory.local.ports import free_port, port_in_use
    from modelfactory.local.serving import ServingProcess

    settings = get_settings()
    registry = Registry(tracking_uri)
    # Each demo run is a new day's data: a different seed per registered version.
    model = CLASSIFICATION.model_name
    runs_so_far = sum(1 for _ in registry.versions(model)) if model in registry.model_names() else 0
    data_path = write_bank_marketing(
        generate_bank_marketing(rows, seed=runs_so_far),
        settings.home / "demo" / f"bank-additional-{runs_so_far}.csv",
    )
    console.print(f"[green]✓[/] {rows} rows of synthetic bank-marketing data at {data_path}")
    summary = run_pipeline(
        "classification",
        tracking_uri,
        console,
        source=str(data_path),
        n_synthetic_rows=rows,
        seed=42,
    )
    print_registration(summary, tracking_uri, console)

    port = settings.serving.http_port
    port = free_port() if port_in_use(port) else port
    log_file = settings.home / "logs" / "demo-serving.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with console.status("Starting the BentoML service for the champion..."):
        service = ServingProcess(model, tracking_uri, port, workers=1, log_file=log_file).start()
    try:
        console.print(f"[green]✓[/] serving bank-marketing@champion at [bold]{service.url}[/]")
        customers = generate_bank_marketing(5, seed=random.randrange(1 << 30))[list(FEATURES)]
        records = customers.to_dict(orient="records")
        answer = httpx.post(f"{service.url}/predict", json={"records": records}, timeout=30)
        answer.raise_for_status()
        body = answer.json()
        table = Table(
            "age",
            "job",
            "contact",
            "poutcome",
            "euribor3m",
            "predicted",
            "probability",
            title=f"POST {service.url}/predict → {body['model']} v{body['model_version']}",
        )
        for record, prediction in zip(records, body["predictions"], strict=True):
            table.add_row(
                str(record["age"]),
                record["job"],
                record["contact"],
                record["poutcome"],
                f"{record['euribor3m']:.2f}",
                prediction["class"],
                f"{prediction['probability']:.3f}",
            )
        console.print(table)
        bad = httpx.post(
            f"{service.url}/predict", json={"records": [{**records[0], "age": "forty"}]}, timeout=30
        )
        console.print(
            f"A bad request is refused with {bad.status_code}: {bad.json()['problems'][0]}",
            highlight=False,
        )
        later = send_later_period(service.url, console, seed=runs_so_far)
    finally:
        service.stop()
    check_and_retrain(tracking_uri, console, later)
    console.print(
        f"\n[bold]MLflow UI[/]: {tracking_uri}  (keeps running; `modelfactory down` stops it)"
    )
    console.print(
        "[bold]Serve the champion yourself[/]: modelfactory serve bank-marketing "
        f"→ http://{settings.serving.http_host}:{settings.serving.http_port}/predict"
    )


DEMO_LATER_ROWS = 2000
DEMO_BATCH = 100


def send_later_period(url: str, console: Console, seed: int = 0) -> int:
    """Traffic from the bank's later period (rates at their floor, employment down), then the
    outcomes of those calls as ground truth (POST /feedback); returns how many were labelled."""
    from modelfactory.data.bank_marketing import FEATURES, generate_bank_marketing

    console.rule("[bold]Later: the economy has changed[/]")
    customers = generate_bank_marketing(DEMO_LATER_ROWS, seed=1000 + seed, period="later")
    records = customers[list(FEATURES)].to_dict(orient="records")
    outcomes = customers["y"].tolist()
    stamp = time.strftime("%Y%m%d%H%M%S")
    sent = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for start in range(0, len(records), DEMO_BATCH):
            request_id = f"demo-{stamp}-{start // DEMO_BATCH}"
            answer = client.post(
                "/predict",
                json={"records": records[start : start + DEMO_BATCH]},
                headers={"x-request-id": request_id},
            )
            answer.raise_for_status()
            sent.append((request_id, outcomes[start : start + DEMO_BATCH]))
        console.print(
            f"[green]✓[/] {len(records)} customers of the later period scored ({len(sent)} "
            f"requests; euribor3m about {customers['euribor3m'].mean():.2f}, employment "
            f"{customers['nr.employed'].mean():.0f})"
        )
        labelled = 0
        for request_id, truth in sent:
            items = [
                {"request_id": request_id, "record": i, "actual": y} for i, y in enumerate(truth)
            ]
            for _ in range(40):  # the writer process logs a prediction within about a second
                answer = client.post("/feedback", json=items)
                if answer.status_code != 404:
                    break
                time.sleep(0.25)
            answer.raise_for_status()
            labelled += answer.json()["stored"]
    console.print(
        f"[green]✓[/] their outcomes reported: POST /feedback x {len(sent)} ({labelled} labels)"
    )
    return labelled


def check_and_retrain(tracking_uri: str, console: Console, labelled: int) -> None:
    """One monitor check of the last hour: the drift table, the report, and the retraining."""
    from modelfactory.local.drift_cli import print_check, retrainer_for
    from modelfactory.monitoring.monitor import MonitorConfig, run_check
    from modelfactory.monitoring.policy import MonitorState

    settings = get_settings()
    config = MonitorConfig.model_validate(
        {
            "model": CLASSIFICATION.model_name,
            "window": {"since": "1h"},
            # The demo acts on its first drifted check; a monitor's default waits for two.
            "drift": {"consecutiveChecks": 1},
            "retrain": {"source": "feedback", "labelledSince": "1h"},
        }
    )
    console.print(
        "Drift check of the last hour against the champion's training data (policy: retrain "
        "on the first drifted check, as a demo; by default two in a row)..."
    )

    def show(kind: str, value) -> None:
        if kind == "report":
            console.print(f"[green]✓[/] drift report: [bold]{value}[/]", highlight=False)
        elif kind == "retrain":
            console.print(
                f"[bold]retraining[/] {value.model_name}: the compiled pipeline on the champion's "
                f"training data + {labelled} labelled predictions ({value.source})",
                highlight=False,
            )

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    result, _ = run_check(
        config,
        MonitorState(),
        retrainer=retrainer_for(settings, tracking_uri),
        tracking_uri=tracking_uri,
        on_event=show,
    )
    print_check(result, console)
    started = result.retrain
    if started is not None and started.version:
        verdict = "promoted to champion" if started.promoted else "kept as challenger"
        console.print(
            f"[bold]new version {started.version}[/]: the gate {verdict} ({started.detail})",
            highlight=False,
        )
        console.print(
            "The rollout takes the challenger from here: canary steps, then promotion "
            f"(`modelfactory rollout set {CLASSIFICATION.model_name} --mode canary --weight 10`)."
        )


def use_case_arguments(
    use_case: str,
    rows: int | None = None,
    seed: int = 42,
    split: str = "random",
    holdout: float = 0.2,
    imbalance: str = "auto",
    stores: str = "",
    max_failure_share: float = 0.05,
    shards: int = 1,
    batch_date: str = "",
    eps: float = 0.5,
    min_samples: int = 10,
    staging_url: str = "",
) -> dict:
    """Every pipeline argument the CLI's options make; each pipeline keeps the ones it takes."""
    case = get_use_case(use_case)
    if stores:
        from modelfactory.forecasting.steps import parse_stores

        try:
            parse_stores(stores)  # a typo fails here, before any step runs
        except ValueError as exc:
            raise ModelFactoryError(str(exc)) from None
    if shards < 1:
        raise ModelFactoryError(f"--shards must be at least 1, got {shards}")
    return {
        "n_synthetic_rows": rows or case.synthetic_rows,
        "seed": seed,
        "split_strategy": split,
        "holdout_fraction": holdout,
        "imbalance": imbalance,
        "stores": stores,
        "max_failure_share": max_failure_share,
        "n_shards": shards,
        "batch_date": batch_date,
        "eps": eps,
        "min_samples": min_samples,
        "staging_url": staging_url,
    }


def print_anomaly_batch(summary: dict, tracking_uri: str, console: Console) -> None:
    registry = Registry(tracking_uri)
    run = registry.client.get_run(summary["run_id"])
    metrics = run.data.metrics
    console.print(
        f"\n[bold]{summary['batch_date']}[/]: {summary['rows']} rides scored, "
        f"[bold]{summary['outliers']}[/] flagged as outliers → {summary['staging_url']} "
        f"(table ride_outliers; a re-run replaces this day's rows)",
        highlight=False,
    )
    silhouette = metrics.get("silhouette")
    console.print(
        f"  clusters {metrics.get('clusters', 0):.0f}, noise {metrics.get('noise', 0):.0f}, "
        f"silhouette {'-' if silhouette is None else f'{silhouette:.3f}'}",
        highlight=False,
    )
    console.print(
        f"  MLflow run (metrics and the scatter plot): "
        f"{tracking_uri}/#/experiments/{run.info.experiment_id}/runs/{summary['run_id']}"
    )


def forecast_store(
    store: int,
    horizon: int,
    tracking_uri: str,
    console: Console,
    plot: Path | None = None,
    model_name: str = FORECASTING.model_name,
    alias: str = "champion",
):
    """Forecast one store with the registered champion set; print a summary, optionally write a
    PNG."""
    from modelfactory.forecasting.served import ServedForecaster

    os.environ.setdefault(
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"
    )  # keep the terminal readable
    with console.status(f"Loading {model_name}@{alias}..."):
        forecaster = ServedForecaster.load(model_name, tracking_uri=tracking_uri, alias=alias)
    version, frame = forecaster.version, forecaster.forecast(store, horizon)
    open_days = frame[frame["open"]]
    console.print(
        f"Store {store}, {model_name} v{version}: {horizon} days from {frame['ds'].min():%Y-%m-%d} "
        f"to {frame['ds'].max():%Y-%m-%d}; {len(open_days)} open days, expected sales "
        f"{open_days['yhat'].sum():,.0f}",
        highlight=False,
    )
    table = Table("date", "yhat", "lower", "upper", title=f"first days of store {store}")
    for row in frame.head(7).itertuples(index=False):
        table.add_row(
            f"{row.ds:%Y-%m-%d %a}",
            f"{row.yhat:,.0f}",
            f"{row.yhat_lower:,.0f}",
            f"{row.yhat_upper:,.0f}",
        )
    console.print(table)
    if plot is not None:
        from modelfactory.forecasting.plot import plot_forecast

        path = plot_forecast(
            forecaster.history(store),
            frame,
            plot,
            title=f"store {store}: {horizon}-day forecast ({model_name} v{version})",
        )
        console.print(f"[green]✓[/] plot written to {path}")
    return version, frame


def schedule_anomaly(
    console: Console,
    source: str = "",
    staging_url: str = "",
    hour: int = 2,
    minute: int = 0,
    install: bool = False,
    tracking_uri: str = "",
) -> str:
    """Print (and with ``install``, put into the user's crontab) the daily anomaly batch's cron
    line."""
    from modelfactory.anomaly.crontab import crontab_line, install_line
    from modelfactory.anomaly.schedule import DailySchedule

    schedule = DailySchedule(hour=hour, minute=minute)
    if source and Path(source).exists():
        source = str(Path(source).resolve())
    line = crontab_line(
        schedule, get_settings().home, source, staging_url, tracking_uri=tracking_uri
    )
    console.print(line, highlight=False, soft_wrap=True)
    if install:
        install_line(line)
        console.print(
            "[green]✓[/] installed in your crontab; next runs (UTC): "
            + ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in schedule.next_runs())
        )
    else:
        console.print(
            "[dim]Add it with `crontab -e`, or run again with --install. On a cluster, "
            "modelfactory_pipelines.anomaly.create_daily_recurring_run "
            "makes the KFP recurring run.[/]"
        )
    return line


def score_batch(
    model_name: str,
    tracking_uri: str,
    console: Console,
    data: str = "",
    query: str = "",
    to: str = "",
    version: str = "",
    batch_id: str = "",
    key_column: str = "",
    horizon_days: int = 42,
    chunk_rows: int = 100_000,
) -> dict:
    """Score a batch in this process (one partition) with progress bars; print the summary.

    The same steps as the batch-scoring pipeline (:mod:`modelfactory.scoring.steps`), which
    fans the partitions out over a cluster's pods.
    """
    import tempfile

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from modelfactory.scoring import steps as scoring
    from modelfactory.scoring.results import is_parquet_destination, rejects_path
    from modelfactory.sql import shown_url

    if not to:
        raise ModelFactoryError("give --to: a SQLAlchemy database URL or a .parquet path")
    if data and Path(data).exists():
        data = str(Path(data).resolve())
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    version = scoring.resolve(model_name, version, tracking_uri)
    with console.status(f"Loading {model_name} v{version}..."):
        model = scoring.load_model(model_name, version, tracking_uri, horizon_days)
    source = scoring.open_source(model, data, query, key_column)
    started = time.perf_counter()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    try:
        with tempfile.TemporaryDirectory(prefix="modelfactory-batch-") as part:
            with Progress(*columns, console=console, transient=False) as progress:
                total = model.total(source, 0, 1)
                scoring_task = progress.add_task("scoring", total=total, rate="")

                def scored(chunk) -> None:
                    done = progress.tasks[scoring_task].completed + chunk.rows_read
                    rate = done / max(time.perf_counter() - started, 1e-9)
                    progress.update(
                        scoring_task, advance=chunk.rows_read, rate=f"{rate:,.0f} rows/s"
                    )

                summary = scoring.score(model, source, part, 0, 1, chunk_rows, scored)
                scored_seconds = time.perf_counter() - started
                publish_task = progress.add_task(
                    "writing", total=summary["results"] or None, rate=""
                )
                published = scoring.publish(
                    [part],
                    to,
                    model,
                    batch_id,
                    on_rows=lambda n: progress.update(publish_task, advance=n),
                )
    finally:
        if source is not None:
            source.close()
    seconds = time.perf_counter() - started
    where = to if is_parquet_destination(to) else shown_url(to)
    rejects_at = (
        str(rejects_path(to)) if is_parquet_destination(to) else f"{where} (table batch_rejects)"
    )
    console.print(
        f"\n[bold]{model_name}[/] v{version}, batch [bold]{published['batch_id']}[/]: "
        f"{summary['rows']:,} rows read, {summary['results']:,} results, "
        f"[{'yellow' if summary['rejects'] else 'green'}]{summary['rejects']:,} rejected[/] "
        f"in {seconds:.1f} s ({summary['rows'] / max(seconds, 1e-9):,.0f} rows/s; scoring "
        f"{summary['rows'] / max(scored_seconds, 1e-9):,.0f} rows/s)",
        highlight=False,
    )
    console.print(f"  results → {where} (table {published['table']})", highlight=False)
    if summary["rejects"]:
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(summary["reasons"].items()))
        console.print(f"  rejects → {rejects_at}: {reasons}", highlight=False)
    console.print("  a re-run with the same --batch-id replaces this batch", highlight=False)
    return {**summary, **published, "version": version, "seconds": seconds}
