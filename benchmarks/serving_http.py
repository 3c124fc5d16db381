"""Serving throughput and latency: modelfactory's service against `mlflow models serve`, same model,
same run.

    python benchmarks/serving_http.py [--seconds 10] [--workers 2]

Trains the bank-marketing classifier on the real UCI file (../shared/data),
registers it in a throwaway MLflow server, then measures single-row requests at
concurrency 1 and 8 against:
  - modelfactory: `bentoml serve modelfactory_serving.service:ModelService` (POST /predict)
  - mlflow:       `mlflow models serve --env-manager local` (POST /invocations)
both with the same number of worker processes, plus the in-process floor
(one `predict` call, compiled fast path and plain scikit-learn). Prints
req/s, p50, p99 and the ratios. Targets: >= 2x mlflow's throughput, p99 < 15 ms at c8.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import BANK_MARKETING, dataset  # noqa: E402
from loadgen import format_row, run_load  # noqa: E402
from mlflow_serve import MlflowModelServer  # noqa: E402

from modelfactory.use_cases import CLASSIFICATION  # noqa: E402

BANK_FILE = dataset(BANK_MARKETING)
MODEL = CLASSIFICATION.model_name


def train_champion(tracking_uri: str, work: Path) -> str:
    from modelfactory.classification import steps as classification
    from modelfactory.steps import data as common

    common.ingest("classification", str(BANK_FILE), str(work / "raw"))
    common.validate("classification", str(work / "raw"), str(work / "valid"))
    classification.split(str(work / "valid"), str(work / "train"), str(work / "holdout"))
    info = classification.train(
        str(work / "train"), str(work / "model"), tracking_uri, "bench", str(BANK_FILE)
    )
    classification.evaluate(info, str(work / "holdout"), tracking_uri)
    return classification.register(info, str(work / "holdout"), MODEL, 0.0, tracking_uri)["version"]


def in_process_floor(tracking_uri: str, record: dict, repeats: int = 300) -> dict[str, float]:
    from modelfactory.classification.served import ServedClassifier

    served = ServedClassifier.load(MODEL, tracking_uri=tracking_uri)
    frame = served.schema.frame([record])
    timings = {}
    for name, call in (
        ("compiled fast path", lambda: served.predict([record])),
        ("scikit-learn predict_proba", lambda: served.model.predict_proba(frame)),
    ):
        call()
        started = time.perf_counter()
        for _ in range(repeats):
            call()
        timings[name] = (time.perf_counter() - started) / repeats * 1000
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="measurement time per target and level"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes for both servers")
    args = parser.parse_args()

    from modelfactory.classification.training import features
    from modelfactory.data.bank_marketing import load_bank_marketing, validate_bank_marketing
    from modelfactory.local.mlflow_server import EmbeddedMlflow
    from modelfactory.local.ports import free_port
    from modelfactory.local.serving import ServingProcess

    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    server = EmbeddedMlflow(work / "home", port=free_port())
    tracking_uri = server.start()
    try:
        print(f"training the champion on {BANK_FILE.name} ...", flush=True)
        version = train_champion(tracking_uri, work)
        record = features(
            validate_bank_marketing(load_bank_marketing(BANK_FILE), "bank").head(1)
        ).to_dict(orient="records")[0]

        floor = in_process_floor(tracking_uri, record)
        results = []

        ours = ServingProcess(
            MODEL,
            tracking_uri,
            port=free_port(),
            workers=args.workers,
            log_file=work / "modelfactory.log",
        )
        with ours:
            body = json.dumps({"records": [record]}).encode()
            for concurrency in (1, 8):
                results.append(
                    run_load(
                        "modelfactory  POST /predict",
                        f"{ours.url}/predict",
                        body,
                        concurrency,
                        args.seconds,
                    )
                )

        with MlflowModelServer(
            f"models:/{MODEL}/{version}", tracking_uri, args.workers, work / "mlflow-serve.log"
        ) as theirs:
            body = json.dumps(
                {"dataframe_split": {"columns": list(record), "data": [list(record.values())]}}
            ).encode()
            for concurrency in (1, 8):
                results.append(
                    run_load(
                        "mlflow models serve /invocations",
                        f"{theirs.url}/invocations",
                        body,
                        concurrency,
                        args.seconds,
                    )
                )
    finally:
        server.stop()

    print(
        f"\nbank-marketing v{version}, single-row requests, {args.workers} workers each, "
        f"{args.seconds:.0f} s per level\n"
    )
    for name, ms in floor.items():
        print(f"in-process floor: {name:<28} {ms:7.3f} ms per call")
    print()
    for result in results:
        print(format_row(result))
    by_key = {(r.name.split()[0], r.concurrency): r for r in results}
    print()
    for concurrency in (1, 8):
        ours_r, theirs = by_key[("modelfactory", concurrency)], by_key[("mlflow", concurrency)]
        print(
            f"c={concurrency}: throughput ratio modelfactory/mlflow = "
            f"{ours_r.throughput / theirs.throughput:5.2f}x"
            f"   p99 {ours_r.p99:.2f} ms vs {theirs.p99:.2f} ms"
        )
    c8 = by_key[("modelfactory", 8)]
    print(
        f"\ntargets: >= 2x mlflow throughput at c8: "
        f"{'met' if c8.throughput >= 2 * by_key[('mlflow', 8)].throughput else 'NOT met'}; "
        f"p99 < 15 ms at c8: {'met' if c8.p99 < 15 else 'NOT met'} ({c8.p99:.2f} ms)"
    )


if __name__ == "__main__":
    main()
