"""The prediction log's spool, with a real PostgreSQL store that goes away and comes back and the
real writer process: every row arrives, in order, none twice; a restarted worker drains what the
last one left; past the bound rows are dropped and counted in the metrics; a torn tail costs
only the torn rows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest

from modelfactory.inference.metrics import ServingMetrics
from modelfactory.predictions import spool
from modelfactory.predictions.drain import encode_rows
from modelfactory.predictions.store import PredictionRow, insert_rows, metadata, predictions_table
from modelfactory.predictions.writer import PredictionLog
from modelfactory.sql import engine as store_engine
from tests.support.postgres_server import PostgresServer
from tests.support.serving import until

MODEL = "bank-marketing"


@pytest.fixture(scope="module")
def server():
    with PostgresServer() as started:
        yield started


@pytest.fixture
def store(server):
    """The module's PostgreSQL server, running, with an empty prediction log."""
    if not server.running:
        server.start()
    engine = store_engine(server.url)
    metadata.drop_all(engine)
    engine.dispose()
    return server


def stored_ids(url: str) -> list[str]:
    """Request ids of the logged rows, in the order the store took them."""
    engine = store_engine(url)
    try:
        with engine.connect() as connection:
            query = sa.select(predictions_table.c.request_id).order_by(predictions_table.c.id)
            return list(connection.execute(query).scalars())
    finally:
        engine.dispose()


def log_requests(plog: PredictionLog, ids: list[str]) -> None:
    for n, request_id in enumerate(ids):
        plog.record(MODEL, "3", [{"age": n, "job": "admin."}], [{"class": "no"}], request_id)


def spooling_log(url: str, directory, **options) -> PredictionLog:
    return PredictionLog(url, flush_seconds=0.02, spool_dir=directory, **options).start()


def test_the_store_going_away_and_back_loses_no_row_and_repeats_none(store, tmp_path):
    ids = [f"r{n:04d}" for n in range(600)]
    plog = spooling_log(store.url, tmp_path)
    try:
        log_requests(plog, ids[:100])
        plog.flush()
        assert stored_ids(store.url) == ids[:100]
        store.stop()
        for start in range(100, 500, 50):  # several batches while the store is down
            log_requests(plog, ids[start : start + 50])
            plog.flush(timeout=0.1)
        until(lambda: plog.pending == 0 and plog.spooled_rows == 400)
        store.start()
        log_requests(plog, ids[500:])  # logged after the store came back, stored after the rest
        plog.flush(timeout=60)
    finally:
        plog.close()
    assert stored_ids(store.url) == ids
    assert plog.dropped == {} and plog.written == 600


def test_a_worker_started_again_drains_the_spool_the_last_one_left(store, tmp_path):
    ids = [f"r{n:04d}" for n in range(300)]
    store.stop()
    first = spooling_log(store.url, tmp_path)
    log_requests(first, ids[:200])
    until(lambda: first.pending == 0 and first.spooled_rows == 200)
    first.close()  # a worker stopped while the store was down: its rows stay on the volume
    store.start()
    second = spooling_log(store.url, tmp_path)
    try:
        log_requests(second, ids[200:])
        second.flush(timeout=60)
    finally:
        second.close()
    assert stored_ids(store.url) == ids
    assert [p for p in (tmp_path / spool.store_key(store.url)).iterdir()] == []  # all drained


def test_the_spools_of_several_stopped_workers_are_all_drained(store, tmp_path):
    store.stop()
    workers = [spooling_log(store.url, tmp_path) for _ in range(3)]
    for number, plog in enumerate(workers):
        log_requests(plog, [f"w{number}-{n:03d}" for n in range(100)])
    for plog in workers:
        until(lambda plog=plog: plog.spooled_rows == 100)
        plog.close()
    store.start()
    survivor = spooling_log(store.url, tmp_path)  # one worker now, where there were three
    try:
        until(lambda: len(stored_ids(store.url)) == 300, timeout=60)
    finally:
        survivor.close()
    ids = stored_ids(store.url)
    for number in range(3):  # each worker's rows in the order it logged them
        assert [i for i in ids if i.startswith(f"w{number}-")] == [
            f"w{number}-{n:03d}" for n in range(100)
        ]


def test_a_killed_writer_process_loses_no_row_and_stores_none_twice(store, tmp_path):
    ids = [f"r{n:04d}" for n in range(400)]
    plog = spooling_log(store.url, tmp_path)
    try:
        for start in range(0, 400, 100):
            log_requests(plog, ids[start : start + 100])
            until(lambda: plog.pending == 0)  # handed over: on the spool, or stored already
            plog._writer.kill()  # the writer dies (OOM killer, a crash in a driver)
        plog.flush(timeout=60)
    finally:
        plog.close()
    assert stored_ids(store.url) == ids


def test_a_hung_store_holds_up_no_caller_and_its_rows_wait_on_the_spool(hung_store_url, tmp_path):
    plog = spooling_log(hung_store_url, tmp_path, max_queue=100)
    try:
        plog.flush()  # returns once its writer process is up and has reported its spool
        for start in range(0, 1000, 50):  # ten times the queue, while the store never answers
            log_requests(plog, [f"r{n}" for n in range(start, start + 50)])
            plog.flush(timeout=0.05)
        until(lambda: plog.pending == 0 and plog.spooled_rows == 1000)
    finally:
        plog.close()
    assert plog.dropped == {} and plog.written == 0


