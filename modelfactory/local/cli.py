"""The ``modelfactory`` command: run pipelines, serve champions, list models, run the demo.

Every command is a thin adapter over the core; state lives in MLflow (the
registry) and under ``MODELFACTORY_HOME``. Errors a user can act on are printed
as one clear message, never a traceback. Its ~410 lines are the command table, most of it
typer's options and their help; what each command does is in :mod:`.workflows`.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from modelfactory.config import get_settings
from modelfactory.local.console import (
    ModelArgument,
    console,
    embedded_mlflow,
    friendly_errors,
    tracking_uri,
)
from modelfactory.use_cases import FORECASTING

app = typer.Typer(
    help="modelfactory: train, register and serve models on one machine or a cluster.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _mount_subcommands() -> None:
    from modelfactory.local.drift_cli import drift_app, feedback
    from modelfactory.local.rollout_cli import rollout_app

    app.add_typer(rollout_app, name="rollout")
    app.add_typer(drift_app, name="drift")
    app.command()(feedback)


_mount_subcommands()


@app.command(
    help=(
        "Run a use case's pipeline with the kfp local runner "
        "(and register the model, if it makes one)."
    )
)
@friendly_errors
def run(
    use_case: Annotated[
        str, typer.Argument(help="Which pipeline: classification, forecasting or anomaly.")
    ],
    data: Annotated[
        str | None,
        typer.Option(
            "--data", help="Path or URL of your data file; synthetic demo data when omitted."
        ),
    ] = None,
    rows: Annotated[
        int | None,
        typer.Option(
            help="Rows of synthetic data when --data is omitted "
            "(default 20000, 5000 or 400 by use case)."
        ),
    ] = None,
    split: Annotated[
        str, typer.Option(help="Classification: split strategy, random or sequential.")
    ] = "random",
    holdout: Annotated[float, typer.Option(help="Classification: share of rows held out.")] = 0.2,
    imbalance: Annotated[
        str, typer.Option(help="Classification: auto, class_weight or smote.")
    ] = "auto",
    stores: Annotated[
        str, typer.Option(help="Forecasting: comma-separated store ids; all when empty.")
    ] = "",
    max_failure_share: Annotated[
        float, typer.Option(help="Forecasting: share of stores that may fail before the run fails.")
    ] = 0.05,
    shards: Annotated[
        int,
        typer.Option(
            help="Forecasting: train the stores in this many shards, a pipeline task each "
            "(one machine: 1, its process pool uses every core; see benchmarks/model_factory.py)."
        ),
    ] = 1,
    batch_date: Annotated[
        str,
        typer.Option(
            help="Anomaly: the day to score (YYYY-MM-DD); default the day most rides are from."
        ),
    ] = "",
    eps: Annotated[float, typer.Option(help="Anomaly: DBSCAN eps on standardised features.")] = 0.5,
    min_samples: Annotated[int, typer.Option(help="Anomaly: DBSCAN min_samples.")] = 10,
    staging_url: Annotated[
        str,
        typer.Option(
            help="Anomaly: SQLAlchemy URL of the staging table "
            "(default sqlite under MODELFACTORY_HOME)."
        ),
    ] = "",
    promotion: Annotated[
        str,
        typer.Option(
            help="direct: a version that passes the gate becomes champion; rollout: it "
            "stays challenger for `modelfactory rollout run` (or the operator)."
        ),
    ] = "direct",
    margin: Annotated[
        float | None, typer.Option(help="Promotion margin over the champion.")
    ] = None,
    gate_min_rows: Annotated[
        int | None,
        typer.Option(
            help="The fewest rows neither version trained on that the gate judges on "
            "(default 500 for classification, 30 store-days for forecasting)."
        ),
    ] = None,
    expect_label_shift: Annotated[
        bool,
        typer.Option(
            "--expect-label-shift",
            help="Labels that moved far from the champion's training data (a positive rate, a "
            "store's sales level) are expected: record the shift instead of stopping the run.",
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Random seed for data, split and model.")] = 42,
):
    from modelfactory.local import workflows

    arguments = workflows.use_case_arguments(
        use_case,
        rows=rows,
        seed=seed,
        split=split,
        holdout=holdout,
        imbalance=imbalance,
        stores=stores,
        max_failure_share=max_failure_share,
        shards=shards,
        batch_date=batch_date,
        eps=eps,
        min_samples=min_samples,
        staging_url=staging_url,
        expect_label_shift=expect_label_shift,
        gate_min_rows=gate_min_rows,
    )
    uri = tracking_uri()
    summary = workflows.run_pipeline(
        use_case,
        uri,
        console,
        source=data,
        promotion_margin=margin,
        promotion=promotion,
        **arguments,
    )
    if use_case == "anomaly":
        workflows.print_anomaly_batch(summary, uri, console)
    else:
        workflows.print_registration(summary, uri, console)


@app.command()
@friendly_errors
def forecast(
    store: Annotated[int, typer.Option(help="Store id.")],
    horizon: Annotated[int, typer.Option(help="Days to forecast (1-365).")] = 42,
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG of history, forecast and interval here.")
    ] = None,
    model: Annotated[str, typer.Option(help="Registered model set.")] = FORECASTING.model_name,
    alias: Annotated[str, typer.Option(help="Which alias to forecast with.")] = "champion",
):
    """Forecast one store's daily sales with the registered champion model set."""
    from modelfactory.local import workflows

    workflows.forecast_store(store, horizon, tracking_uri(), console, plot, model, alias)


