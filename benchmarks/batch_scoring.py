"""Benchmark: batch scoring of bank-marketing customers, `modelfactory score` against
`mlflow models predict` on the same registered model and the same rows, with the budget of
each of our runs by stage.

    python benchmarks/batch_scoring.py [--rows 1000000,10000000] [--mlflow-rows 200000,1000000]
        [--destinations parquet,postgresql]

Trains the classifier on the real UCI file (../shared/data) and registers it in a throwaway
MLflow server, then builds the batches by resampling the real file's 41,188 customers with
replacement (the model's features only, plus a customer id), written as Parquet (row groups
of 500,000) and, for mlflow, as CSV.

Measured, each as a separate process whose whole process tree is sampled every 0.2 s for
its peak summed RSS:
  - ours: `modelfactory score bank-marketing --data <batch> --to <PostgreSQL | .parquet>`
    (reading, checking every row against the signature, scoring, writing results with
    batch id, model version and row key; rejects to their table). The CLI runs as it
    always does, started through ``timed_score.py`` only to note when each step
    returned: the budget's stages are start-up and model load (process start to the
    model loaded and checked), then what the part summary reports (read, check, encode,
    walk, write of the part), commit (publish into the destination: Parquet renamed into
    place, or COPY into PostgreSQL and commit) and the rest (progress bars, clean-up,
    exit). The walk is the floor: the same rows walked by the same engine, alone.
  - mlflow: `mlflow models predict -m models:/bank-marketing/<v> -i <batch>.csv -t csv
    --env-manager local -o out.json` (reads the whole CSV, predict_proba, writes JSON). It
    runs on the --mlflow-rows sizes; ratios at larger sizes use the rate of its largest
    run, extrapolated, and say so.

Rows/s are end to end (process start included). PostgreSQL is a throwaway server started
from the Debian binaries (apt-get install postgresql), fsync off, like the tests'. The load
of the machine (CPU used by other processes during each run) is printed beside each figure.
The tree engines alone, one thread and all cores: ``benchmarks/tree_engines.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import BANK_MARKETING, dataset  # noqa: E402
from serving_http import MODEL, train_champion  # noqa: E402

from modelfactory.local.ports import free_port  # noqa: E402
from tests.support.postgres import postgres_server  # noqa: E402

BANK_FILE = dataset(BANK_MARKETING)
BIN = Path(sys.executable).parent


class Measured:
    """Runs a command: wall time, its process tree's CPU time (from the kernel's rusage of the
    waited process, descendants included) and peak summed RSS, and the CPU of other processes
    meanwhile."""

    def __init__(self, command: list[str], env: dict, log: Path):
        self.command, self.env, self.log = command, env, log
        self.peak = 0

    def run(self) -> Measured:
        self.started_at = time.time()
        machine_before, started = _machine_cpu(), time.perf_counter()
        with open(self.log, "wb") as out:
            process = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=out)
        watched = psutil.Process(process.pid)
        finished = threading.Event()

        def sample():
            while not finished.is_set():
                try:
                    tree = [watched, *watched.children(recursive=True)]
                    self.peak = max(self.peak, sum(p.memory_info().rss for p in tree))
                except psutil.Error:
                    pass
                finished.wait(0.2)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        finished.set()
        thread.join()
        self.wall = time.perf_counter() - started
        self.cpu = usage.ru_utime + usage.ru_stime
        self.others = max(0.0, _machine_cpu() - machine_before - self.cpu) / self.wall
        if process.returncode != 0:
            raise SystemExit(
                f"{' '.join(self.command[:4])} ... failed ({process.returncode}); see {self.log}"
            )
        return self


def _machine_cpu() -> float:
    t = psutil.cpu_times()
    return (
        t.user + t.system + getattr(t, "nice", 0) + getattr(t, "irq", 0) + getattr(t, "softirq", 0)
    )


def build_batch(real: pd.DataFrame, rows: int, parquet: Path, csv: Path | None) -> None:
    """``rows`` customers resampled from the real file, written 500,000 at a time."""
    rng = np.random.default_rng(rows)
    writer = None
    step = 500_000
    for start in range(0, rows, step):
        n = min(step, rows - start)
        chunk = real.iloc[rng.integers(0, len(real), n)].reset_index(drop=True)
        chunk.insert(0, "customer_id", np.arange(start, start + n, dtype=np.int64))
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        writer = writer or pq.ParquetWriter(parquet, table.schema)
        writer.write_table(table)
        if csv is not None:
            chunk.to_csv(csv, sep=";", index=False, header=start == 0, mode="a")
    if writer is not None:
        writer.close()


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


STAGES = ("start-up and model load", "read", "check", "encode", "walk", "write", "commit")


def budget(measured: Measured, marks: dict) -> dict[str, tuple[float, float]]:
    """Stage -> (wall seconds, CPU seconds) of one of our runs."""
    summary = marks["summary"]
    seconds = {
        "start-up and model load": (marks["loaded"] - measured.started_at, marks["loaded_cpu"]),
        **{
            stage: (summary["stages"].get(stage, 0.0), summary["stagesCpu"].get(stage, 0.0))
            for stage in STAGES[1:-1]
        },
        "commit": (marks["commit"], marks["commit_cpu"]),
    }
    seconds["rest"] = (
        max(0.0, measured.wall - sum(w for w, _ in seconds.values())),
        max(0.0, measured.cpu - sum(c for _, c in seconds.values())),
    )
    ended = measured.started_at + measured.wall
    before = marks["scoring"] - marks["loaded"]
    outside = marks["scored"] - marks["scoring"] - sum(summary["stages"].values())
    between = marks["published"] - marks["scored"] - marks["commit"]
    print(
        f"  rest, wall: {before:.2f} s from the model loaded to the first chunk asked for, "
        f"{outside:.2f} s in scoring outside the stages, {between:.2f} s between scoring and "
        f"publishing, {ended - marks['published']:.2f} s from published to exit"
    )
    return seconds


def ours(data: Path, to: str, batch_id: str) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).with_name("timed_score.py")),
        "score",
        MODEL,
        "--data",
        str(data),
        "--to",
        to,
        "--key",
        "customer_id",
        "--batch-id",
        batch_id,
    ]


def theirs(version: str, csv: Path, out: Path) -> list[str]:
    """`mlflow models predict` of a ','-separated copy of the batch (mlflow reads CSV with
    pandas' default separator), without the customer id."""
    comma = csv.with_name(f"{csv.stem}-comma.csv")
    if not comma.exists():
        pd.read_csv(csv, sep=";").drop(columns="customer_id").to_csv(comma, index=False)
    return [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "predict",
        "-m",
        f"models:/{MODEL}/{version}",
        "-i",
        str(comma),
        "-t",
        "csv",
        "--env-manager",
        "local",
        "-o",
        str(out),
    ]


def warm_up(work: Path, env: dict, version: str, real: pd.DataFrame) -> None:
    """One small run of each kind first, unmeasured: bytecode written, numba's walk compiled
    and cached, the model's artifacts in the page cache, as on a pod's second batch."""
    build_batch(real, 20_000, work / "warm.parquet", work / "warm.csv")
    marks = {"BENCH_MARKS": str(work / "warm.json")}
    Measured(
        ours(work / "warm.parquet", str(work / "warm-out.parquet"), "warm"),
        {**env, **marks},
        work / "warm-ours.log",
    ).run()
    Measured(
        theirs(version, work / "warm.csv", work / "warm.json.out"), env, work / "warm-mlflow.log"
    ).run()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default="1000000,10000000")
    parser.add_argument("--mlflow-rows", default="200000,1000000")
    parser.add_argument("--destinations", default="parquet,postgresql")
    args = parser.parse_args()
    sizes = [int(n) for n in args.rows.split(",")]
    mlflow_sizes = [int(n) for n in args.mlflow_rows.split(",")]
    destinations = args.destinations.split(",")

    from modelfactory.classification.training import features
    from modelfactory.data.bank_marketing import load_bank_marketing, validate_bank_marketing
    from modelfactory.local.mlflow_server import EmbeddedMlflow

    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    server = EmbeddedMlflow(work / "home", port=free_port())
    uri = server.start()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MODELFACTORY_HOME": str(work / "home")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    # An image's packages come with their bytecode (pip compiles it): let every run here keep
    # it too, beside the environment, so that no run pays for compiling mlflow's sources.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    rows_out: list[tuple[str, int, Measured, bool]] = []
    budgets: list[tuple[str, int, Measured, dict[str, tuple[float, float]]]] = []
    try:
        print(f"training the champion on {BANK_FILE.name} ...", flush=True)
        version = train_champion(uri, work)
        real = features(validate_bank_marketing(load_bank_marketing(BANK_FILE), "bank"))
        for n in sorted(set(sizes) | set(mlflow_sizes)):
            started = time.perf_counter()
            csv = work / f"batch-{n}.csv" if n in mlflow_sizes else None
            build_batch(real, n, work / f"batch-{n}.parquet", csv)
            print(f"built {n:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
        warm_up(work, env, version, real)

        with postgres_server() as pg_url:
            for n in sizes:
                for destination in destinations:
                    to = pg_url if destination == "postgresql" else str(work / f"out-{n}.parquet")
                    marks = work / f"marks-{n}-{destination}.json"
                    log = work / f"ours-{n}-{destination}.log"
                    command = ours(work / f"batch-{n}.parquet", to, f"bench-{n}")
                    measured = Measured(command, {**env, "BENCH_MARKS": str(marks)}, log).run()
                    name = f"modelfactory score → {destination}"
                    rows_out.append((name, n, measured, False))
                    budgets.append(
                        (name, n, measured, budget(measured, json.loads(marks.read_text())))
                    )
                    print(_line(*rows_out[-1]), flush=True)
        for n in mlflow_sizes:
            command = theirs(version, work / f"batch-{n}.csv", work / f"mlflow-{n}.json")
            measured = Measured(command, env, work / f"mlflow-{n}.log").run()
            rows_out.append(("mlflow models predict (CSV → JSON)", n, measured, True))
            print(_line(*rows_out[-1]), flush=True)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nbank-marketing v{version} (150-tree forest), {os.cpu_count()} cores\n")
    for row in rows_out:
        print(_line(*row))
    mlflow_runs = [(n, m) for name, n, m, is_mlflow in rows_out if is_mlflow]
    if mlflow_runs:
        n_ref, ref = max(mlflow_runs, key=lambda item: item[0])
        print(
            f"\nagainst mlflow models predict at {n_ref:,} rows ({n_ref / ref.wall:,.0f} rows/s, "
            f"{n_ref / ref.cpu:,.0f} rows per CPU-second):"
        )
        for name, n, m, is_mlflow in rows_out:
            if is_mlflow:
                continue
            note = "" if n <= n_ref else " (mlflow's rates EXTRAPOLATED from its largest run)"
            print(
                f"  {name:<40} {n:>11,} rows: {n / m.wall / (n_ref / ref.wall):5.1f}x rows/s, "
                f"{n / m.cpu / (n_ref / ref.cpu):5.1f}x rows per CPU-second{note}"
            )
    print("\nbudget by stage (wall seconds and share; CPU seconds, all threads, and share):")
    for name, n, m, seconds in budgets:
        print(
            f"  {name}, {n:,} rows: {m.wall:.1f} s wall, {m.cpu:.1f} s CPU, "
            f"peak {mib(m.peak)}, other processes {m.others:.2f} cores:"
        )
        for stage, (wall, cpu) in seconds.items():
            print(
                f"    {stage:<26} {wall:8.2f} s {100 * wall / m.wall:5.1f}%  "
                f"{cpu:8.2f} s {100 * cpu / m.cpu:5.1f}%"
            )
        walk_wall, walk_cpu = seconds["walk"]
        print(
            f"    floor, the walk alone: {n / max(walk_wall, 1e-9):,.0f} rows/s, "
            f"{n / max(walk_cpu, 1e-9):,.0f} rows per CPU-second; the run took "
            f"{m.wall / max(walk_wall, 1e-9):.1f}x its wall, {m.cpu / max(walk_cpu, 1e-9):.1f}x "
            "its CPU"
        )


def _line(name: str, n: int, m: Measured, is_mlflow: bool) -> str:
    return (
        f"{name:<40} {n:>11,} rows: {m.wall:7.1f} s, {n / m.wall:>9,.0f} rows/s, "
        f"peak {mib(m.peak):>9}; other processes used {m.others:.2f} cores meanwhile"
    )


if __name__ == "__main__":
    main()
