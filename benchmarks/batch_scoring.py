"""Benchmark: batch scoring of bank-marketing customers, `modelfactory score` against
`mlflow models predict` on the same registered model and the same rows.

    python benchmarks/batch_scoring.py [--rows 1000000,10000000] [--mlflow-rows 200000,1000000]
    python benchmarks/batch_scoring.py --compare-walks [--walk-rows 200000]

Trains the classifier on the real UCI file (../shared/data) and registers it in a throwaway
MLflow server, then builds the batches by resampling the real file's 41,188 customers with
replacement (the model's features only, plus a customer id), written as Parquet (row groups
of 500,000) and, for the CSV comparison, as ';'-separated CSV.

Measured, each as a separate process whose whole process tree is sampled every 0.2 s for
its peak summed RSS:
  - ours: `modelfactory score bank-marketing --data <batch> --to <PostgreSQL | .parquet>`
    (reading, checking every row against the signature, scoring, writing results with
    batch id, model version and row key; rejects to their table),
  - mlflow: `mlflow models predict -m models:/bank-marketing/<v> -i <batch>.csv -t csv
    --env-manager local -o out.json` (reads the whole CSV, predict_proba, writes JSON). It
    runs on the --mlflow-rows sizes; its rows/s at larger sizes are extrapolated from the
    largest of them and said so.
``--compare-walks`` measures, in this process and on the same rows, only the scoring:
scikit-learn's whole pipeline (what mlflow runs), what batch scoring runs (the compiled
twin's table encoder, then the model's own forest on every core), the forest alone on
encoded rows, and the twin's numpy walk (what serving uses per request), interleaved over
3 rounds, medians printed.

Rows/s are end to end (process start included); the marginal rows/s between two sizes of
the same kind leave start-up out. PostgreSQL is a throwaway server started
from the Debian binaries (apt-get install postgresql), fsync off, like the tests'. The load
of the machine (CPU used by other processes during each run) is printed beside each figure.
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
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

BANK_FILE = dataset(BANK_MARKETING)
BIN = Path(sys.executable).parent


class Measured:
    """Runs a command; peak summed RSS of its process tree, wall time, CPU of others."""

    def __init__(self, command: list[str], env: dict, log: Path):
        self.command, self.env, self.log = command, env, log
        self.peak = 0

    def run(self) -> Measured:
        machine_before, started = _machine_cpu(), time.perf_counter()
        with open(self.log, "wb") as out:
            process = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=out)
        watched = psutil.Process(process.pid)
        own = 0.0

        def sample():
            nonlocal own
            while process.poll() is None:
                try:
                    tree = [watched, *watched.children(recursive=True)]
                    self.peak = max(self.peak, sum(p.memory_info().rss for p in tree))
                    own = max(own, sum(sum(p.cpu_times()[:2]) for p in tree))
                except psutil.Error:
                    pass
                time.sleep(0.2)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        code = process.wait()
        thread.join()
        self.wall = time.perf_counter() - started
        self.others = max(0.0, _machine_cpu() - machine_before - own) / self.wall
        if code != 0:
            raise SystemExit(f"{' '.join(self.command[:4])} ... failed ({code}); see {self.log}")
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


@contextmanager
def postgres():
    """A throwaway PostgreSQL server on a unix socket (as root: run as the postgres user)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise SystemExit("PostgreSQL binaries missing: apt-get install -y postgresql")
    bin_dir = Path(found[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    subprocess.run(
        [
            *prefix,
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses='' -c fsync=off"
    subprocess.run(
        [
            *prefix,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-o",
            options,
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@/postgres?host={root}&port={port}"
    finally:
        subprocess.run(
            [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def compare_walks(rows: int) -> None:
    import statistics

    from modelfactory.classification.compiled_forest import compile_classifier
    from modelfactory.classification.training import ClassifierConfig, features, train_classifier
    from modelfactory.data.bank_marketing import load_bank_marketing, validate_bank_marketing

    frame = validate_bank_marketing(load_bank_marketing(BANK_FILE), "bank")
    model = train_classifier(frame, ClassifierConfig()).model
    compiled = compile_classifier(model)
    assert compiled is not None
    table = features(frame).sample(rows, replace=True, random_state=0).reset_index(drop=True)
    encoded = compiled.encoder.encode_frame(table)
    forest = model.named_steps["classifier"]
    cores = len(os.sched_getaffinity(0))

    def numpy_walk():  # serving's walk, in the 10,000-row slices it handles best
        for start in range(0, rows, 10_000):
            compiled.forest.predict_positive(encoded[start : start + 10_000])

    def forest_on(X, jobs):
        def run():
            forest.set_params(n_jobs=jobs)
            forest.predict_proba(X)

        return run

    def batch_path():  # what batch scoring runs per chunk: the twin's encoder, the forest
        forest.set_params(n_jobs=cores)
        forest.predict_proba(compiled.encoder.encode_frame(table))

    candidates = {
        "scikit-learn pipeline (what mlflow runs)": forest_on(None, None),
        "batch scoring: table encoder + forest": batch_path,
        "forest alone, encoded rows, 1 thread": forest_on(encoded, 1),
        f"forest alone, encoded rows, {cores} threads": forest_on(encoded, cores),
        "compiled twin, numpy walk (serving's)": numpy_walk,
    }

    def pipeline():
        forest.set_params(n_jobs=None)
        model.predict_proba(table)

    candidates["scikit-learn pipeline (what mlflow runs)"] = pipeline
    timings: dict[str, list[float]] = {name: [] for name in candidates}
    loads: list[float] = []
    for _ in range(3):
        for name, run in candidates.items():
            before, started = _machine_cpu(), time.perf_counter()
            own_before = sum(os.times()[:2])
            run()
            wall = time.perf_counter() - started
            timings[name].append(wall)
            own = sum(os.times()[:2]) - own_before
            loads.append(max(0.0, _machine_cpu() - before - own) / wall)
    print(
        f"scoring {rows:,} rows, 150-tree forest, median of 3 interleaved rounds "
        f"(other processes used {statistics.median(loads):.2f} cores, median):"
    )
    reference = statistics.median(timings["scikit-learn pipeline (what mlflow runs)"])
    for name, walls in timings.items():
        wall = statistics.median(walls)
        print(f"  {name:<46} {rows / wall:>10,.0f} rows/s  ({reference / wall:4.2f}x the pipeline)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--compare-walks", action="store_true")
    parser.add_argument("--walk-rows", type=int, default=200_000)
    parser.add_argument("--rows", default="1000000,10000000")
    parser.add_argument("--mlflow-rows", default="200000,1000000")
    parser.add_argument("--destinations", default="parquet,postgresql")
    args = parser.parse_args()
    if args.compare_walks:
        compare_walks(args.walk_rows)
        return
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
    rows_out: list[tuple[str, int, Measured, bool]] = []
    try:
        print(f"training the champion on {BANK_FILE.name} ...", flush=True)
        version = train_champion(uri, work)
        real = features(validate_bank_marketing(load_bank_marketing(BANK_FILE), "bank"))
        for n in sorted(set(sizes) | set(mlflow_sizes)):
            started = time.perf_counter()
            csv = work / f"batch-{n}.csv" if n in mlflow_sizes else None
            build_batch(real, n, work / f"batch-{n}.parquet", csv)
            print(f"built {n:,} rows in {time.perf_counter() - started:.0f} s", flush=True)

        with postgres() as pg_url:
            for n in sizes:
                for destination in destinations:
                    to = pg_url if destination == "postgresql" else str(work / f"out-{n}.parquet")
                    command = [
                        str(BIN / "modelfactory"),
                        "score",
                        MODEL,
                        "--data",
                        str(work / f"batch-{n}.parquet"),
                        "--to",
                        to,
                        "--key",
                        "customer_id",
                        "--batch-id",
                        f"bench-{n}",
                    ]
                    measured = Measured(command, env, work / f"ours-{n}-{destination}.log").run()
                    rows_out.append((f"modelfactory score → {destination}", n, measured, False))
                    print(_line(*rows_out[-1]), flush=True)
            for n in mlflow_sizes:
                if n in sizes or (work / f"batch-{n}.csv").exists():
                    command = [
                        str(BIN / "modelfactory"),
                        "score",
                        MODEL,
                        "--data",
                        str(work / f"batch-{n}.csv"),
                        "--to",
                        str(work / f"out-csv-{n}.parquet"),
                        "--key",
                        "customer_id",
                    ]
                    measured = Measured(command, env, work / f"ours-csv-{n}.log").run()
                    rows_out.append(("modelfactory score, CSV in → parquet", n, measured, False))
                    print(_line(*rows_out[-1]), flush=True)
        for n in mlflow_sizes:
            command = [
                sys.executable,
                "-m",
                "mlflow",
                "models",
                "predict",
                "-m",
                f"models:/{MODEL}/{version}",
                "-i",
                str(work / f"batch-{n}.csv"),
                "-t",
                "csv",
                "--env-manager",
                "local",
                "-o",
                str(work / f"mlflow-{n}.json"),
            ]
            # mlflow reads CSV with pandas' default ',' separator: give it a ','-separated copy.
            comma = work / f"batch-{n}-comma.csv"
            pd.read_csv(work / f"batch-{n}.csv", sep=";").drop(columns="customer_id").to_csv(
                comma, index=False
            )
            command[command.index(str(work / f"batch-{n}.csv"))] = str(comma)
            measured = Measured(command, env, work / f"mlflow-{n}.log").run()
            rows_out.append(("mlflow models predict (CSV → JSON)", n, measured, True))
            print(_line(*rows_out[-1]), flush=True)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nbank-marketing v{version} (150-tree forest), {os.cpu_count()} cores\n")
    for row in rows_out:
        print(_line(*row))
    # Marginal rates: rows/s between two sizes of the same kind, so start-up (imports, loading
    # the model, the parity check) cancels out.
    print("\nmarginal rows/s (between the two sizes of a kind; start-up costs cancel out):")
    by_name: dict[str, list[tuple[int, Measured]]] = {}
    for name, n, m, _ in rows_out:
        by_name.setdefault(name, []).append((n, m))
    for name, runs in by_name.items():
        if len(runs) >= 2:
            (n1, m1), (n2, m2) = sorted(runs, key=lambda item: item[0])[-2:]
            print(
                f"  {name:<40} {(n2 - n1) / max(m2.wall - m1.wall, 1e-9):>11,.0f} rows/s "
                f"({n1:,} → {n2:,} rows); peak memory {mib(m1.peak)} → {mib(m2.peak)}"
            )
    theirs = [(n, m) for name, n, m, is_mlflow in rows_out if is_mlflow]
    if theirs:
        n_ref, ref = max(theirs, key=lambda item: item[0])
        ref_rate = n_ref / ref.wall
        print(f"\nagainst mlflow models predict at {n_ref:,} rows ({ref_rate:,.0f} rows/s):")
        for name, n, m, is_mlflow in rows_out:
            if is_mlflow:
                continue
            note = "" if n <= n_ref else " (mlflow's rate EXTRAPOLATED from its largest run)"
            print(f"  {name:<40} {n:>11,} rows: {n / m.wall / ref_rate:5.1f}x rows/s{note}")


def _line(name: str, n: int, m: Measured, is_mlflow: bool) -> str:
    return (
        f"{name:<40} {n:>11,} rows: {m.wall:7.1f} s, {n / m.wall:>9,.0f} rows/s, "
        f"peak {mib(m.peak):>9}; other processes used {m.others:.2f} cores meanwhile"
    )


if __name__ == "__main__":
    main()