def metrics_text(registry) -> dict[str, float]:
    """The exposition /metrics serves, as {sample line's name and labels: value}."""
    samples = {}
    for line in generate_latest(registry).decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_past_the_bound_rows_are_dropped_and_counted_in_the_metrics(store, tmp_path):
    registry = CollectorRegistry()
    metrics = ServingMetrics(registry)
    bound = 96 << 10
    ids = [f"r{n:04d}" for n in range(3000)]
    store.stop()
    plog = spooling_log(
        store.url,
        tmp_path,
        spool_max_bytes=bound,
        on_drop=lambda n, reason: metrics.log_dropped.labels(reason).inc(n),
        on_write=metrics.log_written.inc,
        on_spool=metrics.spooled,
    )
    try:
        for start in range(0, 3000, 100):
            log_requests(plog, ids[start : start + 100])
            plog.flush(timeout=0.05)
        until(lambda: plog.pending == 0 and sum(plog.dropped.values()) + plog.spooled_rows == 3000)
        shown = metrics_text(registry)
        dropped = plog.dropped["spool_full"]
        assert dropped > 0 and plog.dropped == {"spool_full": dropped}
        assert shown['modelfactory_prediction_log_dropped_total{reason="spool_full"}'] == dropped
        assert 0 < shown["modelfactory_prediction_log_spool_bytes"] <= bound
        assert shown["modelfactory_prediction_log_spool_rows"] == 3000 - dropped
        store.start()
        plog.flush(timeout=60)
    finally:
        plog.close()
    # What the spool kept is what came first; what it refused is counted, not stored.
    assert stored_ids(store.url) == ids[: 3000 - dropped]
    assert metrics_text(registry)["modelfactory_prediction_log_written_total"] == 3000 - dropped


def rows(prefix: str, count: int) -> list[PredictionRow]:
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    return [
        PredictionRow(now, f"{prefix}-{n}", MODEL, "3", "served", {"age": n}, {"class": "no"})
        for n in range(count)
    ]


def left_spool(root, url: str, frames: list[list[PredictionRow]]) -> Path:
    """A spool a stopped worker left under ``root``, holding ``frames``; returns its segment."""
    held = spool.claim(root, url)
    kept = spool.Spool(held.path, max_bytes=1 << 20)
    for batch_id, frame in enumerate(frames, start=1):
        kept.append([(len(frame), encode_rows(frame))], batch_id)
    kept.close()
    held.release()
    (segment,) = held.path.glob("*.seg")
    return segment


def test_a_torn_spool_tail_is_read_up_to_the_last_whole_row(store, tmp_path):
    segment = left_spool(tmp_path, store.url, [rows("a", 10), rows("b", 10), rows("c", 10)])
    with open(segment, "r+b") as torn:  # the last write was cut short (a full disk, a power cut)
        torn.truncate(os.path.getsize(segment) - 7)
    plog = spooling_log(store.url, tmp_path)
    try:
        plog.flush(timeout=60)
    finally:
        plog.close()
    assert stored_ids(store.url) == [f"a-{n}" for n in range(10)] + [f"b-{n}" for n in range(10)]
    assert plog.dropped == {"spool_torn": 10}


def test_rows_the_store_committed_before_the_spool_was_trimmed_are_not_stored_twice(
    store, tmp_path
):
    first, second = rows("a", 20), rows("b", 20)
    left_spool(tmp_path, store.url, [first, second])
    engine = store_engine(store.url)
    metadata.create_all(engine)
    with engine.begin() as connection:  # the last writer's commit, before it could trim
        insert_rows(connection, first)
    engine.dispose()
    plog = spooling_log(store.url, tmp_path)
    try:
        plog.flush(timeout=60)
    finally:
        plog.close()
    assert stored_ids(store.url) == [row.request_id for row in first + second]
    assert plog.written == 20


def test_a_spool_refuses_frames_past_its_bound_and_takes_rows_again_as_it_drains(tmp_path):
    held = spool.claim(tmp_path, "sqlite:///p.db")
    kept = spool.Spool(held.path, max_bytes=64 << 10, segment_bytes=8 << 10)
    frame = encode_rows(rows("x", 20))
    accepted = [kept.append([(20, frame)], batch_id) for batch_id in range(1, 200)]
    assert 0 < accepted.count(20) < len(accepted) and set(accepted) == {0, 20}
    assert kept.size <= 64 << 10 and kept.rows == 20 * accepted.count(20)
    chunk = kept.read(100)
    assert chunk.rows == 100 and len(chunk.payloads) == 5
    kept.advance(chunk)
    assert kept.append([(20, frame)], 500) == 20  # drained segments were deleted: room again
    kept.close()
    reopened = spool.Spool(held.path, max_bytes=64 << 10, segment_bytes=8 << 10)
    assert reopened.rows == 20 * accepted.count(20) - 100 + 20  # resumes at its head
    assert reopened.last_batch_id == 500
    reopened.close()
    held.release()
