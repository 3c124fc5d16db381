"""Serving speed: our protocols against `mlflow models serve`, and what the router costs.

Prints figures, asserts nothing. Against one registered version (the champion):

- floor: in-process ``ServedClassifier.predict`` of one row;
- ``mlflow models serve --env-manager local`` (/invocations, dataframe_split), 2 workers;
- ``bentoml serve`` of modelfactory, 2 workers: HTTP JSON /predict, v2 REST (JSON tensors), v2 gRPC;
  each at concurrency 1 and 8, single-row requests;
- router cost on HTTP JSON at c8: champion only, canary 50%, shadow 100% (set by registry tags);
- prediction logging on vs off (a second service with MODELFACTORY_PREDICTION_LOG=false, started
  beside the first for this comparison only).

Every figure is the median of ``--rounds`` runs, the runs of the things compared interleaved
(champion, canary, shadow, shadow, canary, champion, ...), so a slow spell of the machine or an
uneven share of the 8 connections between the 2 workers (the kernel decides: an accept race for
HTTP, a hash of the ports for gRPC's SO_REUSEPORT) moves one run, not a whole comparison. The
costs (router, logging) are a few percent, the size of that noise from one run to the next:
they get ``--cost-rounds`` runs, and each is the median of the per-round losses, printed with
their range.

The load generators are raw asyncio clients in this process (benchmarks/loadgen.py): HTTP/1.1
keep-alive connections, and unary gRPC over HTTP/2, one connection per concurrent caller. The
line "v2 gRPC, grpcio client" measures the same calls through Python's grpc.aio client, whose own
CPU cost per call is about three times the raw generator's, for reference.

Usage (after `modelfactory demo` twice, so a challenger exists):
    MLFLOW_TRACKING_URI=http://127.0.0.1:5044 python benchmarks/serving.py --seconds 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import run_grpc_load, run_load  # noqa: E402
from mlflow_serve import MlflowModelServer  # noqa: E402

from modelfactory.data.bank_marketing import CATEGORIES, FEATURES, generate_bank_marketing  # noqa: E402
from modelfactory.local.ports import free_port  # noqa: E402
from modelfactory.local.serving import ServingProcess  # noqa: E402
from modelfactory.registry import Registry  # noqa: E402
from modelfactory.rollout import clear_rollout, read_rollout, set_rollout  # noqa: E402


def percentile(values, q):
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def run_http(url: str, body: bytes, concurrency: int, seconds: float, headers=None) -> dict:
    return run_load(url, url, body, concurrency, seconds, headers=headers).figures()


def run_grpc(target: str, request, concurrency: int, seconds: float) -> dict:
    return run_grpc_load(
        target, target, MODEL_INFER, request.SerializeToString(), concurrency, seconds
    ).figures()


def run_grpcio(target: str, request, concurrency: int, seconds: float) -> dict:
    """The same calls through grpc.aio (Python's grpcio client), for reference."""
    import grpc
    from tritonclient.grpc import service_pb2_grpc

    async def main():
        # One channel and TCP connection per task, like separate clients. Without a local
        # subchannel pool, channels to one target share a connection, and one worker.
        channels = [
            grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(concurrency)
        ]
        stubs = [service_pb2_grpc.GRPCInferenceServiceStub(c) for c in channels]
        latencies, errors = [], 0
        measure_from = time.perf_counter() + 1.0
        stop_at = measure_from + seconds

        async def worker(stub):
            nonlocal errors
            while (sent := time.perf_counter()) < stop_at:
                try:
                    await stub.ModelInfer(request)
                except grpc.RpcError:
                    errors += 1
                    continue
                if sent >= measure_from:
                    latencies.append(time.perf_counter() - sent)

        try:
            await asyncio.gather(*(worker(stub) for stub in stubs))
        finally:
            for channel in channels:
                await channel.close()
        return {
            "rps": len(latencies) / seconds,
            "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99),
            "n": len(latencies),
            "errors": errors,
        }

    return asyncio.run(main())


def median_of(runs: list[dict]) -> dict:
    figures = {
        key: statistics.median(run[key] for run in runs)
        for key in ("rps", "p50", "p99", "n", "errors")
    }
    return figures | {"rps_runs": [run["rps"] for run in runs]}


def interleaved(rounds: int, plan: dict[str, Callable[[], dict]]) -> dict[str, dict]:
    """Every entry of ``plan`` once per round, the order reversed every other round (so no
    entry always runs first); medians per entry, and each round's throughput (``rps_runs``)."""
    runs: dict[str, list[dict]] = {name: [] for name in plan}
    for round_ in range(rounds):
        for name in list(plan)[:: -1 if round_ % 2 else 1]:
            runs[name].append(plan[name]())
    return {name: median_of(results) for name, results in runs.items()}


def cost(results: dict, name: str, base: str) -> str:
    """Throughput lost by ``name`` against ``base``: the median over rounds of each round's
    pair, which cancels the slow drifts of a shared machine better than a ratio of medians."""
    pairs = [
        100 * (1 - a / b)
        for a, b in zip(results[name]["rps_runs"], results[base]["rps_runs"], strict=True)
    ]
    return f"{statistics.median(pairs):.1f}% (rounds {min(pairs):.1f} to {max(pairs):.1f})"


MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


def v2_grpc_request(model: str, record: dict):
    from tritonclient.grpc import service_pb2 as pb

    request = pb.ModelInferRequest(model_name=model)
    for column, value in record.items():
        tensor = request.inputs.add(name=column, shape=[1])
        if column in CATEGORIES:
            tensor.datatype = "BYTES"
            tensor.contents.bytes_contents.append(value.encode())
        elif isinstance(value, int):
            tensor.datatype = "INT64"
            tensor.contents.int64_contents.append(value)
        else:
            tensor.datatype = "FP64"
            tensor.contents.fp64_contents.append(value)
    return request


def v2_json(record: dict) -> bytes:
    inputs = []
    for column, value in record.items():
        datatype = (
            "BYTES" if column in CATEGORIES else ("INT64" if isinstance(value, int) else "FP64")
        )
        inputs.append({"name": column, "shape": [1], "datatype": datatype, "data": [value]})
    return json.dumps({"inputs": inputs}).encode()


def in_process_floor(model, version: str, uri: str, record: dict, n: int = 3000) -> dict:
    from modelfactory.classification.served import ServedClassifier

    served = ServedClassifier.load(model, version=version, tracking_uri=uri)
    for _ in range(200):
        served.predict([record])
    times = []
    for _ in range(n):
        started = time.perf_counter()
        served.predict([record])
        times.append(time.perf_counter() - started)
    return {
        "rps": n / sum(times),
        "p50": percentile(times, 50),
        "p99": percentile(times, 99),
        "n": n,
        "errors": 0,
    }


def line(name: str, r: dict, base: dict | None = None) -> str:
    ratio = f"  x{r['rps'] / base['rps']:.2f} vs {base['name']}" if base else ""
    errors = f"  errors {r['errors']}" if r["errors"] else ""
    figures = f"{r['rps']:8.1f} req/s   p50 {r['p50']:7.2f} ms   p99 {r['p99']:7.2f} ms"
    return f"  {name:<34} {figures}{ratio}{errors}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5044")
    )
    parser.add_argument("--model", default="bank-marketing")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="runs per figure (median)")
    parser.add_argument(
        "--cost-rounds",
        type=int,
        default=6,
        help="runs per figure of the router and logging costs, a few percent each (median)",
    )
    args = parser.parse_args()
    uri, model = args.tracking_uri, args.model
    registry = Registry(uri)
    state = read_rollout(registry, model)
    champion = state.champion
    versions = [v.version for v in registry.versions(model)]
    original_challenger = state.challenger
    challenger = (
        state.challenger
        if state.challenger not in (None, champion)
        else next((v for v in versions if v != champion), None)
    )
    if challenger is None:
        sys.exit("need two registered versions (run `modelfactory demo` twice)")
    registry.set_alias(model, "challenger", challenger)
    clear_rollout(registry, model)
    record = generate_bank_marketing(1, seed=123)[list(FEATURES)].to_dict(orient="records")[0]
    json_body = json.dumps({"records": [record]}).encode()
    v2_body = v2_json(record)
    columns = list(record)
    mlflow_body = json.dumps(
        {"dataframe_split": {"columns": columns, "data": [[record[c] for c in columns]]}}
    ).encode()
    logs = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    s, rounds = args.seconds, args.rounds
    print(
        f"bank-marketing champion v{champion}, challenger v{challenger}; {os.cpu_count()} cores, "
        f"{args.workers} workers per server, single-row requests, {s:g}s per run, median of "
        f"{rounds} interleaved runs; logs in {logs}"
    )
    results: dict[str, dict] = {}
    try:
        print(line("in-process predict (floor)", in_process_floor(model, champion, uri, record)))
        if not args.skip_mlflow:
            with MlflowModelServer(
                f"models:/{model}/{champion}", uri, args.workers, logs / "mlflow.log"
            ) as server:
                url = f"http://127.0.0.1:{server.port}/invocations"
                results |= interleaved(
                    rounds,
                    {f"mlflow c{c}": partial(run_http, url, mlflow_body, c, s) for c in (1, 8)},
                )
            for c in (1, 8):
                print(line(f"mlflow models serve c{c}", results[f"mlflow c{c}"]))

        def serving(name: str, **env) -> ServingProcess:
            return ServingProcess(
                model,
                uri,
                free_port(),
                workers=args.workers,
                log_file=logs / f"{name}.log",
                extra_env={
                    "MODELFACTORY_GRPC_PORT": str(free_port()),
                    "MODELFACTORY_ROLLOUT_POLL_SECONDS": "1",
                    "MODELFACTORY_HOME": str(logs),
                    "MLFLOW_DISABLE_TELEMETRY": "true",
                    **env,
                },
            )

        service = serving("serve")
        unlogged = serving("serve-nolog", MODELFACTORY_PREDICTION_LOG="false")
        with service:
            time.sleep(2)
            target = f"127.0.0.1:{service.extra_env['MODELFACTORY_GRPC_PORT']}"
            grpc_request = v2_grpc_request(model, record)
            v2_url = f"{service.url}/v2/models/{model}/infer"
            for c in (1, 8):
                results |= interleaved(
                    rounds,
                    {
                        f"json c{c}": partial(run_http, f"{service.url}/predict", json_body, c, s),
                        f"v2rest c{c}": partial(run_http, v2_url, v2_body, c, s),
                        f"grpc c{c}": partial(run_grpc, target, grpc_request, c, s),
                        f"grpcio c{c}": partial(run_grpcio, target, grpc_request, c, s),
                    },
                )
                base = results.get(f"mlflow c{c}")
                base = {**base, "name": f"mlflow c{c}"} if base else None
                print(line(f"HTTP JSON /predict c{c}", results[f"json c{c}"], base))
                print(line(f"v2 REST c{c}", results[f"v2rest c{c}"], base))
                print(line(f"v2 gRPC c{c}", results[f"grpc c{c}"], base))
                print(line(f"v2 gRPC c{c}, grpcio client", results[f"grpcio c{c}"], base))

            def under(mode: str | None, weight: float = 0) -> Callable[[], dict]:
                def run() -> dict:
                    if mode:
                        set_rollout(registry, model, mode, weight)
                    else:
                        clear_rollout(registry, model)
                    time.sleep(2.5)  # every worker polls the registry each second
                    return run_http(f"{service.url}/predict", json_body, 8, s)

                return run

            print("router cost (HTTP JSON c8):")
            results |= interleaved(
                args.cost_rounds,
                {
                    "champion": under(None),
                    "canary50": under("canary", 50),
                    "shadow100": under("shadow", 100),
                },
            )
            clear_rollout(registry, model)
            router_base = {**results["champion"], "name": "champion only"}
            print(line("champion only", results["champion"]))
            print(line("canary 50%", results["canary50"], router_base))
            print(line("shadow 100%", results["shadow100"], router_base))
            shadowed = shadow_counts(service.metrics_url, model, challenger)
            print(
                f"  shadow predictions made {shadowed['made']:.0f}, "
                f"skipped {shadowed['skipped']:.0f}"
            )

            print("prediction logging (HTTP JSON c8):")
            with unlogged:  # started only now: its idle workers stay out of the runs above
                time.sleep(2)
                results |= interleaved(
                    args.cost_rounds,
                    {
                        "logging on": partial(run_http, f"{service.url}/predict", json_body, 8, s),
                        "logging off": partial(
                            run_http, f"{unlogged.url}/predict", json_body, 8, s
                        ),
                    },
                )
            print(line("logging off", results["logging off"]))
            print(
                line("logging on", results["logging on"], {**results["logging off"], "name": "off"})
            )

        print("targets:")
        if "mlflow c8" in results:
            print(
                "  HTTP JSON c8 vs mlflow c8: "
                f"x{results['json c8']['rps'] / results['mlflow c8']['rps']:.2f} "
                "(target >= 2)"
            )
        print(f"  HTTP JSON c8 p99: {results['json c8']['p99']:.2f} ms (target < 15)")
        for c in (1, 8):
            print(
                f"  v2 gRPC p50 c{c} {results[f'grpc c{c}']['p50']:.2f} ms vs HTTP JSON "
                f"{results[f'json c{c}']['p50']:.2f} ms (target: at or below)"
            )
        print(f"  canary 50% cost: {cost(results, 'canary50', 'champion')} (target <= 10)")
        print(f"  shadow 100% cost: {cost(results, 'shadow100', 'champion')} (target <= 35)")
        print(f"  logging cost: {cost(results, 'logging on', 'logging off')} (target <= 10)")
    finally:
        clear_rollout(registry, model)
        if original_challenger:
            registry.set_alias(model, "challenger", original_challenger)


def shadow_counts(url: str, model: str, version: str) -> dict[str, float]:
    """Shadow predictions made and skipped by ``version``, summed over the workers (/metrics)."""
    import httpx

    counts = {"made": 0.0, "skipped": 0.0}
    names = {
        "modelfactory_shadow_predictions_total": "made",
        "modelfactory_shadow_skipped_total": "skipped",
    }
    for text_line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        name, _, rest = text_line.partition("{")
        if name in names and f'version="{version}"' in rest and f'model="{model}"' in rest:
            counts[names[name]] += float(text_line.rsplit(" ", 1)[1])
    return counts


if __name__ == "__main__":
    main()
