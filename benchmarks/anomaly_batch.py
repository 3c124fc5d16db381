"""Benchmark: the anomaly detect step on 1,000,000 rides (target: under 60 s and 4 GiB on 2 cores).

The rides are built from the real NYC TLC green trips (Jan-Mar 2023, ~205k usable
rides): resampled with replacement to the requested size, each distance and time
multiplied by log-normal noise (sigma 0.05) so that rides are not exact copies.
``--source simulator`` uses the founding simulator scaled up instead (92.5% normal,
3 × 2.5% anomalous) — a harder case for DBSCAN, because its rides spread evenly.

Prints the build time, the detect wall time, the peak RSS of the process after
detection (the build's memory included), the detection metrics, and then — after
the measurement — the agreement of the scalable DBSCAN with plain scikit-learn DBSCAN
on a sample small enough for the plain one.

Usage: python benchmarks/anomaly_batch.py [--rides N] [--source real|simulator]
       [--agreement-sample N]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from modelfactory.anomaly.detection import (
    DetectionConfig,
    dbscan_labels,
    detect_outliers,
    label_agreement,
    standardize,
)
from modelfactory.data.taxi import load_taxi_rides, simulate_rides

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import SHARED_DATA  # noqa: E402

TAXI_DIR = SHARED_DATA / "taxi"


def real_rides(n: int, seed: int = 0) -> pd.DataFrame:
    base = pd.concat(
        [
            load_taxi_rides(path).rides
            for path in sorted(TAXI_DIR.glob("green_tripdata_2023-0*.csv.gz"))
        ],
        ignore_index=True,
    )
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(base), n)
    dist = base["ride_dist"].to_numpy()[pick] * rng.lognormal(0, 0.05, n)
    minutes = base["ride_time"].to_numpy()[pick] * rng.lognormal(0, 0.05, n)
    return pd.DataFrame(
        {
            "ride_id": np.arange(n, dtype="int64"),
            "batch_date": pd.Timestamp("2023-01-15").date(),
            "ride_dist": dist,
            "ride_time": minutes,
            "ride_speed": dist / (minutes / 60.0),
        }
    )


def simulated_rides(n: int, seed: int = 0) -> pd.DataFrame:
    k = n // 40
    return simulate_rides(n_normal=n - 3 * k, n_per_group=k, seed=seed)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rides", type=int, default=1_000_000)
    parser.add_argument("--source", choices=["real", "simulator"], default="real")
    parser.add_argument("--agreement-sample", type=int, default=10_000)
    args = parser.parse_args(argv)
    config = DetectionConfig()

    started = time.perf_counter()
    rides = real_rides(args.rides) if args.source == "real" else simulated_rides(args.rides)
    build_seconds = time.perf_counter() - started
    print(f"rides: {len(rides):,} from {args.source} data, built in {build_seconds:.1f} s")
    print(f"config: {config.to_dict()}")

    started = time.perf_counter()
    result = detect_outliers(rides, config)
    detect_seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    metrics = result.metrics
    print(f"detect wall time: {detect_seconds:.1f} s (target < 60 s)")
    print(f"peak memory (process RSS, build included): {peak / 2**30:.2f} GiB (target < 4 GiB)")
    print(
        f"method {metrics['method']} (grid resolution {metrics['grid_resolution']}), "
        f"{metrics['distinct_points']:,} weighted points, "
        f"~{metrics['estimated_neighbor_pairs']:,} neighbour pairs"
    )
    print(
        f"clusters {metrics['clusters']}, noise {metrics['noise']:,} "
        f"({metrics['noise_share']:.3%}), "
        f"silhouette {metrics['silhouette']}"
    )

    if args.agreement_sample:
        sample = rides.sample(min(args.agreement_sample, len(rides)), random_state=1)
        scaled = standardize(sample[list(config.features)].to_numpy(), config.scaling)
        from sklearn.cluster import DBSCAN

        started = time.perf_counter()
        reference = DBSCAN(eps=config.eps, min_samples=config.min_samples).fit_predict(scaled)
        plain_seconds = time.perf_counter() - started
        for method in ("exact", "grid"):
            labels, info = dbscan_labels(scaled, DetectionConfig(method=method))
            agreement = {k: round(v, 5) for k, v in label_agreement(reference, labels).items()}
            print(
                f"agreement with plain DBSCAN on {len(sample):,} sampled rides "
                f"({plain_seconds:.1f} s), "
                f"method {method}: {agreement}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
