"""Forecast API latency: cold (the store's model loaded and forecast computed) and warm (cached),
c1 and c8.

    python benchmarks/forecast_api.py [--stores 8] [--seconds 10] [--workers 2]

Trains ``--stores`` real Rossmann stores (../shared/data) with the forecasting steps,
registers the set as champion in a throwaway MLflow server, starts
``python -m modelfactory_serving`` (the forecast service of store-sales) and measures:
  - cold: the first request for each store (model file parsed, Prophet predicts with
    uncertainty sampling), one at a time;
  - warm: the same (store, horizon) again and again at concurrency 1 and 8 (served from
    the forecast cache of each worker).
Prints p50/p99 per phase. Target: warm p99 under 20 ms at c8.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import ROSSMANN_TRAIN, dataset  # noqa: E402
from loadgen import format_row, run_load  # noqa: E402

from modelfactory.use_cases import FORECASTING  # noqa: E402

MODEL = FORECASTING.model_name


def train_champion(tracking_uri: str, work: Path, stores: list[int]) -> None:
    from modelfactory.forecasting import steps as forecasting
    from modelfactory.steps import data as common

    frame = pd.read_csv(dataset(ROSSMANN_TRAIN), dtype={"StateHoliday": str}, low_memory=False)
    frame[frame["Store"].isin(stores)].to_csv(work / "train.csv", index=False)
    common.validate("forecasting", str(work / "train.csv"), str(work / "sales.parquet"))
    forecasting.features(str(work / "sales.parquet"), str(work / "features.parquet"))
    forecasting.split(
        str(work / "features.parquet"), str(work / "train.parquet"), str(work / "holdout.parquet")
    )
    info = forecasting.train(
        str(work / "train.parquet"),
        str(work / "holdout.parquet"),
        str(work / "model_set"),
        tracking_uri,
    )
    forecasting.evaluate(info, str(work / "model_set"), tracking_uri)
    summary = forecasting.register(
        info, str(work / "holdout.parquet"), MODEL, tracking_uri=tracking_uri
    )
    print(
        f"registered {MODEL} v{summary['version']} ({summary['alias']}): {len(stores)} stores, "
        f"holdout MAPE {summary['candidate']:.4f} vs baseline {summary['baseline']:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stores", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from modelfactory.local.mlflow_server import EmbeddedMlflow
    from modelfactory.local.ports import free_port
    from modelfactory.local.serving import ServingProcess

    stores = list(range(1, args.stores + 1))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = EmbeddedMlflow(work / "mlflow", port=free_port())
        server.start()
        try:
            started = time.perf_counter()
            train_champion(server.url, work, stores)
            print(f"training took {time.perf_counter() - started:.0f}s")
            process = ServingProcess(
                MODEL,
                server.url,
                port=free_port(),
                workers=args.workers,
                log_file=work / "serve.log",
            )
            with process:
                url = f"{process.url}/forecast"
                cold = []
                with httpx.Client(timeout=120) as client:
                    for store in stores:
                        t = time.perf_counter()
                        client.post(
                            url, json={"store": store, "horizon_days": 42}
                        ).raise_for_status()
                        cold.append((time.perf_counter() - t) * 1000)
                print(
                    f"cold (first request per store, n={len(cold)}): "
                    f"p50 {statistics.median(cold):.0f} ms, "
                    f"max {max(cold):.0f} ms"
                )
                body = json.dumps({"store": stores[0], "horizon_days": 42}).encode()
                for concurrency in (1, 8):
                    result = run_load(f"warm c{concurrency}", url, body, concurrency, args.seconds)
                    print(format_row(result))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
