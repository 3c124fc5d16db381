"""Benchmark: what MLflow's basic-auth app costs a registry call, and what its password cache
buys back (docs/adr/0016-registry-access-through-mlflow-basic-auth.md).

Three real ``mlflow server`` processes in turn (sqlite, 2 workers, served artifacts), each with
one registered model: open (no authentication, the embedded default); basic-auth with
``auth_cache_ttl_seconds = 0`` (every request verifies the password: a scrypt hash); basic-auth
with the chart's 60 s cache. Against each, one client makes the call serving makes every
``MODELFACTORY_ROLLOUT_POLL_SECONDS`` per worker (``get_registered_model``: aliases and rollout
tags), ``--calls`` times in a row, then the same with 4 threads; and a registration's worth of
calls (create a run, log 20 metrics, set 5 tags, create a version, set an alias). Reported:
calls/s, the median and p99 of one call, and each auth server's ratio to the open one.

Usage: python benchmarks/registry_auth.py [--calls 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from modelfactory.local.mlflow_server import EmbeddedMlflow
from modelfactory.local.ports import free_port
from modelfactory.registry_access.accounts import ACCOUNTS
from modelfactory.registry_access.reconcile import auth_database_url, reconcile
from modelfactory.registry_access.server import write_auth_config

PASSWORDS = {a.name: f"{a.name}-benchmark-password" for a in ACCOUNTS}
MODEL = "benchmark-model"


def _timed(call, calls: int, threads: int) -> list[float]:
    def one(_):
        started = time.perf_counter()
        call()
        return time.perf_counter() - started

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(calls)))


def _registration(client) -> None:
    from mlflow.entities import Metric, RunTag

    experiment = client.get_experiment_by_name("benchmark") or None
    experiment_id = (
        experiment.experiment_id if experiment else client.create_experiment("benchmark")
    )
    run = client.create_run(experiment_id)
    now = int(time.time() * 1000)
    client.log_batch(run.info.run_id, metrics=[Metric(f"m{i}", i, now, 0) for i in range(20)])
    for i in range(5):
        client.log_batch(run.info.run_id, tags=[RunTag(f"t{i}", "x")])
    source = f"{run.info.artifact_uri}/model"
    version = client.create_model_version(MODEL, source=source, run_id=run.info.run_id)
    client.set_registered_model_alias(MODEL, "challenger", version.version)


def measure(kind: str, calls: int) -> dict[str, float]:
    from mlflow import MlflowClient

    home = Path(tempfile.mkdtemp(prefix=f"registry-auth-{kind}-"))
    (home / "mlflow").mkdir()
    config = None
    if kind != "open":
        auth_url = auth_database_url(f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
        reconcile(auth_url, PASSWORDS)
        cache = 0 if kind == "auth, no cache" else 60
        config = write_auth_config(home / "auth.ini", auth_url, cache_seconds=cache)
        os.environ["MLFLOW_TRACKING_USERNAME"] = "modelfactory-operator"
        os.environ["MLFLOW_TRACKING_PASSWORD"] = PASSWORDS["operator"]
    else:
        os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
        os.environ.pop("MLFLOW_TRACKING_PASSWORD", None)
    server = EmbeddedMlflow(home, port=free_port(), auth_config=config)
    server.start(timeout=300)
    try:
        client = MlflowClient(server.url, registry_uri=server.url)
        client.create_registered_model(MODEL)
        poll = lambda: client.get_registered_model(MODEL)  # noqa: E731
        _timed(poll, 10, 1)  # warm-up: workers, connections, the cache
        found = {}
        for threads in (1, 4):
            started = time.perf_counter()
            times = _timed(poll, calls, threads)
            found[f"poll x{threads} calls/s"] = calls / (time.perf_counter() - started)
            found[f"poll x{threads} p50 ms"] = statistics.median(times) * 1000
            found[f"poll x{threads} p99 ms"] = sorted(times)[int(0.99 * (len(times) - 1))] * 1000
        started = time.perf_counter()
        for _ in range(5):
            _registration(client)
        found["registration s"] = (time.perf_counter() - started) / 5
        return found
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    arguments = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    results = {}
    for kind in ("open", "auth, no cache", "auth, 60 s cache"):
        results[kind] = measure(kind, arguments.calls)
        print(kind, {k: round(v, 1) for k, v in results[kind].items()}, flush=True)
    open_ = results["open"]
    print(f"\n{'':18}" + "".join(f"{k:>22}" for k in open_))
    for kind, found in results.items():
        row = "".join(
            f"{found[k]:>14.1f} ({found[k] / open_[k]:4.2f}x)"
            if kind != "open"
            else f"{found[k]:>22.1f}"
            for k in open_
        )
        print(f"{kind:18}{row}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
