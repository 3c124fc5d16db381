"""What the CLI commands do, beyond parsing options: run a pipeline, show models, the demo.

Kept apart from :mod:`modelfactory.local.cli` so the same flows are callable (and
tested) without a terminal; output goes to the rich ``Console`` passed in. Its ~460 lines are
one flow per command side by side (20 to 60 lines each); a flow that grows gets its own module,
as the rollout and drift commands have.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from modelfactory.config import get_settings
from modelfactory.errors import ModelFactoryError
from modelfactory.local.pipeline_runs import StepEvent, compiled_pipeline, run_locally
from modelfactory.registry import Registry
from modelfactory.use_cases import FORECASTING
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
    if summary.get("evidence"):
        console.print(evidence_table(summary["metric"], summary["evidence"]))
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


def evidence_table(metric: str, evidence: dict) -> Table:
    """The gate's two comparisons: rows compared, of how many, both versions' scores and the
    standard error of their difference."""
    who = f"v{evidence['champion_version']}"
    table = Table(
        "compared on",
        "rows",
        "of",
        f"new {metric}",
        f"champion {who}",
        "std. error",
        "note",
        title=f"gate evidence against champion {who} (rows neither version trained on)",
        title_justify="left",
    )
    for label, key in (
        ("this run's holdout", "fresh"),
        (f"champion {who}'s holdout", "champion_holdout"),
    ):
        part = evidence[key]
        table.add_row(
            label,
            f"{part['rows']:,}",
            f"{part['of_rows']:,}",
            _fmt(part["candidate"]),
            _fmt(part["champion"]),
            _fmt(part.get("noise") or None),
            part["note"] or "",
        )
    return table


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
            "fresh rows: new vs champion",
            "champion's holdout: new vs champion",
            "decision",
            title=name,
            title_justify="left",
        )
        reasons = []
        for v in registry.versions(name):
            metric = v.tags.get("promotion.metric", "roc_auc")
            table.add_row(
                v.version,
                ", ".join(v.aliases) or "-",
                time.strftime("%Y-%m-%d %H:%M", time.localtime(v.created / 1000)),
                metric,
                _fmt(v.metrics.get(f"holdout_{metric}")),
                _fmt(v.metrics.get(f"baseline_holdout_{metric}")),
                _compared(v.tags, "promotion.fresh"),
                _compared(v.tags, "promotion.champion_holdout"),
                v.tags.get("promotion.decision", "-"),
            )
            if "promotion.reason" in v.tags:
                reasons.append(f"  v{v.version}: {v.tags['promotion.reason']}")
        console.print(table)
        if reasons:
            console.print("gate reasons:\n" + "\n".join(reasons), highlight=False)


def _fmt(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.4f}"


def _compared(tags: dict[str, str], prefix: str) -> str:
    """'1,485 rows: 0.7789 vs v1 0.7796' from a version's ``promotion.<comparison>_*`` tags."""
    if f"{prefix}_rows" not in tags:
        return "-"
    rows = f"{int(tags[f'{prefix}_rows']):,} rows"
    if f"{prefix}_candidate" not in tags or f"{prefix}_champion" not in tags:
        return f"{rows}: not scored"
    champion = tags.get("promotion.champion_version", "?")
    new, old = float(tags[f"{prefix}_candidate"]), float(tags[f"{prefix}_champion"])
    return f"{rows}: {new:.4f} vs v{champion} {old:.4f}"


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
    expect_label_shift: bool = False,
    gate_min_rows: int | None = None,
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
    if gate_min_rows is not None and gate_min_rows < 1:
        raise ModelFactoryError(f"--gate-min-rows must be at least 1, got {gate_min_rows}")
    gate = {} if gate_min_rows is None else {"promotion_min_rows": gate_min_rows}
    return {
        **gate,
        "expect_label_shift": expect_label_shift,
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

    The same steps as the batch-scoring pipeline (:mod:`modelfactory.steps.scoring`), which
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

    from modelfactory.scoring.results import is_parquet_destination, rejects_path
    from modelfactory.sql import shown_url
    from modelfactory.steps import scoring

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
