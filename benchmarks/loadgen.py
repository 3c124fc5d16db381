"""Small closed-loop load generators: N connections, each sending requests back to back.

HTTP/1.1 (:func:`run_load`) and gRPC (:func:`run_grpc_load`, unary calls over
HTTP/2) are written on raw asyncio streams rather than client libraries, so that
the generator's own CPU cost per request stays far below the servers' (both
share the same two cores): the ratios compare servers, not clients. Python's
grpcio client alone spends ~0.3 ms of CPU per call, three times the raw HTTP
generator, which at one connection is a third of the whole round trip.

:class:`PacedLoad` is the open-loop kind the rollout benchmarks keep running while a rollout
goes on: a fixed rate of /predict calls, whatever the answers' latency.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlparse

import httpx


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile of ``values`` (nan when there are none)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


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
        return percentile(self.latencies_ms, q)

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99(self) -> float:
        return self.percentile(99)

    def figures(self) -> dict:
        """The figures the benchmarks print and compare: rps, p50, p99, n, errors."""
        return {
            "rps": self.throughput,
            "p50": self.p50,
            "p99": self.p99,
            "n": self.requests,
            "errors": self.errors,
        }


@dataclass
class _Run:
    """One measurement: connections opened one after another, a warm-up, then recorded calls."""

    measure_from: float
    deadline: float
    latencies: list[float]
    errors: int = 0

    def record(self, started: float, ok: bool) -> None:
        if started >= self.measure_from:
            self.latencies.append((time.perf_counter() - started) * 1000)
            self.errors += not ok


async def read_answer(reader: asyncio.StreamReader) -> int:
    """The status of the next HTTP/1.1 answer on ``reader``, its body read and dropped."""
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return int(status_line.split(b" ", 2)[1])


async def _opened_in_turn(connect, previous: asyncio.Event | None):
    """Connect once the previous connection has had an answer, so each connection is accepted
    by whichever server worker is free then, rather than all of a burst by the first awake."""
    if previous is not None:
        await previous.wait()
    return await connect()


async def _connection(
    host: str,
    port: int,
    request: bytes,
    run: _Run,
    previous: asyncio.Event | None,
    answered: asyncio.Event,
) -> None:
    reader, writer = await _opened_in_turn(lambda: asyncio.open_connection(host, port), previous)
    try:
        while (started := time.perf_counter()) < run.deadline:
            writer.write(request)
            run.record(started, await read_answer(reader) == 200)
            answered.set()
    finally:
        answered.set()
        writer.close()


def _measure(
    name: str,
    concurrency: int,
    seconds: float,
    warmup: float,
    connection: Callable[[_Run, asyncio.Event | None, asyncio.Event], Awaitable[None]],
) -> LoadResult:
    """``concurrency`` copies of ``connection(run, previous, answered)``, for a warm-up and then
    ``seconds`` on the same connections."""

    async def main() -> _Run:
        started = time.perf_counter()
        run = _Run(started + warmup, started + warmup + seconds, [])
        answered = [asyncio.Event() for _ in range(concurrency)]
        await asyncio.gather(
            *(
                connection(run, answered[i - 1] if i else None, answered[i])
                for i in range(concurrency)
            )
        )
        return run

    run = asyncio.run(main())
    return LoadResult(name, concurrency, len(run.latencies), run.errors, seconds, run.latencies)


def run_load(
    name: str,
    url: str,
    body: bytes,
    concurrency: int,
    seconds: float,
    headers: dict[str, str] | None = None,
    warmup: float = 1.0,
) -> LoadResult:
    """POST ``body`` to ``url`` from ``concurrency`` connections for ``seconds`` (after warm-up)."""
    parts = urlparse(url)
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    request = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body
    return _measure(
        name,
        concurrency,
        seconds,
        warmup,
        lambda run, previous, answered: _connection(
            parts.hostname, parts.port, request, run, previous, answered
        ),
    )


# --- gRPC: unary calls on raw HTTP/2 (RFC 9113), one call in flight per connection -----------

_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _PING, _GOAWAY, _WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
_END_STREAM, _ACK = 0x1, 0x1
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_MAX_WINDOW = (1 << 31) - 1


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes((kind, flags))
        + struct.pack(">I", stream)
        + payload
    )


def _literal(name: bytes, value: bytes) -> bytes:
    """HPACK literal header field without indexing, new name, no Huffman (short strings only)."""
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes((len(name),)) + name + bytes((len(value),)) + value


def grpc_header_block(authority: str, method: str, metadata: dict[str, str] | None = None) -> bytes:
    """The HPACK block of a gRPC call; no dynamic table entries, so one block serves every call."""
    block = (
        b"\x83\x86"  # :method POST, :scheme http (static table 3 and 6)
        + b"\x04"
        + bytes((len(method),))
        + method.encode()  # :path, name from static table 4
        + b"\x01"
        + bytes((len(authority),))
        + authority.encode()  # :authority, static 1
        + _literal(b"content-type", b"application/grpc")
        + _literal(b"te", b"trailers")
    )
    for key, value in (metadata or {}).items():
        block += _literal(key.lower().encode(), value.encode())
    return block


class _H2Frames:
    """Frames from the server, with the connection-level chores done on the way: acknowledge
    SETTINGS and PINGs, count the server's window for our DATA, stop on GOAWAY."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.send_window = 65535  # the server's connection-level window for our DATA

    async def next(self) -> tuple[int, int, int, bytes]:
        head = await self.reader.readexactly(9)
        length = int.from_bytes(head[:3], "big")
        payload = await self.reader.readexactly(length) if length else b""
        kind, flags, stream = head[3], head[4], int.from_bytes(head[5:9], "big") & _MAX_WINDOW
        if kind == _WINDOW_UPDATE and stream == 0:
            self.send_window += struct.unpack(">I", payload)[0] & _MAX_WINDOW
        elif kind in (_SETTINGS, _PING) and not flags & _ACK:
            self.writer.write(_frame(kind, _ACK, 0, payload if kind == _PING else b""))
        elif kind == _GOAWAY:
            raise ConnectionError("server sent GOAWAY")
        return kind, flags, stream, payload


