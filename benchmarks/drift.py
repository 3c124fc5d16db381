"""Benchmark: a drift check over 1,000,000 and 10,000,000 logged predictions (target for 1M: under
60 s and 2 GiB), against loading the window with a plain ``pandas.read_sql`` and running the same
Evidently report; and how often the sampled decision differs from the one over every row.

The prediction log (sqlite, the table serving writes) is built from the real UCI bank-marketing
file: each row is a real customer of May-August 2008 (the champion's training months) or of
June 2009 - November 2010, the later months' share rising from 0% to 10% along the log, so
that windows taken along it cross the drift thresholds; each carries the probability a logistic
regression trained on the 2008 months gives it. The reference is those 2008 months (24,000
rows) with the same model's probabilities.

Each configuration runs in a fresh process and reports its wall time (read, compare, decide;
importing Evidently, about 10 s here, and MLflow's fixed costs shown apart) and its peak RSS:

- ``ours``: modelfactory.monitoring (the window read in chunks, sampled to
  MODELFACTORY_MONITORING_MAX_ROWS = 200,000 rows when larger, typed as read);
- ``ours-every-row``: the same, reading every row of the window;
- ``plain``: ``pandas.read_sql`` of the window, the JSON columns parsed with ``json.loads`` into
  a frame, then the same report; run under a 12 GiB address-space limit, so that a size it
  cannot hold fails with MemoryError instead of taking the machine down.

Agreement: the log of the largest size is cut into windows of 1,000,000 rows; each window's
decision (drifted or not, and every column's flag) from a 200,000-row sample (5 seeds) is set
against the decision over all its rows; then again with 20,000-row samples.

Usage: python benchmarks/drift.py [--rows 1000000 10000000] [--workdir DIR] [--skip-plain N]
Logs are built once per size under --workdir (default: $TMPDIR/modelfactory-drift-bench) and
reused; 10M rows take about 6 GB of disk.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import BANK_MARKETING, dataset  # noqa: E402

MODEL = "bank-marketing"
LATER_SHARE = 0.10  # of the last rows of the log
PLAIN_LIMIT_BYTES = 12 << 30


def real_months():
    from modelfactory.data.bank_marketing import (
        calendar_months,
        load_bank_marketing,
        validate_bank_marketing,
    )

    path = dataset(BANK_MARKETING)
    frame = validate_bank_marketing(load_bank_marketing(path), str(path))
    calendar = calendar_months(frame)
    return frame[calendar.between("2008-05", "2008-08")], frame[calendar >= "2009-06"]


def fitted_model(early):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from modelfactory.classification.training import features, preprocessor
    from modelfactory.data.bank_marketing import target_vector

    return Pipeline(
        [("preprocess", preprocessor()), ("classifier", LogisticRegression(max_iter=2000))]
    ).fit(features(early), target_vector(early))


def reference_frame():
    from modelfactory.classification.training import features

    early, _ = real_months()
    model = fitted_model(early)
    rows = features(early).reset_index(drop=True)
    return rows.assign(probability=model.predict_proba(rows)[:, 1])


def build_log(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` logged predictions, 0.1 s apart, written straight through sqlite3 (the table and
    index are the serving writer's; only the loading is faster than serving's writer)."""
    import orjson

    from modelfactory.classification.training import features
    from modelfactory.predictions.store import metadata
    from modelfactory.sql import engine

    early, late = real_months()
    model = fitted_model(early)
    encoded = []
    for part in (early, late):  # each distinct customer serialised once
        inputs = features(part).reset_index(drop=True)
        probability = model.predict_proba(inputs)[:, 1]
        encoded.append(
            (
                [orjson.dumps(r).decode() for r in inputs.to_dict(orient="records")],
                [
                    orjson.dumps({"class": "yes" if p >= 0.5 else "no", "probability": p}).decode()
                    for p in probability.tolist()
                ],
            )
        )
    created = engine(f"sqlite:///{path}")
    metadata.create_all(created)
    created.dispose()
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    rng = np.random.default_rng(seed)
    start = dt.datetime(2026, 1, 1)
    chunk = 200_000
    for begin in range(0, rows, chunk):
        n = min(chunk, rows - begin)
        position = (begin + np.arange(n)) / rows
        later = rng.random(n) < LATER_SHARE * position
        picks = [rng.integers(0, len(encoded[k][0]), n) for k in (0, 1)]
        values = []
        for i in range(n):
            k = int(later[i])
            j = int(picks[k][i])
            moment = start + dt.timedelta(seconds=(begin + i) / 10)
            values.append(
                (
                    moment.strftime("%Y-%m-%d %H:%M:%S.%f"),
                    f"r{begin + i}",
                    MODEL,
                    "1",
                    "served",
                    encoded[k][0][j],
                    encoded[k][1][j],
                )
            )
        connection.executemany(
            "INSERT INTO predictions (created_at, request_id, model_name, model_version, role,"
            " features, output) VALUES (?, ?, ?, ?, ?, ?, ?)",
            values,
        )
        connection.commit()
    connection.close()


