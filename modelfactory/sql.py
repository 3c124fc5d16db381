"""SQL stores the platform writes (prediction log, staging tables): engines and URLs as users see
them."""

from __future__ import annotations

import orjson
import sqlalchemy as sa

# A PostgreSQL connection attempt gives up after this long. A server that takes the TCP
# connection and never answers (one going away while its Service still routed to it) otherwise
# holds the caller until the kernel drops the socket: on the real node the prediction log's
# writers waited 26-63 s past a restarted PostgreSQL's return (docs/adr/0010-real-node.md).
CONNECT_TIMEOUT_SECONDS = 10


def shown_url(url: str) -> str:
    """``url`` with its password hidden, for messages and run tags."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database URL>"


def json_text(value) -> str:
    """JSON columns' serializer: orjson (docs/adr/0002-prediction-log-writer-process.md).

    NaN and infinities become null (valid JSON, unlike json.dumps's NaN); numpy values are
    written as numbers, anything else JSON has no type for as its str().
    """
    return orjson.dumps(
        value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS, default=str
    ).decode()


def engine(url: str) -> sa.Engine:
    """An engine for ``url``; sqlite files are opened for several writer processes and readers."""
    if url.startswith("sqlite"):
        # Several serving workers write the same file: wait for the lock instead of failing at once.
        created = sa.create_engine(url, connect_args={"timeout": 30}, json_serializer=json_text)

        @sa.event.listens_for(created, "connect")
        def _wal(connection, _record) -> None:
            # WAL lets readers (drift jobs) run beside the writers; synchronous=NORMAL syncs at
            # checkpoints rather than on every commit: a power cut may lose the last commits of
            # this log, never corrupt it.
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return created
    connect_args = {}
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    return sa.create_engine(
        url, pool_pre_ping=True, json_serializer=json_text, connect_args=connect_args
    )