async def _grpc_connection(
    host: str,
    port: int,
    header_block: bytes,
    message: bytes,
    run: _Run,
    previous: asyncio.Event | None,
    answered: asyncio.Event,
) -> None:
    reader, writer = await _opened_in_turn(lambda: asyncio.open_connection(host, port), previous)
    # Our receive windows as large as allowed, so the server never waits for WINDOW_UPDATEs.
    writer.write(
        _PREFACE
        + _frame(_SETTINGS, 0, 0, struct.pack(">HI", 2, 0) + struct.pack(">HI", 4, _MAX_WINDOW))
        + _frame(_WINDOW_UPDATE, 0, 0, struct.pack(">I", _MAX_WINDOW - 65535))
    )
    frames = _H2Frames(reader, writer)
    data = b"\x00" + struct.pack(">I", len(message)) + message  # gRPC length-prefixed message
    stream = 1
    try:
        while time.perf_counter() < run.deadline:
            while frames.send_window < len(data):  # wait for the server to open its window
                await frames.next()
            started = time.perf_counter()
            writer.write(
                _frame(_HEADERS, 0x4, stream, header_block)
                + _frame(_DATA, _END_STREAM, stream, data)
            )
            frames.send_window -= len(data)
            got_data = False
            while True:
                kind, flags, sid, payload = await frames.next()
                if sid != stream:
                    continue
                got_data |= kind == _DATA and bool(payload)
                if kind == _RST_STREAM or flags & _END_STREAM and kind in (_DATA, _HEADERS):
                    break
            # A trailers-only answer (no message) is a gRPC error.
            run.record(started, got_data and kind != _RST_STREAM)
            answered.set()
            stream += 2
    finally:
        answered.set()
        writer.close()


def run_grpc_load(
    name: str,
    target: str,
    method: str,
    message: bytes,
    concurrency: int,
    seconds: float,
    metadata: dict[str, str] | None = None,
    warmup: float = 1.0,
) -> LoadResult:
    """Call unary ``method`` (e.g. "/inference.GRPCInferenceService/ModelInfer") with the serialized
    ``message`` from ``concurrency`` HTTP/2 connections to ``target`` ("host:port")."""
    host, port = target.rsplit(":", 1)
    block = grpc_header_block(target, method, metadata)
    return _measure(
        name,
        concurrency,
        seconds,
        warmup,
        lambda run, previous, answered: _grpc_connection(
            host, int(port), block, message, run, previous, answered
        ),
    )


def format_row(result: LoadResult) -> str:
    return (
        f"{result.name:<34} c={result.concurrency:<2} {result.throughput:8.1f} req/s  "
        f"p50 {result.p50:7.2f} ms  p99 {result.p99:7.2f} ms  errors {result.errors}"
    )


def bank_records(n: int = 500, seed: int = 5) -> list[dict]:
    """``n`` generated bank-marketing records, as clients send them."""
    from modelfactory.data.bank_marketing import FEATURES, generate_bank_marketing

    return generate_bank_marketing(n, seed=seed)[list(FEATURES)].to_dict(orient="records")


class PacedLoad:
    """``rate`` POSTs a second to /predict, two records of ``pool`` each (what
    modelfactory.local.traffic.Load sends), on a fixed schedule spread over ``threads``
    keep-alive connections. Load sleeps 1/rate after each answer, so its rate falls as answers
    slow down: a slow challenger would thin its own traffic. Keeps each answer's time, model
    version (None when it failed) and latency, and why every answer that is not a 200 (or no
    answer at all) failed."""

    def __init__(self, url: str, rate: float, pool: list[dict], threads: int = 4):
        self.url, self.rate, self.pool, self.threads = url, rate, pool, threads
        self.answers: list[tuple[float, str | None, float]] = []  # (time, version, ms)
        self.failures: list[str] = []
        self.behind = 0  # slots skipped because the clients fell behind
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    @property
    def latencies_ms(self) -> list[float]:
        return [ms for _, _, ms in self.answers]

    def of(self, version: str) -> list[float]:
        """When each answer of ``version`` came."""
        return [at for at, v, _ in self.answers if v == version]

    def _run(self, index: int) -> None:
        period = self.threads / self.rate
        due = time.perf_counter() + index * period / self.threads
        rng = random.Random(index)
        with httpx.Client(timeout=10, trust_env=False) as client:
            while not self._stop.is_set():
                wait = due - time.perf_counter()
                if wait > 0:
                    if self._stop.wait(wait):
                        break
                elif wait < -period:  # more than a slot late: skip ahead, never burst
                    self.behind += 1
                    due = time.perf_counter()
                started = time.perf_counter()
                version, error = None, None
                try:
                    answer = client.post(
                        f"{self.url}/predict", json={"records": rng.sample(self.pool, 2)}
                    )
                    if answer.status_code == 200:
                        version = answer.json().get("model_version")
                    else:
                        error = f"{answer.status_code} {answer.text[:200]}"
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                with self._lock:
                    self.answers.append(
                        (time.time(), version, (time.perf_counter() - started) * 1000)
                    )
                    if error:
                        self.failures.append(error)
                due += period

    def __enter__(self) -> PacedLoad:
        self.started = time.perf_counter()
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(15)
        self.seconds = time.perf_counter() - self.started
