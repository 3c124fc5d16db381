"""The MLflow server modelfactory starts, with MLflow's job runner (the default) and without it.

MLflow 3 starts a job runner and huey consumer processes unless
``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``; modelfactory never submits MLflow jobs, so the
embedded server and the chart's turn it off. Each run starts ``mlflow server`` on a new sqlite
file as ``modelfactory.local.mlflow_server.EmbeddedMlflow`` does (2 workers, served
artifacts), waits for ``/health``, waits 5 s more, then reads the process tree: processes,
summed RSS, CPU seconds. Runs alternate between the two settings; medians are printed.

    .venv/bin/python benchmarks/mlflow_server.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from modelfactory.local.ports import free_port  # noqa: E402


def start_and_measure(job_execution: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        port = free_port()
        environment = {
            **os.environ,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true" if job_execution else "false",
        }
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{home}/mlflow.db",
            "--artifacts-destination",
            f"{home}/artifacts",
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        ]
        started = time.monotonic()
        server = subprocess.Popen(
            command,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).text.strip() == "OK":
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None:
                    raise SystemExit(f"mlflow server exited with {server.returncode}")
                time.sleep(0.1)
            healthy = time.monotonic() - started
            time.sleep(5)
            root = psutil.Process(server.pid)
            tree = [root, *root.children(recursive=True)]
            return {
                "healthy_s": healthy,
                "processes": len(tree),
                "rss_mib": sum(p.memory_info().rss for p in tree) / 2**20,
                "cpu_s": sum(sum(p.cpu_times()[:2]) for p in tree),
            }
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for _ in range(args.runs):
        for job_execution in (True, False):
            runs[job_execution].append(start_and_measure(job_execution))
    medians = {
        flag: {key: statistics.median(run[key] for run in found) for key in found[0]}
        for flag, found in runs.items()
    }
    labels = {True: "job runner on (MLflow's default)", False: "job runner off (ours)"}
    for flag, label in labels.items():
        m = medians[flag]
        print(
            f"{label:34s} healthy after {m['healthy_s']:5.1f} s, {m['processes']:3.0f} processes, "
            f"{m['rss_mib']:6.0f} MiB RSS, {m['cpu_s']:5.1f} s CPU"
        )
    on, off = medians[True], medians[False]
    print(
        f"off/on: start {off['healthy_s'] / on['healthy_s']:.2f}x the time, "
        f"memory {off['rss_mib'] / on['rss_mib']:.2f}x, CPU {off['cpu_s'] / on['cpu_s']:.2f}x"
    )


if __name__ == "__main__":
    main()