@app.command(
    help=(
        "Score a batch with a registered model: every record of --data (a file, URL or database), "
        "or every store of a forecaster, written to --to by batch id."
    )
)
@friendly_errors
def score(
    model: Annotated[str, typer.Argument(help="Registered model, e.g. bank-marketing.")],
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="SQLAlchemy URL (tables batch_scores / batch_forecasts and batch_rejects) "
            "or a .parquet path (rejects beside it in <name>.rejects.parquet).",
        ),
    ],
    data: Annotated[
        str,
        typer.Option(
            "--data",
            help="CSV/Parquet path, a folder of Parquet files, an http(s) URL, or a database "
            "URL with --query. Not for a forecaster: it forecasts all its stores.",
        ),
    ] = "",
    query: Annotated[str, typer.Option(help="With a database --data: the SELECT to score.")] = "",
    version: Annotated[str, typer.Option(help="Model version; the champion when omitted.")] = "",
    batch_id: Annotated[
        str,
        typer.Option(help="The batch's id; a re-run with the same id replaces it (default: new)."),
    ] = "",
    key: Annotated[
        str, typer.Option(help="Column whose values identify a row (default: its row number).")
    ] = "",
    horizon: Annotated[int, typer.Option(help="Forecaster: days to forecast per store.")] = 42,
    chunk_rows: Annotated[int, typer.Option(help="Rows read and scored at a time.")] = 100_000,
):
    from modelfactory.local import workflows

    workflows.score_batch(
        model,
        tracking_uri(),
        console,
        data=data,
        query=query,
        to=to,
        version=version,
        batch_id=batch_id,
        key_column=key,
        horizon_days=horizon,
        chunk_rows=chunk_rows,
    )


@app.command(
    help=(
        "Print the cron line that runs a daily batch on this machine "
        "(--install writes it with crontab)."
    )
)
@friendly_errors
def schedule(
    use_case: Annotated[str, typer.Argument(help="Which batch: anomaly.")],
    data: Annotated[
        str,
        typer.Option(
            "--data", help="The daily data file (path or URL); synthetic rides when omitted."
        ),
    ] = "",
    staging_url: Annotated[str, typer.Option(help="SQLAlchemy URL of the staging table.")] = "",
    hour: Annotated[int, typer.Option(help="Hour of the daily run (UTC).")] = 2,
    minute: Annotated[int, typer.Option(help="Minute of the daily run.")] = 0,
    install: Annotated[
        bool, typer.Option("--install", help="Write the line into your crontab.")
    ] = False,
):
    from modelfactory.local import workflows

    if use_case != "anomaly":
        raise typer.BadParameter(f"only the anomaly batch runs on a schedule, not {use_case!r}")
    workflows.schedule_anomaly(
        console,
        data,
        staging_url,
        hour,
        minute,
        install,
        tracking_uri=get_settings().tracking_uri_from_env or "",
    )


