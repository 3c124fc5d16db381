"""Serving throughput and latency: our protocols against `mlflow models serve`, and what the router costs.

Prints figures, asserts nothing. Against one registered version (the champion):

- floor: in-process ``ServedClassifier.predict`` of one row;
- ``mlflow models serve --env-manager local`` (/invocations, dataframe_split), 2 workers;
- ``bentoml serve`` of modelfactory, 2 workers: HTTP JSON /predict, v2 REST (JSON tensors), v2 gRPC;
  each at concurrency 1 and 8, single-row requests;
- router cost on HTTP JSON at c8: champion only, canary 50%, shadow 100% (set through the registry tags);
- prediction logging on vs off (a second service with MODELFACTORY_PREDICTION_LOG=false).

The load generator is one asyncio loop in this process for every target (raw keep-alive HTTP/1.1
connections from benchmarks/loadgen.py for HTTP, grpc.aio channels for gRPC), ``concurrency`` tasks sending back to back.

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
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import run_load  # noqa: E402
from mlflow_serve import MlflowModelServer  # noqa: E402

from modelfactory.data.bank_marketing import CATEGORIES, FEATURES, generate_bank_marketing  # noqa: E402
from modelfactory.mlflow_server import free_port  # noqa: E402
from modelfactory.registry import Registry  # noqa: E402
from modelfactory.routing import clear_rollout, read_rollout, set_rollout  # noqa: E402
from modelfactory.serving_process import ServingProcess  # noqa: E402


def percentile(values, q):
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


async def drive(send, concurrency: int, seconds: float, warmup: float = 1.0) -> dict:
    """``concurrency`` tasks calling ``send()`` back to back; latencies after the warm-up count."""
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds

    async def worker():
        nonlocal errors
        while True:
            sent = time.perf_counter()
            if sent >= stop_at:
                return
            try:
                await send()
            except Exception:
                errors += 1
                continue
            done = time.perf_counter()
            if sent >= measure_from:
                latencies.append(done - sent)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {
        "rps": len(latencies) / seconds,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "n": len(latencies),
        "errors": errors,
    }


def run_http(url: str, body: bytes, concurrency: int, seconds: float, headers=None) -> dict:
    """HTTP targets share the raw keep-alive generator of serving_http.py: its own CPU cost per
    request is far below an HTTP client library's, which matters with the servers on the same cores."""
    result = run_load(url, url, body, concurrency, seconds, headers=headers)
    return {"rps": result.throughput, "p50": result.p50, "p99": result.p99, "n": result.requests,
            "errors": result.errors}


