"""Unary gRPC over HTTP/2 (cleartext, prior knowledge) on the running asyncio event loop.

The v2 gRPC service (:mod:`modelfactory.inference.protocol.grpc_service`) runs beside BentoML's
HTTP server in each worker, on the worker's own loop. The loop reads the socket itself, as
uvicorn does for HTTP; the HTTP/2 framing, HPACK, flow control and stream states are ``h2``'s.
Why not grpcio's ``grpc.aio`` server (its calls cross threads several times): ADR 0001,
docs/adr/0001-grpc-on-h2.md. Its ~490 lines are one connection's state machine (the ``h2`` events
and the streams they change), kept whole so every state change is in view; the checks of a
request's header block live apart (:mod:`.http2_request`).

What a gRPC server owes its clients, and where it is done here:

- Only unary methods (``methods``: path -> :class:`UnaryMethod`); other paths answer
  UNIMPLEMENTED; a request that is not gRPC gets HTTP 405 (not a POST) or 415 (another
  content type) once it has ended, with a line saying what this port serves.
- A message over ``max_receive_bytes`` is refused with RESOURCE_EXHAUSTED as soon as its
  length prefix (or the bytes received) says so, without buffering the rest; gzip and
  deflate requests are read with the same bound on the inflated size; other encodings
  answer UNIMPLEMENTED and name the ones accepted.
- Handlers return the reply, or an awaitable of it when they must wait (a prediction
  in a thread): the common case costs no task. They raise :class:`GrpcError` to end the
  call with a status; anything else is INTERNAL and logged, never a dropped connection.
- Flow control both ways: received data is acknowledged as it is buffered (the size
  bound caps memory); replies larger than the peer's window wait for WINDOW_UPDATE.
- A stream reset by the client (cancelled, deadline passed) is forgotten and its pending
  handler cancelled. The server does not enforce ``grpc-timeout`` itself: the client does,
  by resetting the stream, and predictions run to completion either way.
- :meth:`UnaryServer.stop` sends GOAWAY, lets calls in flight finish for ``grace``
  seconds, then closes the connections.
- HTTP/2 as RFC 9113 asks of a server, whatever a client sends (h2spec passes every case:
  tests/serving/test_grpc_conformance.py): a malformed header block (:mod:`.http2_request`)
  resets its stream with PROTOCOL_ERROR; a stream past the advertised
  ``MAX_CONCURRENT_STREAMS`` is refused with REFUSED_STREAM (the client may retry it); a
  stream that a frame later in the same read closed (a reset, a window overflow) is left
  unanswered and the connection up. h2 keeps the windows (FLOW_CONTROL_ERROR above
  2^31-1), the stream states, and ``content-length`` against the DATA received
  (PROTOCOL_ERROR, as a connection error: §5.4.1 allows it, and no gRPC client sends one).
- Cleartext only (h2c with prior knowledge, as ``add_insecure_port``); TLS belongs to the
  mesh or ingress in front.

The server, its connections and their streams share the connection's state (h2's state
machine, flow-control windows, GOAWAY), which stays private here; a request's headers are
read by :mod:`.http2_request`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

from modelfactory.inference.protocol.grpc_messages import (
    ACCEPT_ENCODING,
    ENCODINGS,
    GrpcError,
    StatusCode,
    declared_length,
    frame_message,
    percent_encode,
    read_message,
    too_large,
)
from modelfactory.inference.protocol.http2_request import (
    MalformedRequest,
    check_trailers,
    read_request_headers,
)

# GrpcError and StatusCode are the handlers' (grpc_messages keeps them beside the messages).
__all__ = ["Call", "GrpcError", "StatusCode", "UnaryMethod", "UnaryServer"]

log = logging.getLogger("modelfactory.serving.grpc")


@dataclass
class Call:
    """What a handler may read about its call, and the trailing metadata it may add."""

    method: str
    metadata: dict[str, str]  # request headers other than HTTP/2 pseudo-headers, keys lower-case
    trailing_metadata: list[tuple[str, str]] = field(default_factory=list)


Reply = Any  # a protobuf message: anything with SerializeToString()


@dataclass(frozen=True)
class UnaryMethod:
    parse: Callable[[bytes], Any]  # e.g. ModelInferRequest.FromString
    handle: Callable[[Any, Call], Reply | Awaitable[Reply]]


# h2's header validation and normalisation are off (their cost per call: ADR 0001): the
# requests' headers are checked once, as they are read (http2_request); the replies' are ours.
_H2_CONFIG = h2.config.H2Configuration(
    client_side=False,
    header_encoding="latin-1",
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
)
MAX_CONCURRENT_STREAMS = 100  # advertised in SETTINGS; calls past it are refused (REFUSED_STREAM)
MAX_HEADER_LIST_SIZE = 64 << 10
_OK_HEADERS = (
    (":status", "200"),
    ("content-type", "application/grpc"),
    ("grpc-accept-encoding", ACCEPT_ENCODING),
)
_NOT_GRPC = "this port serves gRPC (POST, content-type application/grpc): the v2 inference protocol"


def _local_settings(max_concurrent_streams: int) -> h2.settings.Settings:
    return h2.settings.Settings(
        client=False,
        initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_concurrent_streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
        },
    )


def _server_connection() -> h2.connection.H2Connection:
    connection = h2.connection.H2Connection(_H2_CONFIG)
    connection.local_settings = _local_settings(MAX_CONCURRENT_STREAMS)
    connection.initiate_connection()
    # h2 answers a stream past the advertised limit with a connection error, losing every
    # call on the connection. RFC 9113 §5.1.2 asks for a stream error, and REFUSED_STREAM
    # tells the client that call is safe to retry: the connection refuses it itself, so h2's
    # own limit is lifted once the advertised one has been sent.
    connection.local_settings = _local_settings(2**31 - 1)
    return connection


# What h2 raises when asked to send on a stream it has closed (StreamClosedError) or already
# forgotten (a later stream was opened meanwhile: StreamIDTooLowError).
_STREAM_GONE = (h2.exceptions.NoSuchStreamError, h2.exceptions.StreamIDTooLowError)


class _Stream:
    __slots__ = ("call", "body", "answered", "task", "outgoing", "trailers", "not_grpc")

    def __init__(self, call: Call):
        self.call = call
        self.body = bytearray()
        self.answered = False  # the reply (or a refusal) is decided; later data is ignored
        self.task: asyncio.Task | None = None
        self.outgoing = b""  # reply bytes waiting for the peer's flow-control window
        self.trailers: list[tuple[str, str]] | None = None  # None: the last DATA ends the stream
        # An HTTP status for a request that is not gRPC, answered once the request has ended.
        self.not_grpc: str | None = None


class _Connection(asyncio.Protocol):
    def __init__(self, server: UnaryServer):
        self.server = server
        self.h2 = _server_connection()
        self.streams: dict[int, _Stream] = {}
        self.transport: asyncio.Transport | None = None
        self.idle = asyncio.Event()  # no stream in flight (stop() waits for it)
        self.idle.set()
        self.closing = False  # a GOAWAY either way: new calls are refused
        self.close_when_idle = False  # our GOAWAY: closed once the calls in flight are answered

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.server.connections.add(self)
        self._flush()  # our SETTINGS

    def connection_lost(self, exc) -> None:
        self.server.connections.discard(self)
        self._abandon_calls()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:  # h2 has queued a GOAWAY naming the error
            log.debug("closing a gRPC connection on an HTTP/2 protocol error: %s", exc)
            self._flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            try:
                self._on(event)
            except _STREAM_GONE as exc:
                # h2 read the whole buffer first: a frame later in it closed this stream
                # (the client's RST_STREAM, or h2's on a stream error). It needs no answer.
                self._forget(exc.stream_id, cancel=True)
            except h2.exceptions.ProtocolError:
                # The same, for the connection: the client's GOAWAY later in this read.
                self._abandon_calls()
                break
        self._flush()

    def _on(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            self._data(event)
        elif isinstance(event, h2.events.RequestReceived):
            self._request(event)
        elif isinstance(event, h2.events.StreamEnded):
            self._ended(event.stream_id)
        elif isinstance(event, h2.events.WindowUpdated):
            self._window_opened(event.stream_id)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self._window_opened(0)  # a larger initial window opens every stream's
        elif isinstance(event, h2.events.StreamReset):
            self._forget(event.stream_id, cancel=True)
        elif isinstance(event, h2.events.TrailersReceived):
            self._trailers(event)
        elif isinstance(event, h2.events.ConnectionTerminated):
            # The client's GOAWAY. h2 sends nothing after it, replies included, so the calls
            # in flight are dropped; the client closes the connection (closing it here could
            # reset frames it is still sending, which then never reach it).
            self.closing = True
            self._abandon_calls()

    # --- requests ---------------------------------------------------------------------------
    def _request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        if self.closing or len(self.streams) >= MAX_CONCURRENT_STREAMS:
            # Opened after our GOAWAY, or past the advertised limit: the client may retry it.
            self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        try:
            # The connection decodes header names and values to str (header_encoding).
            head = read_request_headers(event.headers)  # type: ignore[arg-type]
        except MalformedRequest as exc:
            log.debug("gRPC stream %d reset: malformed request: %s", stream_id, exc)
            self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
            return
        call = Call(head.path, head.fields)
        stream = self.streams[stream_id] = _Stream(call)
        self.idle.clear()
        if head.method != "POST":
            stream.not_grpc = "405"
        elif not head.fields.get("content-type", "").startswith("application/grpc"):
            stream.not_grpc = "415"
        elif head.path not in self.server.methods:
            self._refuse(
                stream_id,
                stream,
                GrpcError(StatusCode.UNIMPLEMENTED, f"method {head.path} is not served here"),
            )
        elif head.fields.get("grpc-encoding", "identity") not in ENCODINGS:
            self._refuse(
                stream_id,
                stream,
                GrpcError(
                    StatusCode.UNIMPLEMENTED,
                    f"grpc-encoding {head.fields['grpc-encoding']!r} is not supported "
                    f"(accepted: {ACCEPT_ENCODING})",
                ),
            )

    def _trailers(self, event: h2.events.TrailersReceived) -> None:
        try:
            check_trailers(event.headers)  # type: ignore[arg-type]
        except MalformedRequest as exc:
            log.debug("gRPC stream %d reset: malformed trailers: %s", event.stream_id, exc)
            self.h2.reset_stream(event.stream_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
            self._forget(event.stream_id, cancel=True)

    def _data(self, event: h2.events.DataReceived) -> None:
        self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        stream = self.streams.get(event.stream_id)
        if stream is None or stream.answered or stream.not_grpc:
            return
        stream.body += event.data
        limit = self.server.max_receive_bytes
        declared = declared_length(stream.body)
        if len(stream.body) > limit + 5 or (declared is not None and declared > limit):
            size = max(declared or 0, len(stream.body) - 5)
            self._refuse(event.stream_id, stream, too_large(size, limit))
            stream.body = bytearray()

    def _ended(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None or stream.answered:
            return
        stream.answered = True
        if stream.not_grpc:
            self._send_not_grpc(stream_id, stream, stream.not_grpc)
            return
        method = self.server.methods[stream.call.method]
        try:
            message = self._parse(method, stream)
            reply = method.handle(message, stream.call)
        except Exception as exc:  # a GrpcError, or a bug: the call ends with a status either way
            self._fail(stream_id, stream, exc)
            return
        if inspect.isawaitable(reply):
            # The awaitable runs as the task itself: cancelled before it starts (the client reset
            # the call in the same read), it is still closed properly.
            stream.task = asyncio.ensure_future(reply)
            stream.task.add_done_callback(partial(self._finished, stream_id, stream))
        else:
            self._reply(stream_id, stream, reply)

    def _parse(self, method: UnaryMethod, stream: _Stream):
        encoding = stream.call.metadata.get("grpc-encoding", "identity")
        payload = read_message(stream.body, encoding, self.server.max_receive_bytes)
        try:
            return method.parse(payload)
        except Exception as exc:  # not a message of the method's type: the caller's fault
            raise GrpcError(
                StatusCode.INVALID_ARGUMENT,
                f"the request is not a valid message for {stream.call.method}: {exc}",
            ) from None

    def _finished(self, stream_id: int, stream: _Stream, task: asyncio.Future) -> None:
        failure = None if task.cancelled() else task.exception()
        if task.cancelled() or self.streams.get(stream_id) is not stream:
            return  # reset or closed meanwhile
        stream.task = None
        try:
            if failure is not None:
                self._fail(stream_id, stream, failure)
            else:
                self._reply(stream_id, stream, task.result())
        except _STREAM_GONE:
            self._forget(stream_id, cancel=False)
        self._flush()

    # --- replies ----------------------------------------------------------------------------
    def _reply(self, stream_id: int, stream: _Stream, reply: Reply) -> None:
        self.h2.send_headers(stream_id, _OK_HEADERS)
        stream.outgoing = frame_message(reply.SerializeToString())
        stream.trailers = [("grpc-status", "0"), *stream.call.trailing_metadata]
        self._send_pending(stream_id, stream)

    def _fail(self, stream_id: int, stream: _Stream, exc: BaseException) -> None:
        if not isinstance(exc, GrpcError):
            log.error("gRPC %s failed", stream.call.method, exc_info=exc)
            exc = GrpcError(StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")
        self._refuse(stream_id, stream, exc)

    def _refuse(self, stream_id: int, stream: _Stream, error: GrpcError) -> None:
        """A trailers-only reply: one HEADERS frame with the status, ending the stream."""
        stream.answered = True
        self.h2.send_headers(
            stream_id,
            [
                *_OK_HEADERS,
                ("grpc-status", str(int(error.code))),
                ("grpc-message", percent_encode(error.message)),
                *stream.call.trailing_metadata,
            ],
            end_stream=True,
        )
        self._done(stream_id)

    def _send_not_grpc(self, stream_id: int, stream: _Stream, status: str) -> None:
        """HTTP 405 or 415 with a line saying what this port serves (gRPC's HTTP/2 protocol
        asks for 415, so that an HTTP client never takes a gRPC status for success)."""
        body = f"{_NOT_GRPC}\n".encode()
        headers = [
            (":status", status),
            ("content-type", "text/plain; charset=utf-8"),
            ("content-length", str(len(body))),
        ]
        self.h2.send_headers(stream_id, headers + ([("allow", "POST")] if status == "405" else []))
        stream.outgoing = body
        self._send_pending(stream_id, stream)

    def _send_pending(self, stream_id: int, stream: _Stream) -> None:
        """Send what the peer's window allows; the trailers, if any, follow the last byte."""
        data, sent = stream.outgoing, 0
        while sent < len(data):
            room = min(
                self.h2.local_flow_control_window(stream_id), self.h2.max_outbound_frame_size
            )
            if room <= 0:
                break
            end = sent + room
            last = end >= len(data)
            self.h2.send_data(
                stream_id, data[sent:end], end_stream=last and stream.trailers is None
            )
            sent = end
        stream.outgoing = data[sent:]
        if not stream.outgoing:
            if stream.trailers is not None:
                self.h2.send_headers(stream_id, stream.trailers, end_stream=True)
            self._done(stream_id)

    def _window_opened(self, stream_id: int) -> None:
        waiting = (
            self.streams.items() if stream_id == 0 else [(stream_id, self.streams.get(stream_id))]
        )
        for sid, stream in list(waiting):
            if stream is not None and stream.outgoing:
                self._send_pending(sid, stream)

    def _done(self, stream_id: int) -> None:
        """The reply is complete; if the client is still sending, tell it to stop."""
        stream = self.streams.pop(stream_id, None)
        if stream is not None and self.h2.streams.get(stream_id) is not None:
            h2_stream = self.h2.streams[stream_id]
            if not h2_stream.closed:
                self.h2.reset_stream(stream_id)  # NO_ERROR: "the reply is complete, stop sending"
        if not self.streams:
            self._idle()

    def _forget(self, stream_id: int, cancel: bool) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is not None and cancel and stream.task is not None:
            stream.task.cancel()
        if not self.streams:
            self._idle()

    def _abandon_calls(self) -> None:
        for stream in self.streams.values():
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()
        self._idle()

    def _idle(self) -> None:
        self.idle.set()
        if self.close_when_idle and self.transport is not None:
            self._flush()
            self.transport.close()

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def goaway(self) -> None:
        """Tell the client to open no more calls here; the ones it has opened are answered.

        h2's ``close_connection`` would refuse to send anything after its GOAWAY, in-flight
        replies included, so the frame is written directly and h2's state left open.
        """
        self.closing = self.close_when_idle = True
        last = self.h2.highest_inbound_stream_id
        self._flush()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(GoAwayFrame(0, last_stream_id=last, error_code=0).serialize())
        if not self.streams and self.transport is not None:
            self.transport.close()


class UnaryServer:
    """Serves ``methods`` on ``host:port``; see the module docstring for what it does."""

    def __init__(self, methods: Mapping[str, UnaryMethod], max_receive_bytes: int = 4 << 20):
        self.methods = dict(methods)
        self.max_receive_bytes = max_receive_bytes
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int, reuse_port: bool = True) -> None:
        """Listen on ``host:port``; with ``reuse_port`` several processes share it (one per
        worker)."""
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Connection(self), host, port, reuse_port=reuse_port
        )

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the gRPC server is not started")
        return self._server.sockets[0].getsockname()[1]

    async def stop(self, grace: float = 2.0) -> None:
        """Stop accepting; GOAWAY to every client; calls in flight get ``grace`` seconds."""
        if self._server is not None:
            self._server.close()
        connections = list(self.connections)
        for connection in connections:
            connection.goaway()
        if connections:
            await asyncio.wait(
                [asyncio.ensure_future(c.idle.wait()) for c in connections], timeout=grace
            )
        for connection in connections:
            if connection.transport is not None:
                connection.transport.close()
