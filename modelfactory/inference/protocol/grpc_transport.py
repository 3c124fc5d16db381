"""Unary gRPC over HTTP/2 (cleartext, prior knowledge) on the running asyncio event loop.

The v2 gRPC service (:mod:`modelfactory.inference.protocol.grpc_service`) runs beside BentoML's
HTTP server in each worker, on the worker's own loop. The loop reads the socket itself, as
uvicorn does for HTTP; the HTTP/2 framing, HPACK, flow control and stream states are ``h2``'s.
Why not grpcio's ``grpc.aio`` server (its calls cross threads several times): ADR 0001,
docs/adr/0001-grpc-on-h2.md.

What a gRPC server owes its clients, and where it is done here:

- Only unary methods (``methods``: path -> :class:`UnaryMethod`); other paths answer
  UNIMPLEMENTED, a non-gRPC content type HTTP 415.
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
- Cleartext only (h2c with prior knowledge, as ``add_insecure_port``); TLS belongs to the
  mesh or ingress in front.

One module of about 450 lines: the server, its connections and their streams share the
connection's state (h2's state machine, flow-control windows, GOAWAY), which stays private here.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import struct
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
from hyperframe.frame import GoAwayFrame

log = logging.getLogger("modelfactory.serving.grpc")


class StatusCode(enum.IntEnum):
    """gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class GrpcError(Exception):
    """Raised by a handler to end its call with ``code`` and ``message``."""

    def __init__(self, code: StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


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


ENCODINGS = {"identity": None, "gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_ACCEPT_ENCODING = ",".join(ENCODINGS)
# h2's header validation and normalisation are off (their cost per call: ADR 0001). The
# requests' headers are only read for :method, :path, content-type, grpc-encoding and the
# metadata the servicer names, each checked here; the replies' headers are our own.
_H2_CONFIG = h2.config.H2Configuration(
    client_side=False,
    header_encoding="latin-1",
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
)
_OK_HEADERS = (
    (":status", "200"),
    ("content-type", "application/grpc"),
    ("grpc-accept-encoding", _ACCEPT_ENCODING),
)


class _Stream:
    __slots__ = ("call", "body", "answered", "task", "outgoing", "trailers")

    def __init__(self, call: Call):
        self.call = call
        self.body = bytearray()
        self.answered = False  # the reply (or a refusal) is decided; later data is ignored
        self.task: asyncio.Task | None = None
        self.outgoing = b""  # reply bytes waiting for the peer's flow-control window
        self.trailers: list[tuple[str, str]] = []


class _Connection(asyncio.Protocol):
    def __init__(self, server: UnaryServer):
        self.server = server
        self.h2 = h2.connection.H2Connection(_H2_CONFIG)
        self.streams: dict[int, _Stream] = {}
        self.transport: asyncio.Transport | None = None
        self.idle = asyncio.Event()  # no stream in flight (stop() waits for it)
        self.idle.set()
        self.closing = False  # GOAWAY sent: new calls are refused, the connection closes when idle

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.server.connections.add(self)
        self.h2.initiate_connection()  # h2's settings: 100 streams in flight, 64 KiB of headers
        self._flush()

    def connection_lost(self, exc) -> None:
        self.server.connections.discard(self)
        for stream in self.streams.values():
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()
        self.idle.set()

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
            elif isinstance(event, h2.events.ConnectionTerminated):
                # The client's GOAWAY: it opens no more calls; answer the ones it has opened.
                self.closing = True
                if not self.streams:
                    self._idle()
                    return
        self._flush()

    # --- requests ---------------------------------------------------------------------------
    def _request(self, event: h2.events.RequestReceived) -> None:
        # The connection decodes header names and values to str (header_encoding).
        headers: dict[str, str] = dict(event.headers)  # type: ignore[arg-type]
        path = headers.get(":path", "")
        call = Call(path, {k: v for k, v in headers.items() if not k.startswith(":")})
        if self.closing:  # opened after our GOAWAY: the client may retry it elsewhere
            self.h2.reset_stream(event.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        stream = self.streams[event.stream_id] = _Stream(call)
        self.idle.clear()
        if headers.get(":method") != "POST" or not call.metadata.get("content-type", "").startswith(
            "application/grpc"
        ):
            self._send_http_error(event.stream_id, stream, "415")
        elif path not in self.server.methods:
            self._refuse(
                event.stream_id,
                stream,
                GrpcError(StatusCode.UNIMPLEMENTED, f"method {path} is not served here"),
            )
        elif call.metadata.get("grpc-encoding", "identity") not in ENCODINGS:
            self._refuse(
                event.stream_id,
                stream,
                GrpcError(
                    StatusCode.UNIMPLEMENTED,
                    f"grpc-encoding {call.metadata['grpc-encoding']!r} is not supported "
                    f"(accepted: {_ACCEPT_ENCODING})",
                ),
            )

    def _data(self, event: h2.events.DataReceived) -> None:
        self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        stream = self.streams.get(event.stream_id)
        if stream is None or stream.answered:
            return
        stream.body += event.data
        limit = self.server.max_receive_bytes
        declared = _declared_length(stream.body)
        if len(stream.body) > limit + 5 or (declared is not None and declared > limit):
            size = max(declared or 0, len(stream.body) - 5)
            self._refuse(event.stream_id, stream, _too_large(size, limit))
            stream.body = bytearray()

    def _ended(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None or stream.answered:
            return
        stream.answered = True
        method = self.server.methods[stream.call.method]
        try:
            message = self._parse(method, stream)
            reply = method.handle(message, stream.call)
        except Exception as exc:  # a GrpcError, or a bug: the call ends with a status either way
            self._fail(stream_id, stream, exc)
            return
        if inspect.isawaitable(reply):
            stream.task = asyncio.ensure_future(self._finish_later(stream_id, stream, reply))
        else:
            self._reply(stream_id, stream, reply)

    def _parse(self, method: UnaryMethod, stream: _Stream):
        payload = self._message(stream)
        try:
            return method.parse(payload)
        except Exception as exc:  # not a message of the method's type: the caller's fault
            raise GrpcError(
                StatusCode.INVALID_ARGUMENT,
                f"the request is not a valid message for {stream.call.method}: {exc}",
            ) from None

    def _message(self, stream: _Stream) -> bytes:
        body = stream.body
        declared = _declared_length(body)
        if declared is None or len(body) != 5 + declared:
            raise GrpcError(
                StatusCode.INVALID_ARGUMENT,
                "a unary call carries exactly one length-prefixed message",
            )
        payload = bytes(body[5:])
        if not body[0]:
            return payload
        encoding = stream.call.metadata.get("grpc-encoding", "identity")
        wbits = ENCODINGS[encoding]
        if wbits is None:
            raise GrpcError(
                StatusCode.INVALID_ARGUMENT,
                "the message is flagged compressed but grpc-encoding is identity",
            )
        limit = self.server.max_receive_bytes
        inflate = zlib.decompressobj(wbits)
        try:
            message = inflate.decompress(payload, limit + 1)
        except zlib.error as exc:
            raise GrpcError(
                StatusCode.INVALID_ARGUMENT, f"the {encoding} message does not inflate: {exc}"
            ) from None
        if len(message) > limit:
            raise _too_large(len(message) + len(inflate.unconsumed_tail), limit, "inflated ")
        return message

    async def _finish_later(self, stream_id: int, stream: _Stream, reply: Awaitable) -> None:
        try:
            result = await reply
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self.streams.get(stream_id) is stream:
                self._fail(stream_id, stream, exc)
                self._flush()
            return
        if self.streams.get(stream_id) is stream:  # not reset or closed meanwhile
            stream.task = None
            self._reply(stream_id, stream, result)
            self._flush()

    # --- replies ----------------------------------------------------------------------------
    def _reply(self, stream_id: int, stream: _Stream, reply: Reply) -> None:
        message = reply.SerializeToString()
        self.h2.send_headers(stream_id, _OK_HEADERS)
        stream.outgoing = b"\0" + struct.pack(">I", len(message)) + message
        stream.trailers = [("grpc-status", "0"), *stream.call.trailing_metadata]
        self._send_pending(stream_id, stream)

    def _fail(self, stream_id: int, stream: _Stream, exc: Exception) -> None:
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
                ("grpc-message", _percent_encode(error.message)),
                *stream.call.trailing_metadata,
            ],
            end_stream=True,
        )
        self._done(stream_id)

    def _send_http_error(self, stream_id: int, stream: _Stream, status: str) -> None:
        stream.answered = True
        self.h2.send_headers(stream_id, [(":status", status)], end_stream=True)
        self._done(stream_id)

    def _send_pending(self, stream_id: int, stream: _Stream) -> None:
        """Send what the peer's window allows; the trailers follow the last byte."""
        data = stream.outgoing
        while data:
            room = min(
                self.h2.local_flow_control_window(stream_id), self.h2.max_outbound_frame_size
            )
            if room <= 0:
                break
            self.h2.send_data(stream_id, data[:room])
            data = data[room:]
        stream.outgoing = data
        if not data:
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

    def _idle(self) -> None:
        self.idle.set()
        if self.closing and self.transport is not None:
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
        self.closing = True
        last = self.h2.highest_inbound_stream_id
        self._flush()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(GoAwayFrame(0, last_stream_id=last, error_code=0).serialize())
        if not self.streams and self.transport is not None:
            self.transport.close()


def _declared_length(body: bytearray) -> int | None:
    return struct.unpack_from(">I", body, 1)[0] if len(body) >= 5 else None


def _too_large(size: int, limit: int, what: str = "") -> GrpcError:
    return GrpcError(
        StatusCode.RESOURCE_EXHAUSTED,
        f"{what}request message of {size} bytes is over the limit of {limit} bytes",
    )


def _percent_encode(message: str) -> str:
    """grpc-message encoding: UTF-8, then %XX for every byte outside printable ASCII and '%'."""
    return "".join(
        chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in message.encode()
    )


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