def run_grpc(target: str, request, concurrency: int, seconds: float) -> dict:
    import grpc
    from tritonclient.grpc import service_pb2_grpc

    async def main():
        # One channel and TCP connection per task, like separate clients, so SO_REUSEPORT spreads
        # them over the workers. Without a local subchannel pool, channels to the same target
        # share one connection, and every call lands on one worker.
        channels = [
            grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(concurrency)
        ]
        stubs = [service_pb2_grpc.GRPCInferenceServiceStub(c) for c in channels]
        counter = iter(range(1 << 62))

        async def send():
            await stubs[next(counter) % concurrency].ModelInfer(request)

        try:
            return await drive(send, concurrency, seconds)
        finally:
            for channel in channels:
                await channel.close()

    return asyncio.run(main())


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
    from modelfactory.inference.classifier import ServedClassifier

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
    return f"  {name:<34} {r['rps']:8.1f} req/s   p50 {r['p50']:7.2f} ms   p99 {r['p99']:7.2f} ms{ratio}{errors}"


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
    s = args.seconds
    print(
        f"bank-marketing champion v{champion}, challenger v{challenger}; {os.cpu_count()} cores, "
        f"{args.workers} workers per server, single-row requests, {s:g}s per run; logs in {logs}"
    )
    results: dict[str, dict] = {}
    try:
        floor = in_process_floor(model, champion, uri, record)
        print(line("in-process predict (floor)", floor))

        if not args.skip_mlflow:
            with MlflowModelServer(
                f"models:/{model}/{champion}", uri, args.workers, logs / "mlflow.log"
            ) as server:
                url = f"http://127.0.0.1:{server.port}/invocations"
                for c in (1, 8):
                    results[f"mlflow c{c}"] = run_http(url, mlflow_body, c, s)
                    print(line(f"mlflow models serve c{c}", results[f"mlflow c{c}"]))

        grpc_port = free_port()
        env = {
            "MODELFACTORY_GRPC_PORT": str(grpc_port),
            "MODELFACTORY_ROLLOUT_POLL_SECONDS": "1",
            "MODELFACTORY_HOME": str(logs),
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        service = ServingProcess(
            model,
            uri,
            free_port(),
            workers=args.workers,
            log_file=logs / "serve.log",
            extra_env=env,
        )
        with service:
            time.sleep(2)
            target = f"127.0.0.1:{grpc_port}"
            grpc_request = v2_grpc_request(model, record)
            for c in (1, 8):
                results[f"json c{c}"] = run_http(f"{service.url}/predict", json_body, c, s)
                results[f"v2rest c{c}"] = run_http(
                    f"{service.url}/v2/models/{model}/infer", v2_body, c, s
                )
                results[f"grpc c{c}"] = run_grpc(target, grpc_request, c, s)
                base = results.get(f"mlflow c{c}")
                if base:
                    base = {**base, "name": f"mlflow c{c}"}
                print(line(f"HTTP JSON /predict c{c}", results[f"json c{c}"], base))
                print(line(f"v2 REST c{c}", results[f"v2rest c{c}"], base))
                print(line(f"v2 gRPC c{c}", results[f"grpc c{c}"], base))

            print("router cost (HTTP JSON c8):")
            champion_only = {**results["json c8"], "name": "champion only"}
            set_rollout(registry, model, "canary", 50)
            time.sleep(3)
            results["canary50"] = run_http(f"{service.url}/predict", json_body, 8, s)
            print(line("canary 50%", results["canary50"], champion_only))
            set_rollout(registry, model, "shadow", 100)
            time.sleep(3)
            results["shadow100"] = run_http(f"{service.url}/predict", json_body, 8, s)
            print(line("shadow 100%", results["shadow100"], champion_only))
            clear_rollout(registry, model)
            time.sleep(3)
            results["champion again"] = run_http(f"{service.url}/predict", json_body, 8, s)
            print(line("champion only, again", results["champion again"], champion_only))

        off = ServingProcess(
            model,
            uri,
            free_port(),
            workers=args.workers,
            log_file=logs / "serve-nolog.log",
            extra_env={
                **env,
                "MODELFACTORY_GRPC_PORT": str(free_port()),
                "MODELFACTORY_PREDICTION_LOG": "false",
            },
        )
        with off:
            time.sleep(2)
            results["nolog"] = run_http(f"{off.url}/predict", json_body, 8, s)
        logged = statistics.mean([results["json c8"]["rps"], results["champion again"]["rps"]])
        print("prediction logging (HTTP JSON c8):")
        print(line("logging off", results["nolog"]))
        print(
            f"  logging on (mean of the two champion-only runs) {logged:8.1f} req/s   "
            f"cost {100 * (1 - logged / results['nolog']['rps']):.1f}%"
        )
        print("targets:")
        if "mlflow c8" in results:
            print(
                f"  HTTP JSON c8 vs mlflow c8: x{results['json c8']['rps'] / results['mlflow c8']['rps']:.2f} "
                "(target >= 2)"
            )
        print(f"  HTTP JSON c8 p99: {results['json c8']['p99']:.2f} ms (target < 15)")
        for c in (1, 8):
            print(
                f"  v2 gRPC p50 c{c} {results[f'grpc c{c}']['p50']:.2f} ms vs HTTP JSON "
                f"{results[f'json c{c}']['p50']:.2f} ms (target: at or below)"
            )
        base = statistics.mean([results["json c8"]["rps"], results["champion again"]["rps"]])
        print(
            f"  canary 50% cost: {100 * (1 - results['canary50']['rps'] / base):.1f}% (target <= 10)"
        )
        print(
            f"  shadow 100% cost: {100 * (1 - results['shadow100']['rps'] / base):.1f}% (target <= 35)"
        )
        print(f"  logging cost: {100 * (1 - logged / results['nolog']['rps']):.1f}% (target <= 10)")
    finally:
        clear_rollout(registry, model)
        if original_challenger:
            registry.set_alias(model, "challenger", original_challenger)


if __name__ == "__main__":
    main()
