"""``make demo`` (``modelfactory demo``): the platform's whole loop on this machine, with real
parts (an MLflow server, kfp local runs of the compiled pipeline, `bentoml serve`, HTTP).

1. synthetic bank-marketing data, the classification pipeline, version 1 champion;
2. served: real predictions, a bad request refused with a 422;
3. traffic from a later period and its ground truth (POST /feedback);
4. a drift check of it, and the retraining run it starts (the gate judges; the new version
   waits as challenger);
5. that challenger rolled out step by step by the rollout controller: first a replay of the
   champion's logged requests, then live traffic, each decision printed with the measurements
   and bounds behind it;
6. a slow challenger (80 ms per call) stopped at its replay, before any request reaches it.
"""

from __future__ import annotations

import os
import random
import time

import httpx
from rich.console import Console
from rich.table import Table

from modelfactory.config import get_settings
from modelfactory.local.faults import register_faulty_version, sleep_80ms
from modelfactory.local.serving import ServingProcess
from modelfactory.local.workflows import print_registration, run_pipeline
from modelfactory.registry import CHALLENGER, CHAMPION, Registry
from modelfactory.use_cases import CLASSIFICATION

# The service re-reads aliases and the rollout every second, so each step shows at once.
SERVING_ENV = {"MODELFACTORY_ROLLOUT_POLL_SECONDS": "1"}
# The demo's rollout: minutes of a real one in seconds (a ModelDeployment's default analysis
# interval is 1m with 200 requests).
DEMO_ROLLOUT = {
    "rollout": {
        "steps": [
            # The champion's logged requests of the last hour, replayed before any live traffic.
            {"replay": {"lastRequests": 2000, "since": "1h", "minRows": 200}},
            {"shadow": {"weight": 100}},
            {"analysis": {}},
            {"setWeight": 50},
            {"analysis": {}},
            {"setWeight": 100},
            {"analysis": {}},
        ],
        "budgetMs": 50,
        "progressDeadlineSeconds": 300,
    },
    "analysis": {
        "interval": "4s",
        "minRequests": 30,
        "inconclusiveLimit": 3,
        "metrics": [
            {"name": "error-rate", "max": 0.01},
            {"name": "fallback-rate", "max": 0.02},
            {"name": "latency-p99-ms", "max": 50},
            {"name": "agreement", "min": 0.8},
        ],
    },
}


def demo(tracking_uri: str, console: Console, rows: int = 20000) -> None:
    """Generate data, run the classification pipeline, serve the champion, send real predictions;
    then traffic from a later period, its ground truth, a drift check and the retraining it
    starts; the retrained version rolled out step by step, and a slow one rolled back."""
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
        service = ServingProcess(
            model, tracking_uri, port, workers=1, log_file=log_file, extra_env=SERVING_ENV
        ).start()
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
        retrained = check_and_retrain(tracking_uri, console, later)
        if retrained is not None:
            roll_out(retrained, tracking_uri, service, console)
        roll_back_a_slow_version(tracking_uri, service, console)
    finally:
        service.stop()
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


def check_and_retrain(tracking_uri: str, console: Console, labelled: int) -> str | None:
    """One monitor check of the last hour: the drift table, the report, and the retraining;
    returns the retrained version when the gate found it eligible for a rollout."""
    from modelfactory.local.drift_view import print_check
    from modelfactory.local.retraining import cli_retrainer
    from modelfactory.monitoring.check import run_check
    from modelfactory.monitoring.config import MonitorConfig
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
        CLASSIFICATION,
        retrainer=cli_retrainer(settings, tracking_uri, console),
        tracking_uri=tracking_uri,
        on_event=show,
    )
    print_check(result, console)
    started = result.retrain
    if started is None or not started.version:
        return None
    eligible = started.alias == CHALLENGER
    verdict = "challenger, eligible for a rollout" if eligible else "rejected by the gate"
    console.print(
        f"[bold]new version {started.version}[/]: {verdict} ({started.detail})", highlight=False
    )
    return started.version if eligible else None


def roll_out(version: str, tracking_uri: str, service: ServingProcess, console: Console) -> str:
    """The rollout controller takes ``version`` (the challenger) out under steady traffic; returns
    the phase it ended in."""
    console.rule(f"[bold]Rollout of version {version}[/]")
    return _rollout(tracking_uri, service, console)


def roll_back_a_slow_version(tracking_uri: str, service: ServingProcess, console: Console) -> str:
    """A challenger that takes 80 ms per call (the champion wrapped in a sleep): its replay of the
    champion's logged requests times it at 80 ms a record, over the 50 ms budget, and the rollout
    stops there, before a single request reaches it."""
    model = CLASSIFICATION.model_name
    console.rule("[bold]A bad version: 80 ms per call[/]")
    champion = Registry(tracking_uri).version_by_alias(model, CHAMPION)
    assert champion is not None
    slow = register_faulty_version(
        tracking_uri, model, str(champion.version), sleep_80ms, {"modelfactory.demo": "slow"}
    )
    console.print(f"version {slow}: the champion behind an 80 ms sleep, registered as challenger")
    return _rollout(tracking_uri, service, console)


def _rollout(tracking_uri: str, service: ServingProcess, console: Console) -> str:
    from modelfactory.local.rollout_view import tick_printer
    from modelfactory.local.rollouts import LocalRollouts, run_local
    from modelfactory.local.traffic import Load
    from modelfactory.rollout.spec import parse_spec

    model = CLASSIFICATION.model_name
    raw = {"model": model, **DEMO_ROLLOUT}
    store = LocalRollouts(get_settings().home / "rollouts")
    time.sleep(1.5)  # the service loads the new challenger at its next poll
    with Load(service.url, rate=60) as traffic:
        final = run_local(
            parse_spec(raw),
            raw,
            store,
            tracking_uri,
            [service.metrics_url],
            tick_seconds=1.0,
            timeout=240,
            on_tick=tick_printer(console),
        )
    console.print(
        f"[bold]{final.phase}[/]: {final.message} — clients sent "
        f"{traffic.answers} requests meanwhile, {traffic.failures} failed",
        highlight=False,
    )
    return final.phase