def log_path(workdir: Path, rows: int) -> Path:
    path = workdir / f"predictions-{rows}.db"
    done = path.with_suffix(".done")
    if not done.exists():
        path.unlink(missing_ok=True)
        started = time.perf_counter()
        print(f"building a log of {rows:,} rows at {path} ...", flush=True)
        build_log(path, rows)
        done.write_text(str(rows))
        print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def window_of(offset: int, rows: int):
    """The rows logged from ``offset`` (0.1 s apart from 2026-01-01) for ``rows`` rows."""
    from modelfactory.monitoring.window import Window

    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return Window(
        MODEL,
        since=start + dt.timedelta(seconds=offset / 10),
        until=start + dt.timedelta(seconds=(offset + rows) / 10),
    )


def decide_window(url, window, reference, max_rows, seed=0) -> dict:
    from modelfactory.monitoring.drift import drift_report
    from modelfactory.monitoring.window import read_window
    from modelfactory.use_cases import CLASSIFICATION

    spec = CLASSIFICATION.monitoring
    logged = read_window(url, window, spec.logged, max_rows=max_rows, seed=seed)
    report = drift_report(
        reference, logged.frame, spec.numeric, spec.categorical, spec.outputs, drifted_share=0.3
    )
    return _decision(report, logged.rows, logged.read)


def _decision(report, rows, read) -> dict:
    from modelfactory.monitoring.policy import DriftPolicy, Evidence, MonitorState, decide

    evidence = Evidence(
        rows=rows,
        input_columns=len(report.inputs),
        drifted_inputs=tuple(report.drifted_inputs),
        drifted_outputs=tuple(report.drifted_outputs),
    )
    decision, _ = decide(evidence, DriftPolicy(), MonitorState(), dt.datetime.now(dt.UTC))
    return {
        "rows": rows,
        "read": read,
        "drifted": decision.drifted,
        "drifted_share": report.drifted_share,
        "flags": {c.column: c.drifted for c in report.columns},
        "scores": {c.column: c.score for c in report.columns},
    }


def plain_check(url, window, reference) -> dict:
    """The baseline: pandas.read_sql of the window, JSON parsed, the same report."""
    import pandas as pd
    import sqlalchemy as sa

    from modelfactory.monitoring.drift import drift_report
    from modelfactory.use_cases import CLASSIFICATION

    spec = CLASSIFICATION.monitoring
    query = "SELECT features, output FROM predictions WHERE model_name = ? AND role = 'served'"
    query += " AND created_at >= ? AND created_at < ?"
    bounds = [
        window.since.strftime("%Y-%m-%d %H:%M:%S.%f"),
        window.until.strftime("%Y-%m-%d %H:%M:%S.%f"),
    ]
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        raw = pd.read_sql(query, connection.connection.driver_connection, params=[MODEL, *bounds])
    current = pd.json_normalize(raw["features"].map(json.loads).tolist())
    current["probability"] = [json.loads(o)["probability"] for o in raw["output"]]
    report = drift_report(
        reference, current, spec.numeric, spec.categorical, spec.outputs, drifted_share=0.3
    )
    return _decision(report, len(raw), len(raw))


def child(args) -> int:
    """One configuration in this fresh process; prints its figures as JSON."""
    if args.child == "plain":
        resource.setrlimit(resource.RLIMIT_AS, (PLAIN_LIMIT_BYTES, PLAIN_LIMIT_BYTES))
    url = f"sqlite:///{args.db}"
    began = time.perf_counter()
    import evidently.presets  # noqa: F401 - a fixed cost of every check process, shown apart

    imported = time.perf_counter() - began
    reference = reference_frame()
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    window = window_of(0, args.window_rows)
    started = time.perf_counter()
    try:
        if args.child == "plain":
            result = plain_check(url, window, reference)
        else:
            cap = None if args.child == "ours-every-row" else args.max_rows
            result = decide_window(url, window, reference, cap)
        result["seconds"] = time.perf_counter() - started
    except MemoryError:
        result = {
            "failed": f"MemoryError under the {PLAIN_LIMIT_BYTES >> 30} GiB limit",
            "seconds": time.perf_counter() - started,
        }
    result["peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result["floor_bytes"] = floor
    result["import_seconds"] = imported
    print(json.dumps(result))
    return 0


def run_child(kind: str, db: Path, rows: int, max_rows: int) -> dict:
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            kind,
            "--db",
            str(db),
            "--window-rows",
            str(rows),
            "--max-rows",
            str(max_rows),
        ],
        capture_output=True,
        text=True,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or "").strip().splitlines()[-1:] or ["no output"]
        return {"failed": f"exit {done.returncode}: {tail[0][:200]}"}
    return json.loads(lines[-1])


