"""A soak: steady mixed traffic on one served model for half an hour, nothing failing, nothing
growing, every answer logged.

    python benchmarks/soak.py [--minutes 30] [--warmup 5] [--rate 150]

Trains the bank-marketing classifier on the real UCI file, registers it in a throwaway MLflow,
serves it with `bentoml serve` (2 workers, v2 gRPC on) logging to a real PostgreSQL, and sends,
open loop at --rate requests a second in all: one-record JSON POST /predict (40%), v2 REST infer
(30%), v2 gRPC ModelInfer from tritonclient (25%), and POST /feedback (5%) with the ground truth
of five requests answered at least 15 s before. Every prediction carries its own request id.

Prints per kind the requests, errors and p50/p99; the resident memory of the serving process,
its workers and their prediction-log writers, after the warm-up and at the end (target: under
5% growth); and, once the spool is drained, whether every answered prediction is in the store
exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prediction_log import (  # noqa: E402
    BANK_FILE,
    MODEL,
    OpenLoop,
    Sent,
    logged,
    percentile,
    wait_drained,
)
from serving_http import train_champion  # noqa: E402

from tests.support.postgres_server import PostgresServer  # noqa: E402
from tests.support.serving import triton_inputs  # noqa: E402

MIX = ["json"] * 8 + ["rest"] * 6 + ["grpc"] * 5 + ["feedback"]  # per 20 requests
FEEDBACK_AFTER = 15.0  # seconds: a prediction is long in the store by then


class GrpcLoop:
    """v2 gRPC ModelInfer at ``rate`` a second for ``seconds`` (call n sent at start + n / rate)
    from tritonclient's asyncio client."""

    def __init__(self, target: str, records: list[dict], rate: float, seconds: float, started):
        self.target, self.records = target, records
        self.rate, self.seconds, self.started = rate, seconds, started
        self.sent: list[Sent] = []
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> GrpcLoop:
        self._thread.start()
        return self

    def join(self) -> list[Sent]:
        self._thread.join()
        return self.sent

    async def _run(self) -> None:
        import tritonclient.grpc as grpcclient
        import tritonclient.grpc.aio as aioclient

        client = aioclient.InferenceServerClient(self.target)
        inputs = [triton_inputs(grpcclient, [record]) for record in self.records[:200]]

        async def call(n: int, due: float) -> None:
            request_id = f"grpc-{n}"
            try:
                await client.infer(MODEL, inputs[n % len(inputs)], request_id=request_id)
                status = 200
            except Exception:
                status = 0
            latency = (time.perf_counter() - due) * 1000
            self.sent.append(Sent(request_id, due - self.started, latency, status))

        tasks = set()
        try:
            for n in itertools.count():  # each call sent when due, whatever the ones before did
                due = self.started + n / self.rate
                if due >= self.started + self.seconds:
                    break
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                task = asyncio.create_task(call(n, due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(tasks)
        finally:
            await client.close()


def v2_body(record: dict, request_id: str) -> bytes:
    from modelfactory.data.bank_marketing import CATEGORIES

    inputs = []
    for column, value in record.items():
        kind = "BYTES" if column in CATEGORIES else ("INT64" if isinstance(value, int) else "FP64")
        inputs.append({"name": column, "shape": [1], "datatype": kind, "data": [value]})
    return json.dumps({"id": request_id, "inputs": inputs}).encode()


class Mix:
    """The HTTP side of the mix: request n of the HTTP loop is a JSON, v2 REST or feedback one."""

    def __init__(self, records: list[dict], actuals: list[str]):
        kinds = [kind for kind in MIX if kind != "grpc"]
        self.kinds = kinds
        self.json = [json.dumps({"records": [r]}).encode() for r in records]
        self.records, self.actuals = records, actuals
        self.loops: list = []  # the loops whose answered predictions feedback may name

    def __call__(self, n: int) -> tuple[str, bytes, str]:
        kind = self.kinds[n % len(self.kinds)]
        if kind == "json":
            return "/predict", self.json[n % len(self.json)], f"json-{n}"
        if kind == "rest":
            request_id = f"rest-{n}"
            return (
                f"/v2/models/{MODEL}/infer",
                v2_body(self.records[n % len(self.records)], request_id),
                request_id,
            )
        labels = self.feedback(n)
        if not labels:  # nothing answered long enough ago yet: a prediction instead
            return "/predict", self.json[n % len(self.json)], f"json-{n}"
        return "/feedback", json.dumps(labels).encode(), f"feedback-{n}"

    def feedback(self, n: int) -> list[dict]:
        now = time.perf_counter()
        answered = [
            s.request_id
            for loop in self.loops
            for s in loop.sent[-5000:]
            if s.status == 200
            and not s.request_id.startswith("feedback")
            and loop.started + s.due < now - FEEDBACK_AFTER
        ]
        if not answered:
            return []
        chosen = random.Random(n).sample(answered, min(5, len(answered)))
        return [{"request_id": i, "actual": self.actuals[n % len(self.actuals)]} for i in chosen]


def rss(serving) -> dict[str, float]:
    """Resident MiB of the serving process tree: the arbiter, each worker, each writer."""
    import psutil

    sizes: dict[str, float] = {}
    root = psutil.Process(serving.process.pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            command = " ".join(process.cmdline())
            role = (
                "writer"
                if "serve_store" in command
                else "worker"
                if "worker.service" in command
                else "arbiter"
            )
            sizes[f"{role} {process.pid}"] = process.memory_info().rss / 2**20
        except psutil.Error:
            pass
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0, help="minutes before RSS counts")
    parser.add_argument("--rate", type=float, default=150.0, help="requests per second, all kinds")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from modelfactory.classification.training import features
    from modelfactory.data.bank_marketing import load_bank_marketing, validate_bank_marketing
    from modelfactory.local.mlflow_server import EmbeddedMlflow
    from modelfactory.local.ports import free_port
    from modelfactory.local.serving import ServingProcess

    seconds, warmup = args.minutes * 60, args.warmup * 60
    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    mlflow = EmbeddedMlflow(work / "home", port=free_port())
    tracking_uri = mlflow.start()
    store = PostgresServer(fsync=True).start()
    samples: list[tuple[float, dict[str, float]]] = []
    try:
        print(f"training the champion on {BANK_FILE.name} ...", flush=True)
        train_champion(tracking_uri, work)
        frame = validate_bank_marketing(load_bank_marketing(BANK_FILE), "bank")
        chosen = frame.sample(2000, random_state=11)
        records = features(chosen).to_dict(orient="records")
        grpc_port = free_port()
        serving = ServingProcess(
            MODEL,
            tracking_uri,
            port=free_port(),
            workers=args.workers,
            log_file=work / "serve.log",
            extra_env={
                "MODELFACTORY_HOME": str(work / "serving"),
                "MODELFACTORY_PREDICTION_STORE_URL": store.url,
                "MODELFACTORY_GRPC_PORT": str(grpc_port),
            },
        )
        with serving:
            grpc_share = MIX.count("grpc") / len(MIX)
            mix = Mix(records, list(chosen["y"]))
            http = OpenLoop(serving.url, args.rate * (1 - grpc_share), seconds, mix).start()
            grpc = GrpcLoop(
                f"127.0.0.1:{grpc_port}", records, args.rate * grpc_share, seconds, http.started
            ).start()
            mix.loops = [http, grpc]
            print(
                f"{args.minutes:.0f} minutes at {args.rate:.0f} req/s (JSON, v2 REST, v2 gRPC, "
                "feedback)",
                flush=True,
            )
            while time.perf_counter() < http.started + seconds:
                samples.append((time.perf_counter() - http.started, rss(serving)))
                time.sleep(15)
            sent = http.join() + grpc.join()
            wait_drained(serving)
            stored = Counter()
            for prefix in ("json-", "rest-", "grpc-"):
                stored.update(logged(store.url, prefix))
    finally:
        store.remove()
        mlflow.stop()

    print(
        f"\nbank-marketing, {args.minutes:.0f} min, {args.rate:.0f} req/s mixed, {args.workers} "
        f"workers, PostgreSQL store; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
        "cores"
    )
    errors = 0
    for kind in ("json", "rest", "grpc", "feedback"):
        mine = [s for s in sent if s.request_id.startswith(f"{kind}-")]
        failed = [s for s in mine if s.status != 200]
        errors += len(failed)
        latencies = [s.latency_ms for s in mine if s.status == 200]
        print(
            f"  {kind:<9} {len(mine):>8,} requests  errors {len(failed):>4} "
            f"{dict(Counter(s.status for s in failed)) or ''}  p50 "
            f"{percentile(latencies, 50):6.2f} ms  p99 {percentile(latencies, 99):7.2f} ms"
        )
    print(f"errors: {errors}")
    steady = [(t, s) for t, s in samples if t >= warmup]
    if len(steady) >= 4:
        first, last = steady[: max(2, len(steady) // 10)], steady[-max(2, len(steady) // 10) :]
        print("resident memory (MiB), median of the first and last tenth after the warm-up:")
        total = [0.0, 0.0]
        lasting = set.intersection(*(set(s) for _, s in first + last))  # none restarted
        for name in sorted(lasting):
            start = statistics.median(s[name] for _, s in first)
            end = statistics.median(s[name] for _, s in last)
            total[0] += start
            total[1] += end
            print(f"  {name:<16} {start:8.1f} -> {end:8.1f}  ({(end / start - 1) * 100:+.1f}%)")
        growth = (total[1] / total[0] - 1) * 100
        print(
            f"  all              {total[0]:8.1f} -> {total[1]:8.1f}  ({growth:+.1f}%, target < 5%)"
        )
    predictions = {s.request_id for s in sent if s.status == 200 and "feedback" not in s.request_id}
    twice = sum(1 for count in stored.values() if count > 1)
    print(
        f"predictions answered {len(predictions):,}, logged {len(predictions & set(stored)):,}, "
        f"missing {len(predictions - set(stored)):,}, stored twice {twice}"
    )


if __name__ == "__main__":
    main()
