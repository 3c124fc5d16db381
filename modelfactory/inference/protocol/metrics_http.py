"""Prometheus ``/metrics`` on a port of its own, so a NetworkPolicy can let only the operator
(and a Prometheus you name) read them while clients reach the prediction port.

Each worker listens on ``MODELFACTORY_METRICS_PORT`` with ``SO_REUSEPORT``, on its own event
loop, as v2 gRPC does; whichever worker answers reports every worker's metrics (the
multiprocess files BentoML's workers share). The port is one service's: the service's main
process claims it before the workers start, and a second service on it is refused
(:mod:`.port_claims`), so a scrape never reads another service's counters. A minimal HTTP/1.1
responder: ``GET /metrics``, one response per connection; anything else is a 404 or 405.
"""

from __future__ import annotations

import asyncio
import logging
import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger("modelfactory.serving.metrics")
MAX_REQUEST_HEAD = 8192


def _exposition() -> bytes:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY)


def _response(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        method, path, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if path.split("?")[0] != "/metrics":
            answer = _response("404 Not Found", b"only /metrics is served here\n")
        elif method not in ("GET", "HEAD"):
            answer = _response("405 Method Not Allowed", b"GET /metrics\n")
        else:
            body = await asyncio.to_thread(_exposition)
            answer = _response("200 OK", b"" if method == "HEAD" else body, CONTENT_TYPE_LATEST)
        writer.write(answer)
        await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
        pass  # a client that sent no complete request gets nothing
    except ConnectionError:
        pass
    finally:
        writer.close()


async def start_metrics_server(port: int, host: str = "0.0.0.0") -> asyncio.Server:
    try:
        server = await asyncio.start_server(
            _handle, host, port, reuse_port=True, limit=MAX_REQUEST_HEAD
        )
    except OSError as exc:
        raise OSError(
            f"could not bind the metrics port {host}:{port} (MODELFACTORY_METRICS_PORT): {exc}"
        ) from exc
    log.info("metrics on %s:%d/metrics", host, port)
    return server
