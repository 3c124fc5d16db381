"""A small closed-loop HTTP load generator: N keep-alive connections, each sending requests back to back.

Written on raw asyncio streams rather than an HTTP client library so that the
generator's own CPU cost per request stays far below the servers' (both share
the same two cores). Every target in a benchmark is measured with it, so the
ratios compare servers, not clients.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from urllib.parse import urlparse


@dataclass
class LoadResult:
    name: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99(self) -> float:
        return self.percentile(99)


async def _connection(host: str, port: int, request: bytes, deadline: float, latencies: list[float],
                      counts: dict) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            if status_line.split(b" ", 2)[1] != b"200":
                counts["errors"] += 1
    finally:
        writer.close()


def run_load(name: str, url: str, body: bytes, concurrency: int, seconds: float,
             headers: dict[str, str] | None = None, warmup: float = 1.0) -> LoadResult:
    """POST ``body`` to ``url`` from ``concurrency`` connections for ``seconds`` (after a warm-up)."""
    parts = urlparse(url)
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    request = (f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body

    async def phase(duration: float) -> tuple[list[float], dict, float]:
        latencies: list[float] = []
        counts = {"errors": 0}
        started = time.perf_counter()
        deadline = started + duration
        await asyncio.gather(*(_connection(parts.hostname, parts.port, request, deadline, latencies, counts)
                               for _ in range(concurrency)))
        return latencies, counts, time.perf_counter() - started

    asyncio.run(phase(warmup))
    latencies, counts, elapsed = asyncio.run(phase(seconds))
    return LoadResult(name, concurrency, len(latencies), counts["errors"], elapsed, latencies)


def format_row(result: LoadResult) -> str:
    return (f"{result.name:<34} c={result.concurrency:<2} {result.throughput:8.1f} req/s  "
            f"p50 {result.p50:7.2f} ms  p99 {result.p99:7.2f} ms  errors {result.errors}")
