"""The unary gRPC server (serving/grpc_transport.py) against grpcio's own client.

grpcio's client is grpc core, the reference HTTP/2 and gRPC implementation: what it accepts
here (flow control, compression, deadlines, trailers, percent-encoded messages) is what
Triton's, KServe's and every other grpc-core-based client will. The service-level tests
(test_service_integration.py) drive the same server through tritonclient inside
``bentoml serve``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
import time

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx
import pytest
from google.protobuf.wrappers_pb2 import BytesValue, StringValue
from hyperframe.frame import PingFrame

from modelfactory.inference.protocol.grpc_transport import (
    Call,
    GrpcError,
    StatusCode,
    UnaryMethod,
    UnaryServer,
)

LIMIT = 1 << 20  # 1 MiB requests


class Handlers:
    def __init__(self):
        self.cancelled = threading.Event()
        self.started = threading.Event()

    def echo(self, request: StringValue, call: Call):
        call.trailing_metadata.append(("x-seen-key", call.metadata.get("x-request-key", "")))
        return StringValue(value=f"{call.method}:{request.value}")

    def refuse(self, request, call: Call):
        raise GrpcError(StatusCode.INVALID_ARGUMENT, f"input 'âge' is wrong: {request.value}")

    def broken(self, request, call: Call):
        raise KeyError("a bug")

    def large(self, request: StringValue, call: Call):
        return BytesValue(value=bytes(range(256)) * (int(request.value) // 256))

    def size(self, request: BytesValue, call: Call):
        return StringValue(value=str(len(request.value)))

    def slow(self, request, call: Call):
        async def later():
            self.started.set()
            try:
                await asyncio.sleep(float(request.value))
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
            return StringValue(value="done")

        return later()


@pytest.fixture
def served():
    """A UnaryServer on its own event loop thread; yields (target, handlers, server, loop)."""
    handlers = Handlers()
    methods = {
        "/t.T/Echo": UnaryMethod(StringValue.FromString, handlers.echo),
        "/t.T/Refuse": UnaryMethod(StringValue.FromString, handlers.refuse),
        "/t.T/Broken": UnaryMethod(StringValue.FromString, handlers.broken),
        "/t.T/Large": UnaryMethod(StringValue.FromString, handlers.large),
        "/t.T/Size": UnaryMethod(BytesValue.FromString, handlers.size),
        "/t.T/Slow": UnaryMethod(StringValue.FromString, handlers.slow),
    }
    server = UnaryServer(methods, max_receive_bytes=LIMIT)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start("127.0.0.1", 0), loop).result(5)
    yield f"127.0.0.1:{server.port}", handlers, server, loop
    asyncio.run_coroutine_threadsafe(server.stop(0.5), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def unary(channel, method, request_type, reply_type):
    return channel.unary_unary(
        method,
        request_serializer=request_type.SerializeToString,
        response_deserializer=reply_type.FromString,
    )


def test_a_call_carries_metadata_in_and_trailing_metadata_out(served):
    target, *_ = served
    with grpc.insecure_channel(target) as channel:
        echo = unary(channel, "/t.T/Echo", StringValue, StringValue)
        reply, call = echo.with_call(StringValue(value="hi"), metadata=[("x-request-key", "k1")])
    assert reply.value == "/t.T/Echo:hi"
    assert call.code() == grpc.StatusCode.OK
    assert ("x-seen-key", "k1") in call.trailing_metadata()


def test_errors_reach_the_client_with_their_code_and_message(served):
    target, *_ = served
    with grpc.insecure_channel(target) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            unary(channel, "/t.T/Refuse", StringValue, StringValue)(StringValue(value="-1 %"))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # non-ASCII and '%' survive grpc-message's percent-encoding
        assert refused.value.details() == "input 'âge' is wrong: -1 %"

        with pytest.raises(grpc.RpcError) as unknown:
            unary(channel, "/t.T/Nope", StringValue, StringValue)(StringValue())
        assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "/t.T/Nope" in unknown.value.details()

        with pytest.raises(grpc.RpcError) as garbage:  # bytes that are no StringValue
            channel.unary_unary("/t.T/Echo")(b"\xff\xff\xff")
        assert garbage.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a valid message for /t.T/Echo" in garbage.value.details()

        with pytest.raises(grpc.RpcError) as bug:
            unary(channel, "/t.T/Broken", StringValue, StringValue)(StringValue())
        assert bug.value.code() == grpc.StatusCode.INTERNAL
        # the connection survives all three
        assert unary(channel, "/t.T/Echo", StringValue, StringValue)(StringValue(value="x")).value


def test_many_calls_in_flight_on_one_connection_each_get_their_own_reply(served):
    target, *_ = served
    with grpc.insecure_channel(target) as channel:
        echo = unary(channel, "/t.T/Echo", StringValue, StringValue)
        slow = unary(channel, "/t.T/Slow", StringValue, StringValue)
        pending = [slow.future(StringValue(value="0.2"))]
        pending += [echo.future(StringValue(value=str(i))) for i in range(300)]
        replies = [f.result(timeout=10).value for f in pending]
    assert replies[0] == "done"
    assert replies[1:] == [f"/t.T/Echo:{i}" for i in range(300)]


def test_replies_larger_than_the_flow_control_window_arrive_whole(served):
    target, *_ = served
    size = 3 << 20  # 3 MiB: far past HTTP/2's initial 64 KiB window
    with grpc.insecure_channel(
        target, options=[("grpc.max_receive_message_length", 8 << 20)]
    ) as channel:
        large = unary(channel, "/t.T/Large", StringValue, BytesValue)
        replies = [
            f.result(10) for f in [large.future(StringValue(value=str(size))) for _ in range(3)]
        ]
    assert all(r.value == bytes(range(256)) * (size // 256) for r in replies)


def test_a_request_over_the_limit_is_refused_and_the_connection_keeps_working(served):
    target, *_ = served
    with grpc.insecure_channel(
        target, options=[("grpc.max_send_message_length", 64 << 20)]
    ) as channel:
        size = unary(channel, "/t.T/Size", BytesValue, StringValue)
        assert size(BytesValue(value=b"x" * (LIMIT - 100))).value == str(LIMIT - 100)
        with pytest.raises(grpc.RpcError) as refused:
            size(BytesValue(value=b"x" * (20 << 20)))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"over the limit of {LIMIT} bytes" in refused.value.details()
        assert size(BytesValue(value=b"abc")).value == "3"


@pytest.mark.parametrize("compression", [grpc.Compression.Gzip, grpc.Compression.Deflate])
def test_compressed_requests_are_read_and_their_inflated_size_is_bounded(served, compression):
    target, *_ = served
    with grpc.insecure_channel(target) as channel:
        size = unary(channel, "/t.T/Size", BytesValue, StringValue)
        small = size(BytesValue(value=b"y" * 5000), compression=compression)
        assert small.value == "5000"
        # 16 MiB of zeros compress to ~16 KiB: under the limit on the wire, far over it inflated
        with pytest.raises(grpc.RpcError) as bomb:
            size(BytesValue(value=bytes(16 << 20)), compression=compression)
        assert bomb.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "inflated request message" in bomb.value.details()


def test_an_unknown_encoding_is_refused_naming_the_accepted_ones(served):
    target, *_ = served
    # grpcio only sends encodings it has; speak HTTP/2 directly to send another one.
    with httpx.Client(http1=False, http2=True) as client:
        answer = client.post(
            f"http://{target}/t.T/Echo",
            content=b"\x01\x00\x00\x00\x01z",
            headers={"content-type": "application/grpc", "te": "trailers", "grpc-encoding": "br"},
        )
    assert answer.headers["grpc-status"] == str(int(StatusCode.UNIMPLEMENTED))
    assert "identity,gzip,deflate" in answer.headers["grpc-message"]


def test_non_grpc_requests_get_http_415_saying_what_the_port_serves(served):
    target, *_ = served
    with httpx.Client(http1=False, http2=True) as client:
        answer = client.post(
            f"http://{target}/t.T/Echo", content=b"{}", headers={"content-type": "application/json"}
        )
    assert answer.status_code == 415
    assert "this port serves gRPC (POST, content-type application/grpc)" in answer.text


def test_a_deadline_cancels_the_waiting_handler_and_the_server_carries_on(served):
    target, handlers, *_ = served
    with grpc.insecure_channel(target) as channel:
        with pytest.raises(grpc.RpcError) as late:
            unary(channel, "/t.T/Slow", StringValue, StringValue)(
                StringValue(value="5"), timeout=0.3
            )
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert handlers.cancelled.wait(2), "the reset stream's handler was not cancelled"
        assert unary(channel, "/t.T/Echo", StringValue, StringValue)(StringValue(value="z")).value


def _send_and_read_until_closed(target: str, data: bytes) -> bytes:
    host, port = target.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(data)
        received = b""
        while chunk := raw.recv(65536):  # returns b"" once the server has closed
            received += chunk
    return received


def _frame_types(data: bytes) -> list[int]:
    types = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        types.append(data[3])
        data = data[9 + length :]
    return types


def test_garbage_on_a_connection_closes_it_without_harming_others(served):
    target, *_ = served
    # Not HTTP/2 at all: the connection is closed.
    _send_and_read_until_closed(target, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    # HTTP/2 that breaks the protocol (DATA on stream 0): GOAWAY (type 7), then closed.
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    bad_data = b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x"
    assert 7 in _frame_types(_send_and_read_until_closed(target, preface + bad_data))
    with grpc.insecure_channel(target) as channel:
        assert unary(channel, "/t.T/Echo", StringValue, StringValue)(StringValue(value="ok")).value


def test_stop_lets_calls_in_flight_finish(served):
    target, handlers, server, loop = served
    with grpc.insecure_channel(target) as channel:
        slow = unary(channel, "/t.T/Slow", StringValue, StringValue).future(
            StringValue(value="0.5")
        )
        assert handlers.started.wait(5)
        stopping = asyncio.run_coroutine_threadsafe(server.stop(grace=5), loop)
        assert slow.result(timeout=5).value == "done"
        stopping.result(5)
    started = time.monotonic()
    with grpc.insecure_channel(target) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            unary(channel, "/t.T/Echo", StringValue, StringValue)(StringValue(value="x"), timeout=2)
    assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert time.monotonic() - started < 5


class RawClient:
    """An HTTP/2 client that sends what it is told, malformed headers included (h2 with its own
    checks off): what grpcio's client never sends, a conformance suite or a broken peer does."""

    def __init__(self, target: str):
        host, port = target.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=True,
                header_encoding="utf-8",
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
                validate_inbound_headers=False,
            )
        )
        self.h2.initiate_connection()
        self.headers: dict[int, dict[str, str]] = {}
        self.body: dict[int, bytes] = {}
        self.ended: set[int] = set()
        self.reset: dict[int, int] = {}  # stream -> error code
        self.closed = False

    def call(self, path: str, message: bytes, headers=(), end_with_reset: bool = False) -> int:
        """A unary gRPC call (queued; ``flush`` sends)."""
        stream_id = self.h2.get_next_available_stream_id()
        base = [(":method", "POST"), (":scheme", "http"), (":path", path)]
        base += [(":authority", "t"), ("te", "trailers"), ("content-type", "application/grpc")]
        self.h2.send_headers(stream_id, [*base, *headers])
        self.h2.send_data(stream_id, b"\0" + struct.pack(">I", len(message)) + message, True)
        if end_with_reset:
            self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        return stream_id

    def get(self, path: str) -> int:
        stream_id = self.h2.get_next_available_stream_id()
        base = [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", "t")]
        self.h2.send_headers(stream_id, base, end_stream=True)
        return stream_id

    def flush(self) -> None:
        self.sock.sendall(self.h2.data_to_send())

    def finished(self, stream_id: int) -> bool:
        return stream_id in self.ended or stream_id in self.reset

    def until(self, *stream_ids: int) -> None:
        """Read until each stream is answered or reset (or the server closes)."""
        self.flush()
        while not self.closed and not all(self.finished(s) for s in stream_ids):
            data = self.sock.recv(65536)
            if not data:
                self.closed = True
                break
            for event in self.h2.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                    self.headers.setdefault(event.stream_id, {}).update(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    self.body[event.stream_id] = self.body.get(event.stream_id, b"") + event.data
                    self.h2.acknowledge_received_data(len(event.data), event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    self.ended.add(event.stream_id)
                elif isinstance(event, h2.events.StreamReset):
                    self.reset[event.stream_id] = event.error_code
            self.flush()

    def reply(self, stream_id: int) -> str:
        assert self.headers[stream_id]["grpc-status"] == "0", self.headers[stream_id]
        return StringValue.FromString(self.body[stream_id][5:]).value

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(served):
    clients: list[RawClient] = []

    def connect() -> RawClient:
        clients.append(RawClient(served[0]))
        return clients[-1]

    yield connect
    for client in clients:
        client.close()


@pytest.mark.parametrize(
    "malformed",
    [
        [("X-Request-Key", "upper case")],
        [("connection", "keep-alive")],
        [("te", "gzip")],
        [(":path", "/t.T/Echo")],  # a second :path, after the regular fields
        [("x-note", "line\r\nbreak")],
    ],
)
def test_a_malformed_request_resets_its_own_stream_and_the_calls_beside_it_are_answered(
    raw, malformed
):
    client = raw()
    ok_before = client.call("/t.T/Echo", StringValue(value="before").SerializeToString())
    bad = client.call("/t.T/Echo", StringValue(value="bad").SerializeToString(), malformed)
    ok_after = client.call("/t.T/Echo", StringValue(value="after").SerializeToString())
    client.until(ok_before, bad, ok_after)
    assert client.reset.get(bad) == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert client.reply(ok_before) == "/t.T/Echo:before"
    assert client.reply(ok_after) == "/t.T/Echo:after"


def test_calls_past_the_advertised_stream_limit_are_refused_and_succeed_when_retried(raw):
    from modelfactory.inference.protocol.grpc_transport import MAX_CONCURRENT_STREAMS

    client = raw()
    # Sent before the server's SETTINGS are read, so the client does not hold the extra call back.
    slow = StringValue(value="0.3").SerializeToString()
    calls = [client.call("/t.T/Slow", slow) for _ in range(MAX_CONCURRENT_STREAMS + 1)]
    client.until(*calls)
    assert [client.reset.get(c) for c in calls].count(h2.errors.ErrorCodes.REFUSED_STREAM) == 1
    assert client.reset.get(calls[-1]) == h2.errors.ErrorCodes.REFUSED_STREAM
    assert all(client.reply(c) == "done" for c in calls[:-1])
    retried = client.call("/t.T/Slow", slow)
    client.until(retried)
    assert client.reply(retried) == "done"


def test_a_call_the_client_cancels_in_the_same_write_leaves_the_connection_serving(raw, served):
    client = raw()
    cancelled = client.call("/t.T/Echo", StringValue(value="no").SerializeToString(), (), True)
    client.flush()
    served_after = client.call("/t.T/Echo", StringValue(value="still here").SerializeToString())
    client.until(served_after)
    assert client.reply(served_after) == "/t.T/Echo:still here"
    assert cancelled not in client.headers and not client.closed


def test_a_plain_http_request_is_told_what_the_port_serves(raw):
    client = raw()
    get = client.get("/")
    client.until(get)
    assert client.headers[get][":status"] == "405" and client.headers[get]["allow"] == "POST"
    assert b"this port serves gRPC" in client.body[get]


def test_a_client_goaway_behind_a_call_in_the_same_write_breaks_nothing(raw, served, caplog):
    """h2 sends nothing after a client's GOAWAY, the call's reply included: the call is dropped,
    the connection is the client's to close, and the server serves the next one."""
    client = raw()
    client.call("/t.T/Echo", StringValue(value="late").SerializeToString())
    client.h2.close_connection()
    client.flush()
    client.sock.sendall(PingFrame(0, opaque_data=b"goodbye!").serialize())  # one frame too many
    client.until()
    while client.sock.recv(65536):  # the server closes after the frame past the GOAWAY
        pass
    with grpc.insecure_channel(served[0]) as channel:
        assert unary(channel, "/t.T/Echo", StringValue, StringValue)(StringValue(value="x")).value
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
