"""The prediction log's (model, request id) index: what it costs every insert, and what it saves
the look-ups that find a label's request (``POST /feedback`` and a rollout's outcomes).

Prints figures, asserts nothing. For sqlite and PostgreSQL (Debian's server, started here): a
log of ``--rows`` rows (one model, random request ids), then ``--inserts`` more rows written as
the prediction log's writer writes them (``insert_rows`` in batches of 200), and 1,000 request
ids looked up as ``FeedbackStore`` looks them up (model and role, ids in one IN list), with the
index and without it (the named alternative, on a copy of the same rows).

Usage:
    .venv/bin/python benchmarks/request_id_index.py [--rows 1000000] [--inserts 100000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

from modelfactory.predictions.store import (  # noqa: E402
    PredictionRow,
    insert_rows,
    metadata,
    predictions_table,
)
from modelfactory.sql import engine  # noqa: E402

MODEL = "bank-marketing"
INDEX = "ix_predictions_model_request"
FEATURES = {"age": 41, "job": "admin.", "euribor3m": 1.3, "campaign": 1, "poutcome": "nonexistent"}


def rows(count: int, ids: list[str]) -> list[PredictionRow]:
    now = dt.datetime.now(dt.UTC)
    made = []
    for _ in range(count):
        request_id = uuid.uuid4().hex
        ids.append(request_id)
        made.append(
            PredictionRow(now, request_id, MODEL, "1", "served", FEATURES, {"probability": 0.3})
        )
    return made


def fill(store: sa.Engine, count: int, ids: list[str]) -> None:
    for start in range(0, count, 20_000):
        with store.begin() as connection:
            insert_rows(connection, rows(min(20_000, count - start), ids))


def measure(url: str, label: str, with_index: bool, base: int, inserts: int) -> None:
    store = engine(url)
    metadata.drop_all(store)
    metadata.create_all(store)
    with store.begin() as connection:
        connection.exec_driver_sql(f"DROP INDEX IF EXISTS {INDEX}")
        if with_index:
            connection.exec_driver_sql(
                f"CREATE INDEX {INDEX} ON predictions (model_name, request_id)"
            )
    ids: list[str] = []
    fill(store, base, ids)
    started = time.perf_counter()
    for _ in range(inserts // 200):
        with store.begin() as connection:
            insert_rows(connection, rows(200, ids))
    write = time.perf_counter() - started
    wanted = random.Random(0).sample(ids, 1000)
    query = (
        sa.select(predictions_table.c.request_id, sa.func.count())
        .where(
            predictions_table.c.model_name == MODEL,
            predictions_table.c.role == "served",
            predictions_table.c.request_id.in_(wanted),
        )
        .group_by(predictions_table.c.request_id)
    )
    started = time.perf_counter()
    with store.connect() as connection:
        found = len(list(connection.execute(query)))
    look = time.perf_counter() - started
    store.dispose()
    print(
        f"  {label:<10} {'with' if with_index else 'without':<7} the index: writes "
        f"{inserts / write:9,.0f} rows/s; 1,000 request ids found ({found}) in "
        f"{look * 1000:8.1f} ms",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--inserts", type=int, default=100_000)
    args = parser.parse_args()
    print(f"a log of {args.rows:,} rows, then {args.inserts:,} more in batches of 200", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for with_index in (False, True):
            measure(
                f"sqlite:///{tmp}/log-{with_index}.db",
                "sqlite",
                with_index,
                args.rows,
                args.inserts,
            )
    from tests.support.postgres_server import PostgresServer

    server = PostgresServer().start()
    try:
        for with_index in (False, True):
            measure(server.url, "PostgreSQL", with_index, args.rows, args.inserts)
    finally:
        server.remove()


if __name__ == "__main__":
    main()
