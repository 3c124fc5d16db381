"""Engines of the SQL stores: a PostgreSQL server that never answers fails a connection attempt
in bounded time instead of holding its caller (the prediction log's writer)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from modelfactory import sql


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that takes TCP connections and never says a word, as a server going away can."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for connection in held:
        connection.close()


def test_a_postgresql_server_that_never_answers_fails_the_attempt_in_time(
    silent_server, monkeypatch
):
    monkeypatch.setattr(sql, "CONNECT_TIMEOUT_SECONDS", 1)
    store = sql.engine(f"postgresql+psycopg://predictions:secret@127.0.0.1:{silent_server}/db")
    started = time.monotonic()
    with pytest.raises(sa.exc.OperationalError, match="timeout"):
        store.connect()
    assert time.monotonic() - started < 10  # the caller is free to retry, not stuck


def test_a_urls_own_connect_timeout_is_kept(silent_server):
    url = f"postgresql+psycopg://p:s@127.0.0.1:{silent_server}/db?connect_timeout=2"
    store = sql.engine(url)
    started = time.monotonic()
    with pytest.raises(sa.exc.OperationalError, match="timeout"):
        store.connect()
    assert 1.5 < time.monotonic() - started < 10
