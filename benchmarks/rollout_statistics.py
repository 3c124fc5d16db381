"""Rollouts judged on evidence (issue 20): how often a good challenger is rolled back by chance,
how many requests a bad one gets before it is rolled back, and how long a replay takes.

Prints figures, asserts nothing. Sections (``--section false,bad,replay``, default all):

- false: simulated rollouts of a challenger exactly as good as the champion (error rate 0.2%,
  threshold 1%; it agrees with the champion on 98.7% of records, threshold 90%), ``--rate``
  records an interval (18: the issue's 40 req/s at a 10 s interval, a 10% canary), through the
  default steps (a shadow and three canary weights, one analysis interval each). Each rollout
  runs the real decision (``modelfactory.rollout.decide``) until it promotes, rolls back or
  reaches ``--max-intervals``; against it, today's rule before issue 20 (each interval's point
  estimate against the threshold, ``minRequests`` per interval, failureLimit 0), the named
  alternative, on the same simulated counters. Printed: rollouts rolled back (target: at most
  1 - confidence, 5%), promoted, still undecided, and intervals to promotion.
- bad: a challenger with twice the champion's error rate (2% against 1%, threshold 1.5%):
  requests it answered before it was rolled back, median and 90th percentile, new against today.
- replay: a real replay (``modelfactory.monitoring.replay``) of 10,000 and 100,000 logged
  requests of a champion trained on the real UCI file, by a challenger trained with another
  seed, in an MLflow server and a sqlite prediction log of this run (target: 100,000 in under
  60 s on 2 cores). Needs ../shared/data.

Usage:
    .venv/bin/python benchmarks/rollout_statistics.py [--section false,bad,replay] [--seeds 1000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelfactory.rollout.actions import Observation, Promote, RegistryView, Rollback  # noqa: E402
from modelfactory.rollout.decide import decide  # noqa: E402
from modelfactory.rollout.spec import parse_spec  # noqa: E402
from modelfactory.rollout.state import RolloutState  # noqa: E402
from modelfactory.rollout.status import Status  # noqa: E402

CHAMPION, CHALLENGER = "1", "2"
INTERVAL = 10.0


def spec(min_requests: int, error_max: float, agreement_min: float):
    return parse_spec(
        {
            "model": "m",
            "rollout": {"progressDeadlineSeconds": 10**9},
            "analysis": {
                "interval": "10s",
                "minRequests": min_requests,
                "metrics": [
                    {"name": "error-rate", "max": error_max},
                    {"name": "agreement", "min": agreement_min},
                ],
            },
        }
    )


class Counters:
    """One serving pod's cumulative counters, as /metrics would show them."""

    def __init__(self):
        self.c: dict[str, float] = {}

    def add(self, calls: int, errors: int, disagreed: int, shadow: bool) -> dict:
        def inc(key: str, n: float) -> None:
            self.c[key] = self.c.get(key, 0.0) + n

        inc(f"calls|{'shadow' if shadow else 'canary'}|{CHALLENGER}", calls)
        inc(f"errors|{CHALLENGER}", errors)
        inc(f"compared|{CHALLENGER}", calls)
        inc(f"disagreed|{CHALLENGER}", disagreed)
        return {"pod": dict(self.c)}


def draw_interval(draw: random.Random, records: int, error: float, disagree: float):
    errors = sum(draw.random() < error for _ in range(records))
    disagreed = sum(draw.random() < disagree for _ in range(records))
    return errors, disagreed