def gib(value: float) -> str:
    return f"{value / (1 << 30):.2f} GiB"


def agreement(db: Path, rows: int, window_rows: int, cap: int, seeds: int) -> dict:
    from modelfactory.monitoring.window import read_window  # noqa: F401 - warm the import

    reference = reference_frame()
    url = f"sqlite:///{db}"
    compared = decisions = column_flags = column_differ = 0
    shares, per_window = [], []
    for offset in range(0, rows - window_rows + 1, window_rows):
        window = window_of(offset, window_rows)
        full = decide_window(url, window, reference, None)
        shares.append(full["drifted_share"])
        differ, flipped = 0, {}
        for seed in range(seeds):
            sampled = decide_window(url, window, reference, cap, seed=seed)
            compared += 1
            differ += sampled["drifted"] != full["drifted"]
            for column, flag in full["flags"].items():
                column_flags += 1
                if sampled["flags"][column] != flag:
                    column_differ += 1
                    flipped[column] = (full["scores"][column], sampled["scores"][column])
        decisions += differ
        per_window.append(
            f"  window {offset // window_rows + 1}: drifted share {full['drifted_share']:.2f}, "
            f"prediction drift {full['flags'].get('probability')}, drifted {full['drifted']}; "
            f"{differ}/{seeds} sampled decisions differ"
            + "".join(
                f"; {c} flips (full {a:.3f}, e.g. sampled {b:.3f})" for c, (a, b) in flipped.items()
            )
        )
    return {
        "windows": len(shares),
        "drifted_shares": shares,
        "decisions": compared,
        "decisions_differ": decisions,
        "column_flags": column_flags,
        "column_flags_differ": column_differ,
        "per_window": per_window,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--max-rows", type=int, default=200_000)
    parser.add_argument("--agreement-window", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--agreement-only", action="store_true", help="skip the timings, measure agreement"
    )
    parser.add_argument("--child", choices=["ours", "ours-every-row", "plain"])
    parser.add_argument("--db", type=Path)
    parser.add_argument("--window-rows", type=int)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    workdir = args.workdir or Path(tempfile.gettempdir()) / "modelfactory-drift-bench"
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"drift check benchmark, {os.cpu_count()} cores; each configuration in a fresh process")
    imports = []
    for rows in [] if args.agreement_only else args.rows:
        db = log_path(workdir, rows)
        print(f"\n{rows:,} logged predictions (window: all of them)")
        results = {}
        for kind in ("ours", "ours-every-row", "plain"):
            result = run_child(kind, db, rows, args.max_rows)
            results[kind] = result
            imports += [result["import_seconds"]] if "import_seconds" in result else []
            if "failed" in result:
                print(f"  {kind:15s} failed: {result['failed']}")
                continue
            print(
                f"  {kind:15s} {result['seconds']:7.1f} s  peak {gib(result['peak_bytes'])}"
                f" (after imports and reference {gib(result['floor_bytes'])})  read"
                f" {result['read']:,} of {result['rows']:,} rows; drifted share"
                f" {result['drifted_share']:.2f}, drifted {result['drifted']}"
            )
        ours, plain = results["ours"], results["plain"]
        if "failed" not in ours and "failed" not in plain:
            print(
                f"  ours vs plain: {plain['seconds'] / ours['seconds']:.1f}x faster, "
                f"{plain['peak_bytes'] / ours['peak_bytes']:.1f}x less peak memory; same decision:"
                f" {ours['drifted'] == plain['drifted']}"
            )
    if imports:
        print(f"(importing Evidently, in every run above: {min(imports):.1f}-{max(imports):.1f} s)")
    largest = max(args.rows)
    db = log_path(workdir, largest)
    for cap in (args.max_rows,) if args.agreement_only else (args.max_rows, args.max_rows // 10):
        found = agreement(db, largest, args.agreement_window, cap, args.seeds)
        print(
            f"\nsampled ({cap:,} of {args.agreement_window:,} rows) vs every row, "
            f"{found['windows']} windows x {args.seeds} seeds: decisions differ "
            f"{found['decisions_differ']}/{found['decisions']}, column flags differ "
            f"{found['column_flags_differ']}/{found['column_flags']}; drifted share per window "
            + ", ".join(f"{s:.2f}" for s in found["drifted_shares"])
        )
        print("\n".join(found["per_window"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
