"""The prediction log writes every row in batches, and a slow or broken store never blocks a caller."""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa

from modelfactory.prediction_log import PredictionLog, read_predictions


def test_rows_reach_the_store_in_batches(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    written = []
    plog = PredictionLog(url, batch_size=50, flush_seconds=0.05, on_write=written.append).start()
    for i in range(120):
        plog.record(
            "m", "3", [{"age": i}], [{"class": "no", "probability": 0.1}], request_id=f"r{i}"
        )
    plog.flush()
    plog.close()
    rows = read_predictions(url, "m")
    assert len(rows) == 120 and sum(written) == 120 and max(written) <= 50
    assert rows[0]["features"] == {"age": 119} and rows[0]["model_version"] == "3"
    assert rows[0]["request_id"] == "r119" and rows[0]["role"] == "served"


def test_a_blocked_store_drops_rows_without_blocking_callers(tmp_path):
    release = threading.Event()

    def blocking_engine(url):
        release.wait(30)  # the store hangs (connect never returns)
        raise sa.exc.OperationalError("connect", {}, Exception("store unreachable"))

    drops = []
    plog = PredictionLog(
        "postgresql://nowhere/db",
        max_queue=100,
        flush_seconds=0.01,
        engine_factory=blocking_engine,
        on_drop=lambda n, r: drops.append((n, r)),
    ).start()
    started = time.perf_counter()
    for _ in range(1000):
        plog.record("m", "1", [{"x": 1}], [{"class": "no"}])
    elapsed = time.perf_counter() - started
    assert sum(n for n, r in drops if r == "queue_full") >= 800
    assert elapsed < 5  # generous: it is a check of "does not block", not a timing
    release.set()
    plog.flush()
    assert plog.dropped.get("store_error", 0) >= 1
    plog.close()


def test_a_failing_store_counts_every_lost_row(tmp_path):
    def failing_engine(url):
        raise sa.exc.OperationalError("connect", {}, Exception("connection refused"))

    plog = PredictionLog(
        "postgresql://nowhere/db", flush_seconds=0.01, engine_factory=failing_engine
    ).start()
    plog.record("m", "1", [{"x": 1}] * 7, [{"class": "no"}] * 7)
    plog.flush()
    plog.close()
    assert plog.dropped == {"store_error": 7} and plog.written == 0


def test_the_batched_sqlite_insert_stores_what_sqlalchemy_would(tmp_path):
    """The writer's multi-row INSERT for sqlite binds through the column types: same text on disk."""
    import datetime as dt

    from modelfactory.prediction_log import PredictionRow, _engine, _insert, metadata, predictions_table

    engine = _engine(f"sqlite:///{tmp_path / 'p.db'}")
    metadata.create_all(engine)
    when = dt.datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)
    rows = [
        PredictionRow(when, f"r{i}", "m", "2", "shadow", {"job": "é", "age": i}, {"p": 0.5})
        for i in range(300)  # more than one statement's worth
    ]
    with engine.begin() as connection:
        _insert(connection, rows)
        connection.execute(predictions_table.insert(), [rows[0].as_dict()])
    with engine.connect() as connection:
        stored = connection.exec_driver_sql(
            "SELECT created_at, request_id, role, features, output FROM predictions ORDER BY id"
        ).fetchall()
    engine.dispose()
    assert len(stored) == 301
    assert stored[0] == stored[-1]  # batched row 0 and SQLAlchemy's row 0 are byte-identical
    assert [row[1] for row in stored[:300]] == [f"r{i}" for i in range(300)]