def new_rule(seed, records, error, disagree, error_max, agreement_min, max_intervals):
    """The decision as it is: returns (outcome, intervals, requests)."""
    draw = random.Random(seed)
    rollout = spec(max(1, records // 2), error_max, agreement_min)
    status, counters, now = Status(), Counters(), 1_000_000.0
    registry = RegistryView(CHAMPION, CHALLENGER, RolloutState(CHAMPION, CHALLENGER))
    metrics = counters.add(0, 0, 0, False)
    requests = 0
    for interval in range(max_intervals + 1):
        decision = decide(rollout, status, Observation(now, registry, metrics=metrics))
        status = decision.status
        for action in decision.actions:
            if isinstance(action, Promote):
                return "promoted", interval, requests
            if isinstance(action, Rollback):
                return "rolled back", interval, requests
        if status.mode is not None:
            registry = RegistryView(
                CHAMPION,
                CHALLENGER,
                RolloutState(CHAMPION, CHALLENGER, status.mode, status.weight, status.step),
            )
        errors, disagreed = draw_interval(draw, records, error, disagree)
        metrics = counters.add(records, errors, disagreed, status.mode == "shadow")
        requests += records
        now += INTERVAL
    return "undecided", max_intervals, requests


def old_rule(seed, records, error, disagree, error_max, agreement_min, max_intervals, steps=4):
    """Today's rule before issue 20, on the same counters: each interval's point estimates
    against the thresholds (an interval below minRequests inconclusive), the first failure rolls
    back (failureLimit 0), one passing interval per analysis step."""
    draw = random.Random(seed)
    min_requests = max(1, records // 2)
    passed = requests = 0
    for interval in range(1, max_intervals + 1):
        errors, disagreed = draw_interval(draw, records, error, disagree)
        requests += records
        if records < min_requests:
            continue
        if errors / records > error_max or 1 - disagreed / records < agreement_min:
            return "rolled back", interval, requests
        passed += 1
        if passed == steps:
            return "promoted", interval, requests
    return "undecided", max_intervals, requests


def summarize(name: str, results: list[tuple[str, int, int]]) -> None:
    outcomes = [r[0] for r in results]
    promoted = [r[1] for r in results if r[0] == "promoted"]
    share = {k: outcomes.count(k) / len(outcomes) for k in ("rolled back", "promoted", "undecided")}
    to_promote = (
        f"intervals to promotion median {statistics.median(promoted):g}, "
        f"p90 {sorted(promoted)[int(0.9 * len(promoted))]:g}"
        if promoted
        else "none promoted"
    )
    print(
        f"  {name:<26} rolled back {share['rolled back']:6.1%}   promoted {share['promoted']:6.1%}"
        f"   undecided {share['undecided']:6.1%}   {to_promote}",
        flush=True,
    )


def section_false(seeds: int, records: int, max_intervals: int) -> None:
    print(
        f"\nfalse rollbacks: a challenger as good as the champion (errors 0.2% vs <= 1%, "
        f"agreement 98.7% vs >= 90%), {records} records an interval, {seeds} rollouts",
        flush=True,
    )
    started = time.perf_counter()
    new = [new_rule(s, records, 0.002, 0.013, 0.01, 0.9, max_intervals) for s in range(seeds)]
    old = [old_rule(s, records, 0.002, 0.013, 0.01, 0.9, max_intervals) for s in range(seeds)]
    summarize("anytime-valid bounds (new)", new)
    summarize("point estimates (today)", old)
    print(f"  ({time.perf_counter() - started:.1f} s)", flush=True)


def section_bad(seeds: int, records: int, max_intervals: int) -> None:
    print(
        f"\na bad challenger: twice the champion's error rate (2% vs 1%, threshold 1.5%), "
        f"{records} records an interval, {seeds} rollouts",
        flush=True,
    )
    for name, rule in (
        ("anytime-valid bounds (new)", new_rule),
        ("point estimates (today)", old_rule),
    ):
        results = [rule(s, records, 0.02, 0.013, 0.015, 0.9, max_intervals) for s in range(seeds)]
        caught = sorted(r[2] for r in results if r[0] == "rolled back")
        promoted = sum(r[0] == "promoted" for r in results) / len(results)
        shown = (
            f"requests to rollback median {statistics.median(caught):,.0f}, "
            f"p90 {caught[int(0.9 * len(caught))]:,.0f}"
            if caught
            else "never rolled back"
        )
        print(
            f"  {name:<26} rolled back {len(caught) / len(results):6.1%}   wrongly promoted "
            f"{promoted:6.1%}   {shown}",
            flush=True,
        )


def section_replay(sizes: list[int]) -> None:
    import datetime as dt

    from modelfactory.classification import CLASSIFICATION
    from modelfactory.config import get_settings
    from modelfactory.data.bank_marketing import (
        FEATURES,
        load_bank_marketing,
        validate_bank_marketing,
    )
    from modelfactory.local.mlflow_server import EmbeddedMlflow
    from modelfactory.local.ports import free_port
    from modelfactory.monitoring.replay import replay
    from modelfactory.predictions.store import PredictionRow, insert_rows, metadata
    from modelfactory.registry import CHAMPION, Registry
    from modelfactory.sql import engine
    from tests.support.data import BANK_MARKETING, shared_file
    from tests.support.serving import train_version

    print("\nreplay: the challenger replays the champion's newest logged requests", flush=True)
    real = validate_bank_marketing(load_bank_marketing(shared_file(BANK_MARKETING)), "real")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = EmbeddedMlflow(work / "mlflow", port=free_port())
        server.start()
        try:
            uri, model = server.url, "bank-marketing-replay"
            champion = train_version(uri, work, seed=1, model=model, frame=real.iloc[:20_000])
            challenger = train_version(uri, work, seed=2, model=model, frame=real.iloc[:20_000])
            Registry(uri).set_alias(model, CHAMPION, champion)
            settings = get_settings()
            served = CLASSIFICATION.serving.load(model, champion, uri, settings)
            records = real[list(FEATURES)].to_dict("records")
            for size in sizes:
                url = f"sqlite:///{work / f'log-{size}.db'}"
                store = engine(url)
                metadata.create_all(store)
                now = dt.datetime.now(dt.UTC)
                rows, written = [], 0
                while written < size:
                    batch = [
                        records[(written + i) % len(records)]
                        for i in range(min(2000, size - written))
                    ]
                    answers = served.predict(batch)
                    rows = [
                        PredictionRow(now, f"r{written + i}", model, champion, "served", r, a)
                        for i, (r, a) in enumerate(zip(batch, answers, strict=True))
                    ]
                    with store.begin() as connection:
                        insert_rows(connection, rows)
                    written += len(batch)
                store.dispose()
                started = time.perf_counter()
                result = replay(
                    CLASSIFICATION,
                    model,
                    champion,
                    challenger,
                    size,
                    now - dt.timedelta(hours=1),
                    store_url=url,
                    tracking_uri=uri,
                    settings=settings,
                )
                took = time.perf_counter() - started
                agreement = result.agreed / max(result.compared, 1)
                print(
                    f"  {size:>7,} logged requests: {took:6.1f} s ({size / took:,.0f} records/s); "
                    f"{result.rows:,} replayed, agreement {agreement:.3f}, "
                    f"one-record p99 {result.latency_p99_ms:.2f} ms (champion "
                    f"{result.champion_latency_p99_ms:.2f} ms)",
                    flush=True,
                )
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--section", default="false,bad,replay")
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=18, help="records an interval")
    parser.add_argument("--max-intervals", type=int, default=400)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    sections = args.section.split(",")
    if "false" in sections:
        section_false(args.seeds, args.rate, args.max_intervals)
    if "bad" in sections:
        section_bad(args.seeds, 200, args.max_intervals)
    if "replay" in sections:
        section_replay(args.sizes)


if __name__ == "__main__":
    main()
