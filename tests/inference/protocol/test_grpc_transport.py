"""The unary gRPC server (serving/grpc_transport.py) against grpcio's own client.

grpcio's client is grpc core, the reference HTTP/2 and gRPC implementation: what it accepts
here (flow control, compression, deadlines, trailers, percent-encoded messages) is what
Triton's, KServe's and every other grpc-core-based client will. The service-level tests
(test_service_integration.py) drive the same server through tritonclient inside
``bentoml serve``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import grpc
import httpx
import pytest
from google.protobuf.wrappers_pb2 import BytesValue, StringValue

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


def test_non_grpc_requests_get_http_415(served):
    target, *_ = served
    with httpx.Client(http1=False, http2=True) as client:
        answer = client.post(
            f"http://{target}/t.T/Echo", content=b"{}", headers={"content-type": "application/json"}
        )
    assert answer.status_code == 415


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
