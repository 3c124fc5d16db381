"""The prediction log through a store outage: every answered request logged, serving unslowed.

    python benchmarks/prediction_log.py [--outage 300] [--rate 200] [--quick] [--formats]

Trains the bank-marketing classifier on the real UCI file, registers it in a throwaway MLflow,
serves it with `bentoml serve` (2 workers) logging to a real PostgreSQL (Debian's server, as the
tests start it), and sends one-record POST /predict at a fixed rate: an open loop, each request's
latency counted from when it was due, each with its own x-request-id. Then, per scenario:

  outage   the store stopped for --outage seconds, then started: rows logged = requests
           answered, none twice, 0 dropped; serving p99 during the outage against before it;
  turns    the store down and up by turns, a minute each, five times: the same comparison,
           pooled, with other jobs' load (printed per phase, in cores) weighing on both alike;
  restart  the same, with the serving process stopped (SIGTERM) and started again in the middle
           of the outage; then once more killed (SIGKILL) instead: what its workers held in
           memory is lost, and counted here;
  bound    the store down with a 2 MiB spool per worker until it is full: the spool's size at
           the bound, and what is dropped, counted in /metrics, against what is missing.

--quick: a 60 s outage. --formats: the spool's format on its own (segment files, as shipped,
against an sqlite table; with and without fsync): microseconds per row appended and drained.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import BANK_MARKETING, dataset  # noqa: E402
from loadgen import read_answer  # noqa: E402
from serving_http import train_champion  # noqa: E402

from tests.support.postgres_server import PostgresServer  # noqa: E402
from tests.support.scrape import scrape  # noqa: E402

BANK_FILE = dataset(BANK_MARKETING)
MODEL = "bank-marketing"
SPOOL_ROWS = ("modelfactory_prediction_log_spool_rows",)
SPOOL_BYTES = ("modelfactory_prediction_log_spool_bytes",)
DROPPED = "modelfactory_prediction_log_dropped_total"


@dataclass
class Sent:
    request_id: str
    due: float  # seconds after the load started
    latency_ms: float  # from when it was due to its answer
    status: int  # 0: no answer (refused, reset, timed out)


class OpenLoop:
    """HTTP/1.1 requests at ``rate`` a second for ``seconds``, request n sent at start + n / rate
    whatever became of the ones before it (a task each), over keep-alive connections taken from
    a pool, opened when none is free, dropped after a failure. ``request(n)`` gives (path, JSON
    body, request id)."""

    def __init__(
        self,
        url: str,
        rate: float,
        seconds: float,
        request: Callable[[int], tuple[str, bytes, str]],
    ):
        parts = urlparse(url)
        self.host, self.port = parts.hostname, parts.port
        self.rate, self.seconds, self.request = rate, seconds, request
        self.sent: list[Sent] = []
        self.started = 0.0
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> OpenLoop:
        self.started = time.perf_counter()
        self._thread.start()
        return self

    def join(self) -> list[Sent]:
        self._thread.join()
        return self.sent

    def at(self, offset: float) -> None:
        """Sleep until ``offset`` seconds after the load started."""
        time.sleep(max(0.0, self.started + offset - time.perf_counter()))

    async def _run(self) -> None:
        tasks = set()
        for n in itertools.count():
            due = self.started + n / self.rate
            if due >= self.started + self.seconds:
                break
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            task = asyncio.create_task(self._send(n, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks)
        for _, writer in self._idle:
            writer.close()

    async def _send(self, n: int, due: float) -> None:
        path, body, request_id = self.request(n)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"x-request-id: {request_id}\r\n\r\n"
        ).encode()
        status = 0
        for reused in (True, False):  # a kept-alive connection the server has closed: once more
            connection = self._idle.pop() if reused and self._idle else None
            try:
                if connection is None:
                    reused = False
                    connection = await asyncio.wait_for(
                        asyncio.open_connection(self.host, self.port), 5
                    )
                reader, writer = connection
                writer.write(head + body)
                status = await asyncio.wait_for(read_answer(reader), 30)
                self._idle.append(connection)
                break
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
                if connection is not None:
                    connection[1].close()
                if not reused:
                    break
        latency = (time.perf_counter() - due) * 1000
        self.sent.append(Sent(request_id, due - self.started, latency, status))


def logged(url: str, prefix: str) -> Counter[str]:
    """Rows in the store per request id starting with ``prefix``."""
    import sqlalchemy as sa

    from modelfactory.predictions.store import predictions_table as table
    from modelfactory.sql import engine

    store = engine(url)
    try:
        with store.connect() as connection:
            query = (
                sa.select(table.c.request_id, sa.func.count())
                .where(table.c.request_id.like(f"{prefix}%"))
                .group_by(table.c.request_id)
            )
            return Counter(dict(connection.execute(query).all()))
    finally:
        store.dispose()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")


@dataclass
class Outcome:
    name: str
    sent: list[Sent]
    phases: dict[str, tuple[float, float]]
    stored: Counter[str]
    dropped: dict[str, float] = field(default_factory=dict)
    peak_spool: tuple[float, float] = (0.0, 0.0)  # the most rows, the most bytes
    cpu: dict[str, tuple[float, float]] = field(default_factory=dict)  # workers', writers' s
    others: dict[str, float] = field(default_factory=dict)  # cores other processes used
    compare: tuple[list[str], list[str]] = (["before"], ["outage"])  # baseline, store down

    def answered(self, *phases: str) -> list[Sent]:
        spans = [self.phases[phase] for phase in phases] or [(0.0, float("inf"))]
        return [
            s
            for s in self.sent
            if s.status == 200 and any(low <= s.due < high for low, high in spans)
        ]

    def p(self, q: float, *phases: str) -> float:
        return percentile([s.latency_ms for s in self.answered(*phases)], q)

    def show(self) -> None:
        answered = {s.request_id for s in self.answered()}
        found = set(self.stored)
        twice = sum(1 for count in self.stored.values() if count > 1)
        errors = Counter(s.status for s in self.sent if s.status != 200)
        print(f"\n== {self.name}")
        print(
            f"requests {len(self.sent):,}, answered {len(answered):,}, not answered "
            f"{sum(errors.values()):,} {dict(errors) or ''}"
        )
        print(
            f"rows logged {len(found & answered):,} of {len(answered):,} answered; missing "
            f"{len(answered - found):,}; stored twice {twice}; logged but unanswered "
            f"{len(found - answered):,}; dropped (counted in /metrics) {self.dropped or 0}"
        )
        uncounted = len(answered - found) - sum(self.dropped.values())
        print(f"missing and not counted as dropped: {uncounted:,}")
        print(
            f"spool at its fullest: {self.peak_spool[0]:,.0f} rows, "
            f"{self.peak_spool[1] / 2**20:.1f} MiB (all workers)"
        )
        for phase in self.phases:
            answered = len(self.answered(phase))
            workers, writers = self.cpu.get(phase, (float("nan"),) * 2)
            print(
                f"  {phase:<8} {answered:>7,} answered  p50 {self.p(50, phase):7.2f} ms  p99 "
                f"{self.p(99, phase):8.2f} ms  CPU per request: workers "
                f"{workers / max(answered, 1) * 1e3:.2f} ms, writers "
                f"{writers / max(answered, 1) * 1e3:.2f} ms; other processes "
                f"{self.others.get(phase, float('nan')):.2f} cores"
            )
        worst = sorted(self.windows(), key=lambda w: -w[1])[:3]
        shown = ", ".join(f"{start:.0f}-{start + 10:.0f} s: {p99:.0f} ms" for start, p99 in worst)
        print(f"  the slowest 10 s (p99): {shown}")
        base, down = self.compare
        if all(phase in self.phases for phase in base + down):
            print(
                f"  p99 with the store down / up: {self.p(99, *down):.2f} / "
                f"{self.p(99, *base):.2f} ms = {self.p(99, *down) / self.p(99, *base):.3f} "
                "(target <= 1.10)"
            )

    def windows(self, width: float = 10.0) -> list[tuple[float, float]]:
        """(start, p99) of each ``width`` seconds of the run, in seconds since the load started."""
        grouped: dict[int, list[float]] = {}
        for sent in self.answered():
            grouped.setdefault(int(sent.due // width), []).append(sent.latency_ms)
        return [(k * width, percentile(v, 99)) for k, v in sorted(grouped.items())]

    def save(self, directory: Path) -> None:
        """Every request (due, latency, status, request id) and the phases, for a closer look."""
        path = directory / f"{self.name}.json"
        rows = [(s.due, round(s.latency_ms, 3), s.status, s.request_id) for s in self.sent]
        path.write_text(json.dumps({"phases": self.phases, "sent": rows}))


def dropped_counts(metrics: dict[tuple, float]) -> dict[str, float]:
    return {key[1]: value for key, value in metrics.items() if key[0] == DROPPED and value}


def wait_drained(serving, timeout: float = 600) -> dict[tuple, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            metrics = scrape(serving.metrics_url)
            if metrics.get(SPOOL_ROWS) == 0:
                time.sleep(2)  # the last answer's rows are handed over within the flush interval
                return scrape(serving.metrics_url)
        except Exception:
            pass
        time.sleep(1)
    raise SystemExit(f"the spool did not drain within {timeout:.0f} s")


class Watcher:
    """Follows the spool's size and the drop counters on /metrics while a scenario runs; keeps
    the counters of a serving process that is stopped (they go with it)."""

    def __init__(self, serving):
        self.serving = serving
        self.peak = (0.0, 0.0)
        self.dropped: Counter[str] = Counter()
        self._last: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.sample()

    def sample(self) -> None:
        try:
            metrics = scrape(self.serving.metrics_url)
        except Exception:
            return
        rows, size = metrics.get(SPOOL_ROWS, 0.0), metrics.get(SPOOL_BYTES, 0.0)
        self.peak = (max(self.peak[0], rows), max(self.peak[1], size))
        self._last = dropped_counts(metrics)

    def restarted(self) -> None:
        """The serving process is about to stop: keep what it counted."""
        self.sample()
        self.dropped.update(self._last)
        self._last = {}

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
        self.dropped.update(self._last)


def cpu_seconds(serving) -> tuple[float, float]:
    """CPU seconds used so far by the serving process's workers (and its arbiter), and by their
    prediction-log writer processes."""
    import psutil

    workers = writers = 0.0
    try:
        root = psutil.Process(serving.process.pid)
        for process in [root, *root.children(recursive=True)]:
            try:
                times = process.cpu_times()
                used = times.user + times.system
                if "serve_store" in " ".join(process.cmdline()):
                    writers += used
                else:
                    workers += used
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return workers, writers


def machine_busy() -> float:
    """CPU seconds the machine has spent busy, every core."""
    import psutil

    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def tree_seconds(pid: int) -> float:
    """CPU seconds used so far by process ``pid`` and its descendants alive now."""
    import psutil

    used = 0.0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                used += times.user + times.system
    return used


class Phases:
    """CPU at each phase's end: the serving process's workers and writers per request, and the
    cores every other process on the machine used meanwhile (the noise in the latencies)."""

    def __init__(self, serving, store: PostgresServer):
        self.serving, self.store = serving, store
        self.cpu: dict[str, tuple[float, float]] = {}
        self.others: dict[str, float] = {}
        self._mark = self._now()

    def _now(self) -> tuple[float, ...]:
        workers, writers = cpu_seconds(self.serving)
        ours = tree_seconds(os.getpid())  # the serving process is a child: counted in it
        postmaster = self.store.data / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError):
            ours += tree_seconds(int(postmaster.read_text().split()[0]))
        return time.monotonic(), machine_busy(), ours, workers, writers

    def end(self, phase: str) -> None:
        now = self._now()
        wall, busy, ours, workers, writers = (a - b for a, b in zip(now, self._mark, strict=True))
        self.cpu[phase] = (workers, writers)
        self.others[phase] = max(0.0, busy - ours) / wall
        self._mark = now

    def restarted(self) -> None:
        """A new serving process starts at 0: its CPU is counted from there (the stopped one's
        last seconds are lost)."""
        wall, busy, ours, workers, writers = self._mark
        self._mark = (wall, busy, ours - workers - writers, 0.0, 0.0)


def bodies(records: list[dict], prefix: str) -> Callable[[int], tuple[str, bytes, str]]:
    encoded = [json.dumps({"records": [record]}).encode() for record in records]
    return lambda n: ("/predict", encoded[n % len(encoded)], f"{prefix}-{n}")


def run_outage(
    name: str,
    serving,
    store: PostgresServer,
    records: list[dict],
    rate: float,
    warmup: float,
    before: float,
    outage: float,
    after: float,
    midway: Callable[[], None] | None = None,
) -> Outcome:
    """Load for warm-up + before + outage + after seconds; the store stopped for the outage;
    ``midway`` run halfway through it."""
    stop_at, start_at = warmup + before, warmup + before + outage
    load = OpenLoop(serving.url, rate, start_at + after, bodies(records, name)).start()
    with Watcher(serving) as watcher:
        load.at(warmup)
        phases = Phases(serving, store)
        load.at(stop_at)
        phases.end("before")
        store.stop()
        print(f"  {name}: store stopped", flush=True)
        if midway is not None:
            load.at(stop_at + outage / 2)
            watcher.restarted()
            midway()
            phases.restarted()
        load.at(start_at)
        phases.end("outage")
        store.start()
        print(f"  {name}: store started", flush=True)
        sent = load.join()
        phases.end("after")
        watcher.sample()
        wait_drained(serving)
    windows = {
        "before": (warmup, stop_at),
        "outage": (stop_at, start_at),
        "after": (start_at, start_at + after),
    }
    outcome = Outcome(name, sent, windows, logged(store.url, f"{name}-"))
    outcome.dropped, outcome.peak_spool = dict(watcher.dropped), watcher.peak
    outcome.cpu, outcome.others = phases.cpu, phases.others
    return outcome


def run_alternating(
    serving,
    store: PostgresServer,
    records: list[dict],
    rate: float,
    warmup: float,
    cycles: int,
    block: float,
    settle: float = 15.0,
) -> Outcome:
    """The store up and down by turns, ``block`` seconds each, ``cycles`` times, under steady
    load: the down blocks against the up blocks between them, so other jobs whose load drifts
    over minutes weigh on both alike. An up block counts from ``settle`` seconds after the store
    started (while the spool drains)."""
    load = OpenLoop(serving.url, rate, warmup + 2 * cycles * block, bodies(records, "turns"))
    load.start()
    windows: dict[str, tuple[float, float]] = {}
    with Watcher(serving) as watcher:
        load.at(warmup)
        phases = Phases(serving, store)
        for cycle in range(cycles):
            start = warmup + 2 * cycle * block
            if cycle:
                load.at(start + settle)
                phases.end(f"drain {cycle}")
            windows[f"up {cycle + 1}"] = (start + (settle if cycle else 0.0), start + block)
            load.at(start + block)
            phases.end(f"up {cycle + 1}")
            store.stop()
            windows[f"down {cycle + 1}"] = (start + block, start + 2 * block)
            load.at(start + 2 * block)
            phases.end(f"down {cycle + 1}")
            store.start()
        sent = load.join()
        wait_drained(serving)
    outcome = Outcome("turns", sent, windows, logged(store.url, "turns-"))
    outcome.dropped, outcome.peak_spool = dict(watcher.dropped), watcher.peak
    outcome.cpu, outcome.others = phases.cpu, phases.others
    outcome.compare = (
        [name for name in windows if name.startswith("up")],
        [name for name in windows if name.startswith("down")],
    )
    return outcome


def run_bound(serving, store: PostgresServer, records, rate: float, seconds: float) -> Outcome:
    """The store down while the spools fill past their bound; then back."""
    store.stop()
    load = OpenLoop(serving.url, rate, seconds, bodies(records, "bound")).start()
    with Watcher(serving) as watcher:
        sent = load.join()
        time.sleep(3)
        watcher.sample()
        store.start()
        wait_drained(serving)
    outcome = Outcome("bound", sent, {"outage": (0.0, seconds)}, logged(store.url, "bound-"))
    outcome.dropped, outcome.peak_spool = dict(watcher.dropped), watcher.peak
    return outcome


def kill(serving) -> None:
    """kill -9 of every process of the serving process (BentoML's workers run in sessions of
    their own, and the writers beside them), as when a container is killed; then start it again."""
    import psutil

    root = psutil.Process(serving.process.pid)
    tree = [root, *root.children(recursive=True)]
    for process in tree:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(tree, timeout=30)
    serving.process.wait()
    serving.start()


def restart(serving) -> None:
    serving.stop()
    serving.start()


def measure_formats(rows_total: int = 20_000, batch: int = 50) -> None:
    """µs per row through each format: encoded, appended in batches of ``batch`` rows (a quarter
    second at 200 req/s), then read back in drains of 1000 rows and trimmed."""
    import datetime as dt
    import sqlite3

    from modelfactory.classification.training import features
    from modelfactory.data.bank_marketing import load_bank_marketing
    from modelfactory.predictions import spool
    from modelfactory.predictions.drain import FRAME_ROWS, decode_rows, encode_rows
    from modelfactory.predictions.store import PredictionRow

    records = features(load_bank_marketing(BANK_FILE).head(1000)).to_dict(orient="records")
    now = dt.datetime.now(dt.UTC)
    rows = [
        PredictionRow(now, f"{n:032x}", MODEL, "3", "served", records[n % 1000], {"class": "no"})
        for n in range(rows_total)
    ]
    batches = [rows[i : i + batch] for i in range(0, rows_total, batch)]

    def frames(part):
        return [
            (len(part[i : i + FRAME_ROWS]), encode_rows(part[i : i + FRAME_ROWS]))
            for i in range(0, len(part), FRAME_ROWS)
        ]

    def files(fsync: bool):
        root = Path(tempfile.mkdtemp(prefix="spool-bench-"))
        held = spool.claim(root, "postgresql://bench")
        kept = spool.Spool(held.path, 1 << 30, fsync=fsync)
        started = time.perf_counter()
        for number, part in enumerate(batches):
            kept.append(frames(part), number)
        appended = time.perf_counter() - started
        started = time.perf_counter()
        while kept.rows:
            chunk = kept.read(1000)
            [decode_rows(payload) for payload in chunk.payloads]
            kept.advance(chunk)
        drained = time.perf_counter() - started
        kept.close()
        return appended, drained

    def sqlite(synchronous: str):
        path = Path(tempfile.mkdtemp(prefix="spool-bench-")) / "spool.db"
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("CREATE TABLE spool (seq INTEGER PRIMARY KEY, rows INT, payload BLOB)")
        started = time.perf_counter()
        for part in batches:
            db.execute("BEGIN")
            db.executemany("INSERT INTO spool (rows, payload) VALUES (?, ?)", frames(part))
            db.execute("COMMIT")
        appended = time.perf_counter() - started
        started = time.perf_counter()
        while True:
            taken = db.execute("SELECT seq, payload FROM spool ORDER BY seq LIMIT 10").fetchall()
            if not taken:
                break
            [decode_rows(payload) for _, payload in taken]
            db.execute("DELETE FROM spool WHERE seq <= ?", (taken[-1][0],))
        drained = time.perf_counter() - started
        db.close()
        return appended, drained

    print(f"\nthe spool's format, {rows_total:,} rows in batches of {batch} (µs per row)")
    for name, measure in (
        ("segment files", lambda: files(False)),
        ("segment files, fsync each batch", lambda: files(True)),
        ("sqlite WAL, synchronous=NORMAL", lambda: sqlite("NORMAL")),
        ("sqlite WAL, synchronous=FULL", lambda: sqlite("FULL")),
    ):
        runs = [measure() for _ in range(3)]
        append = statistics.median(a for a, _ in runs) / rows_total * 1e6
        drain = statistics.median(d for _, d in runs) / rows_total * 1e6
        print(f"  {name:<34} append {append:6.1f}   drain {drain:6.1f}")
    print(f"  (a row is {len(encode_rows(rows[:1])) - 2} bytes of JSON)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--outage", type=float, default=300.0, help="seconds the store is down")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a 60 s outage")
    parser.add_argument("--formats", action="store_true", help="only the spool's formats")
    parser.add_argument(
        "--scenarios",
        default="outage,turns,restart,kill,bound",
        help="which to run, comma-separated",
    )
    parser.add_argument("--save", type=Path, help="a directory for every request's timing")
    args = parser.parse_args()
    if args.formats:
        measure_formats()
        return
    outage = 60.0 if args.quick else args.outage
    before, after, warmup = min(outage, 120.0), 60.0, 20.0

    from modelfactory.classification.training import features
    from modelfactory.data.bank_marketing import load_bank_marketing, validate_bank_marketing
    from modelfactory.local.mlflow_server import EmbeddedMlflow
    from modelfactory.local.ports import free_port
    from modelfactory.local.serving import ServingProcess

    work = Path(tempfile.mkdtemp(prefix="bench-prediction-log-"))
    mlflow = EmbeddedMlflow(work / "home", port=free_port())
    tracking_uri = mlflow.start()
    store = PostgresServer(fsync=True).start()
    results: list[Outcome] = []

    def finished(outcome: Outcome) -> None:
        """Shown at once (a later scenario's failure does not take it along), and saved."""
        results.append(outcome)
        outcome.show()
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            outcome.save(args.save)

    try:
        print(f"training the champion on {BANK_FILE.name} ...", flush=True)
        train_champion(tracking_uri, work)
        frame = validate_bank_marketing(load_bank_marketing(BANK_FILE), "bank")
        records = features(frame.sample(2000, random_state=7)).to_dict(orient="records")

        def serving(name: str, **env: str) -> ServingProcess:
            return ServingProcess(
                MODEL,
                tracking_uri,
                port=free_port(),
                workers=args.workers,
                log_file=work / f"serve-{name}.log",
                extra_env={
                    "MODELFACTORY_HOME": str(work / "serving"),
                    "MODELFACTORY_PREDICTION_STORE_URL": store.url,
                    "MODELFACTORY_PREDICTION_SPOOL_DIR": str(work / f"spool-{name}"),
                    "MODELFACTORY_GRPC_ENABLED": "false",
                    **env,
                },
            )

        chosen = args.scenarios.split(",")
        timing = (args.rate, warmup, before, outage, after)
        for name, midway in (("outage", None), ("restart", restart), ("kill", kill)):
            if name in chosen:
                served = serving(name).start()
                try:
                    act = (lambda served=served, midway=midway: midway(served)) if midway else None
                    print(f"{name}: {outage:.0f} s outage at {args.rate:.0f} req/s", flush=True)
                    finished(run_outage(name, served, store, records, *timing, act))
                finally:
                    served.stop()
        if "turns" in chosen:
            cycles, block = (2, 30.0) if args.quick else (5, 60.0)
            with serving("turns") as served:
                print(f"turns: the store down {cycles} times, {block:.0f} s each", flush=True)
                finished(run_alternating(served, store, records, args.rate, warmup, cycles, block))
        if "bound" in chosen:
            with serving("bound", MODELFACTORY_PREDICTION_SPOOL_MAX_MB="2") as served:
                print("bound: 2 MiB spools, the store down", flush=True)
                finished(run_bound(served, store, records, args.rate, 90.0))
    finally:
        store.remove()
        mlflow.stop()
    print(
        f"\nbank-marketing, one-record POST /predict at {args.rate:.0f} req/s (open loop), "
        f"{args.workers} workers, PostgreSQL store; {len(results)} scenarios above; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
