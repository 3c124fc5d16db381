"""What the CLI commands do, beyond parsing options: run a pipeline, show models, the demo.

Kept apart from :mod:`modelfactory.cli` so the same flows are callable (and
tested) without a terminal; output goes to the rich ``Console`` passed in.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from modelfactory.config import get_settings
from modelfactory.local_runs import StepEvent, run_locally
from modelfactory.registry import Registry
from modelfactory.use_cases import use_case as get_use_case


def _pipeline(use_case: str):
    if use_case == "classification":
        from pipelines.classification import classification_pipeline

        return classification_pipeline
    get_use_case(use_case)  # raises a clear error naming the known use cases
    raise ValueError(f"use case {use_case!r} has no local pipeline yet")


def run_pipeline(use_case: str, tracking_uri: str, console: Console, source: str | None = None,
                 promotion_margin: float | None = None, **arguments) -> dict:
    """Run ``use_case``'s pipeline locally, one progress line per step; return the registration summary."""
    settings = get_settings()
    case = get_use_case(use_case)
    if source and Path(source).exists():
        source = str(Path(source).resolve())
    margin = settings.promotion_margin if promotion_margin is None else promotion_margin
    args = {"source": source or "", "mlflow_tracking_uri": tracking_uri, "model_name": case.model_name,
            "promotion_margin": margin, **arguments}
    status = console.status("Starting the pipeline...")
    status.start()

    def show(event: StepEvent) -> None:
        if event.status == "running":
            status.update(f"Running [bold]{event.task}[/]...")
        elif event.status == "SUCCESS":
            console.print(f"[green]✓[/] {event.task} [dim]({event.seconds:.1f}s)[/]")
        else:
            console.print(f"[red]✗[/] {event.task} [dim]({event.seconds:.1f}s)[/]")

    try:
        return run_locally(_pipeline(use_case), args, settings.home / "pipeline_runs", show)
    finally:
        status.stop()


def print_registration(summary: dict, tracking_uri: str, console: Console) -> None:
    registry = Registry(tracking_uri)
    metrics = registry.run_metrics(summary["run_id"])
    verdict = "[green]promoted to champion[/]" if summary["promoted"] else "[yellow]kept as challenger[/]"
    console.print(f"\n[bold]{summary['model_name']}[/] version [bold]{summary['version']}[/] "
                  f"(alias {summary['alias']}): {verdict}")
    console.print(f"  reason: {summary['reason']}", highlight=False)
    table = Table("holdout metric", "model", "baseline", title=f"run {summary['run_id']}")
    for name in ("roc_auc", "pr_auc", "f1", "precision", "recall"):
        if f"holdout_{name}" in metrics:
            table.add_row(name, f"{metrics[f'holdout_{name}']:.4f}",
                          f"{metrics.get(f'baseline_holdout_{name}', float('nan')):.4f}")
    console.print(table)
    experiment = registry.client.get_run(summary["run_id"]).info.experiment_id
    console.print(f"  MLflow run: {tracking_uri}/#/experiments/{experiment}/runs/{summary['run_id']}")


def print_models(tracking_uri: str, console: Console) -> None:
    registry = Registry(tracking_uri)
    names = registry.model_names()
    if not names:
        console.print(f"No registered models at {tracking_uri} yet: run `modelfactory run classification`.")
        return
    for name in names:
        table = Table("version", "aliases", "registered", "gate metric", "model", "baseline", "champion then",
                      "decision", title=name, title_justify="left")
        for v in registry.versions(name):
            metric = v.tags.get("promotion.metric", "roc_auc")
            table.add_row(
                v.version, ", ".join(v.aliases) or "-",
                time.strftime("%Y-%m-%d %H:%M", time.localtime(v.created / 1000)), metric,
                _fmt(v.metrics.get(f"holdout_{metric}")), _fmt(v.metrics.get(f"baseline_holdout_{metric}")),
                v.tags.get("promotion.champion", "-"), v.tags.get("promotion.decision", "-"),
            )
        console.print(table)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def demo(tracking_uri: str, console: Console, rows: int = 20000) -> None:
    """Generate data, run the classification pipeline, serve the champion, send real predictions."""
    from modelfactory.data.bank_marketing import FEATURES, generate_bank_marketing, write_bank_marketing
    from modelfactory.mlflow_server import free_port
    from modelfactory.serving_process import ServingProcess

    settings = get_settings()
    registry = Registry(tracking_uri)
    # Each demo run is a new day's data: a different seed per registered version.
    runs_so_far = sum(1 for _ in registry.versions("bank-marketing")) if "bank-marketing" in \
        registry.model_names() else 0
    data_path = write_bank_marketing(generate_bank_marketing(rows, seed=runs_so_far),
                                     settings.home / "demo" / f"bank-additional-{runs_so_far}.csv")
    console.print(f"[green]✓[/] {rows} rows of synthetic bank-marketing data at {data_path}")
    summary = run_pipeline("classification", tracking_uri, console, source=str(data_path),
                           n_synthetic_rows=rows, seed=42)
    print_registration(summary, tracking_uri, console)

    port = settings.http_port if _port_free(settings.http_port) else free_port()
    log_file = settings.home / "logs" / "demo-serving.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with console.status("Starting the BentoML service for the champion..."):
        service = ServingProcess("bank-marketing", tracking_uri, port, workers=1, log_file=log_file).start()
    try:
        console.print(f"[green]✓[/] serving bank-marketing@champion at [bold]{service.url}[/]")
        customers = generate_bank_marketing(5, seed=random.randrange(1 << 30))[list(FEATURES)]
        records = customers.to_dict(orient="records")
        answer = httpx.post(f"{service.url}/predict", json={"records": records}, timeout=30)
        answer.raise_for_status()
        body = answer.json()
        table = Table("age", "job", "contact", "poutcome", "euribor3m", "predicted", "probability",
                      title=f"POST {service.url}/predict → {body['model']} v{body['model_version']}")
        for record, prediction in zip(records, body["predictions"], strict=True):
            table.add_row(str(record["age"]), record["job"], record["contact"], record["poutcome"],
                          f"{record['euribor3m']:.2f}", prediction["class"], f"{prediction['probability']:.3f}")
        console.print(table)
        bad = httpx.post(f"{service.url}/predict", json={"records": [{**records[0], "age": "forty"}]}, timeout=30)
        console.print(f"A bad request is refused with {bad.status_code}: {bad.json()['problems'][0]}",
                      highlight=False)
    finally:
        service.stop()
    console.print(f"\n[bold]MLflow UI[/]: {tracking_uri}  (keeps running; `modelfactory down` stops it)")
    console.print("[bold]Serve the champion yourself[/]: modelfactory serve bank-marketing "
                  f"→ http://{settings.http_host}:{settings.http_port}/predict")


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0
