"""The prediction log writes every row in batches, and a slow or broken store never blocks a
caller; without a spool (MODELFACTORY_PREDICTION_SPOOL_MAX_MB=0) what the store refuses is
dropped and counted (with one: tests/predictions/test_spool.py)."""

from __future__ import annotations

import time

import pytest

from modelfactory.predictions.store import read_predictions
from modelfactory.predictions.writer import PredictionLog


@pytest.mark.parametrize("spooled", [False, True], ids=["straight", "through the spool"])
def test_rows_reach_the_store_in_batches(tmp_path, spooled):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    written = []
    plog = PredictionLog(
        url,
        batch_size=50,
        flush_seconds=0.05,
        on_write=written.append,
        spool_dir=tmp_path / "spool" if spooled else None,
    ).start()
    for i in range(120):
        plog.record(
            "m", "3", [{"age": i}], [{"class": "no", "probability": 0.1}], request_id=f"r{i}"
        )
    plog.flush()
    plog.close()
    rows = read_predictions(url, "m")
    assert len(rows) == 120 and sum(written) == 120
    assert rows[0]["features"] == {"age": 119} and rows[0]["model_version"] == "3"
    assert rows[0]["request_id"] == "r119" and rows[0]["role"] == "served"


def test_a_hung_store_drops_rows_without_blocking_callers(hung_store_url):
    drops = []
    plog = PredictionLog(
        hung_store_url,
        max_queue=100,
        flush_seconds=0.01,
        on_drop=lambda n, r: drops.append((n, r)),
    ).start()
    try:
        started = time.perf_counter()
        for _ in range(1000):
            plog.record("m", "1", [{"x": 1}], [{"class": "no"}])
            time.sleep(0.001)  # the writer takes the first rows, then hangs with them
        elapsed = time.perf_counter() - started
        assert sum(n for n, r in drops if r == "queue_full") >= 800
        assert elapsed < 10  # generous: it is a check of "does not block", not a timing
        plog.flush(timeout=15)  # connect_timeout ends the hang: the held rows are dropped
        assert plog.dropped.get("store_error", 0) >= 1
        assert plog.pending == 0
    finally:
        plog.close()


def test_a_failing_store_counts_every_lost_row_and_the_log_recovers(tmp_path):
    missing = tmp_path / "not-yet"
    url = f"sqlite:///{missing / 'p.db'}"  # the directory does not exist: sqlite cannot open it
    plog = PredictionLog(url, flush_seconds=0.01).start()
    plog.record("m", "1", [{"x": 1}] * 7, [{"class": "no"}] * 7)
    plog.flush()
    assert plog.dropped == {"store_error": 7} and plog.written == 0
    missing.mkdir()  # the store comes back
    plog.record("m", "1", [{"x": 2}] * 3, [{"class": "no"}] * 3)
    plog.flush()
    plog.close()
    assert plog.written == 3 and [r["features"] for r in read_predictions(url)] == [{"x": 2}] * 3


def test_a_dead_writer_process_loses_only_its_batch(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    plog = PredictionLog(url, flush_seconds=0.01).start()
    plog.record("m", "1", [{"x": 1}], [{"class": "no"}])
    plog.flush()
    plog._writer.kill()  # the writer process dies (OOM killer, a crash in a driver)
    plog._writer.wait()
    plog.record("m", "1", [{"x": 2}], [{"class": "no"}])
    plog.flush()
    plog.record("m", "1", [{"x": 3}], [{"class": "no"}])
    plog.flush()
    plog.close()
    stored = [r["features"]["x"] for r in read_predictions(url)]
    assert 1 in stored and 3 in stored  # a new writer took over
    assert plog.written + plog.dropped.get("store_error", 0) == 3


def test_the_batched_sqlite_insert_stores_what_sqlalchemy_would(tmp_path):
    """The writer's multi-row INSERT for sqlite binds through the column types: same text on
    disk."""
    import datetime as dt

    from modelfactory.predictions.store import (
        PredictionRow,
        insert_rows,
        metadata,
        predictions_table,
    )
    from modelfactory.sql import engine as store_engine

    engine = store_engine(f"sqlite:///{tmp_path / 'p.db'}")
    metadata.create_all(engine)
    when = dt.datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)
    rows = [
        PredictionRow(when, f"r{i}", "m", "2", "shadow", {"job": "é", "age": i}, {"p": 0.5})
        for i in range(300)  # more than one statement's worth
    ]
    with engine.begin() as connection:
        insert_rows(connection, rows)
        connection.execute(predictions_table.insert(), [rows[0].as_dict()])
    with engine.connect() as connection:
        stored = connection.exec_driver_sql(
            "SELECT created_at, request_id, role, features, output FROM predictions ORDER BY id"
        ).fetchall()
    engine.dispose()
    assert len(stored) == 301
    assert stored[0] == stored[-1]  # batched row 0 and SQLAlchemy's row 0 are byte-identical
    assert [row[1] for row in stored[:300]] == [f"r{i}" for i in range(300)]