@app.command()
@friendly_errors
def serve(
    model: ModelArgument,
    port: Annotated[
        int | None, typer.Option(help="HTTP port (default MODELFACTORY_HTTP_PORT).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    alias: Annotated[str, typer.Option(help="Which alias to serve.")] = "champion",
):
    """Serve a registered model's champion over HTTP until Ctrl-C."""
    from modelfactory.local.serving import ServingProcess
    from modelfactory.registry import Registry

    serving = get_settings().serving
    uri = tracking_uri()
    if Registry(uri).version_by_alias(model, alias) is None:
        raise LookupError(
            f"registered model {model!r} has no {alias!r} version at {uri}; "
            f"run `modelfactory run` first, or see `modelfactory models`"
        )
    process = ServingProcess(
        model,
        uri,
        port or serving.http_port,
        host or serving.http_host,
        workers or serving.workers,
        alias,
        metrics_port=serving.metrics_port,
        grpc_port=serving.grpc_port,
    ).resolve_use_case()
    route = _route(model, process.use_case)
    console.print(
        f"Serving {model}@{alias} at [bold]{process.url}[/] ({route}, /docs), v2 gRPC at "
        f"{process.grpc_target}, metrics at {process.metrics_url}/metrics; Ctrl-C stops"
    )
    os.execvpe(process.command()[0], process.command(), process.environment())


def _route(model: str, use_case: str | None) -> str:
    from modelfactory.use_cases import served_use_case

    spec = served_use_case(model, use_case or get_settings().serving.use_case).serving
    return spec.route if spec else "POST /predict"


@app.command()
@friendly_errors
def models():
    """List registered models, their versions, aliases and key metrics."""
    from modelfactory.local import workflows

    workflows.print_models(tracking_uri(), console)


@app.command()
@friendly_errors
def up():
    """Keep MLflow, and a service per champion, running for interactive use until Ctrl-C."""
    from modelfactory.local.serving import ServingProcess
    from modelfactory.registry import CHAMPION, Registry

    settings = get_settings()
    serving = settings.serving
    server = embedded_mlflow()
    started_here = not settings.tracking_uri_from_env and not server.is_healthy()
    uri = tracking_uri()
    registry = Registry(uri)
    services: list[ServingProcess] = []
    try:
        port = serving.http_port
        for name in registry.model_names():
            if registry.version_by_alias(name, CHAMPION) is None:
                continue
            log_file = settings.home / "logs" / f"serve-{name}.log"
            log_file.parent.mkdir(parents=True, exist_ok=True)
            # The first service on the configured ports, as `serve`; the others on free ones.
            first = not services
            with console.status(f"Starting {name} on port {port}..."):
                services.append(
                    ServingProcess(
                        name,
                        uri,
                        port,
                        serving.http_host,
                        serving.workers,
                        log_file=log_file,
                        metrics_port=serving.metrics_port if first else 0,
                        grpc_port=serving.grpc_port if first else 0,
                    ).start()
                )
            service = services[-1]
            console.print(
                f"[green]✓[/] {name}@champion at {service.url} ({_route(name, service.use_case)}), "
                f"v2 gRPC at {service.grpc_target}, metrics at {service.metrics_url}/metrics"
            )
            port += 1
        console.print(
            f"MLflow UI: [bold]{uri}[/]"
            + ("" if services else "  (no champion yet: `modelfactory run classification`)")
        )
        console.print("Running; Ctrl-C stops.")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while all(service.running for service in services):
            time.sleep(1)
        console.print(
            "[red]a model service stopped unexpectedly; see the logs under[/] "
            f"{settings.home / 'logs'}"
        )
    except KeyboardInterrupt:
        pass
    finally:
        for service in services:
            service.stop()
        if started_here:
            server.stop()
        console.print("Stopped.")


@app.command()
@friendly_errors
def down():
    """Stop the embedded MLflow server that `demo`, `run` or `up` left running."""
    console.print(
        "Stopped MLflow." if embedded_mlflow().stop() else "No embedded MLflow server was running."
    )


@app.command()
@friendly_errors
def demo(rows: Annotated[int, typer.Option(help="Rows of synthetic bank-marketing data.")] = 20000):
    """The whole lifecycle on synthetic data: pipeline, registry, serving, predictions, drift,
    retraining, a rollout promoted and one rolled back."""
    from modelfactory.local import demo as walkthrough

    walkthrough.demo(tracking_uri(), console, rows)
