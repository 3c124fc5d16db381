"""A request's header block is read as RFC 9113 §8.2-8.3 require, or refused naming the rule
(the gRPC transport resets that stream with PROTOCOL_ERROR: test_grpc_transport.py)."""

from __future__ import annotations

import pytest

from modelfactory.inference.protocol.http2_request import (
    MalformedRequest,
    check_trailers,
    read_request_headers,
)

GRPC_CALL = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/inference.GRPCInferenceService/ModelInfer"),
    (":authority", "127.0.0.1:8001"),
    ("te", "trailers"),
    ("content-type", "application/grpc"),
    ("user-agent", "grpc-python/1.66.0 grpc-c/42.0.0 (linux; chttp2)"),
    ("x-request-key", "customer-17"),
]


def without(name: str) -> list[tuple[str, str]]:
    return [(n, v) for n, v in GRPC_CALL if n != name]


def test_a_grpc_call_gives_its_method_path_and_metadata():
    head = read_request_headers(GRPC_CALL)
    assert (head.method, head.path) == ("POST", "/inference.GRPCInferenceService/ModelInfer")
    assert head.fields["x-request-key"] == "customer-17"
    assert not any(name.startswith(":") for name in head.fields)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (GRPC_CALL + [("X-Request-Key", "k")], "field name 'X-Request-Key' is empty, upper case"),
        (GRPC_CALL + [("x key", "k")], "field name 'x key'"),
        (GRPC_CALL + [("connection", "keep-alive")], "connection-specific field 'connection'"),
        (GRPC_CALL + [("transfer-encoding", "chunked")], "connection-specific field"),
        (GRPC_CALL + [("upgrade", "h2c")], "connection-specific field 'upgrade'"),
        (without("te") + [("te", "trailers, deflate")], "'te' may only be 'trailers'"),
        (GRPC_CALL + [("x-note", "two\r\nlines")], "the value of 'x-note' has NUL, CR, LF"),
        (GRPC_CALL + [("x-note", " padded")], "edge whitespace"),
        (GRPC_CALL + [("x-note", "a\0b")], "NUL"),
        ([(":foo", "bar"), *GRPC_CALL], "':foo' is not a request pseudo-header"),
        ([(":status", "200"), *GRPC_CALL], "':status' is not a request pseudo-header"),
        (GRPC_CALL + [(":path", "/again")], "pseudo-header ':path' after a regular field"),
        ([(":method", "POST"), *GRPC_CALL], "pseudo-header ':method' appears twice"),
        ([(":scheme", "https"), *GRPC_CALL], "pseudo-header ':scheme' appears twice"),
        (without(":method"), "the request has no ':method'"),
        (without(":scheme"), "the request has no ':scheme'"),
        (without(":path"), "':path' is missing or empty"),
        ([(":path", ""), *without(":path")], "':path' is missing or empty"),
        (GRPC_CALL + [("host", "elsewhere:80")], "'host' 'elsewhere:80' differs from ':authority'"),
        ([(":method", "CONNECT"), (":path", "/"), (":authority", "h:1")], "a CONNECT request"),
    ],
)
def test_a_malformed_request_is_refused_naming_the_rule(headers, reason):
    with pytest.raises(MalformedRequest) as refused:
        read_request_headers(headers)
    assert reason in str(refused.value)


def test_a_name_refused_once_is_refused_again():
    """Well-formed names are remembered; malformed ones never are."""
    for _ in range(2):
        with pytest.raises(MalformedRequest):
            read_request_headers(GRPC_CALL + [("X-Upper", "v")])
    assert read_request_headers(GRPC_CALL + [("x-upper", "v")]).fields["x-upper"] == "v"


def test_a_connect_request_names_only_its_authority():
    head = read_request_headers([(":method", "CONNECT"), (":authority", "example.com:443")])
    assert (head.method, head.path) == ("CONNECT", "")


def test_trailers_carry_regular_fields_only():
    check_trailers([("x-checksum", "abc")])
    with pytest.raises(MalformedRequest, match="pseudo-header ':path' in trailers"):
        check_trailers([(":path", "/")])
    with pytest.raises(MalformedRequest, match="connection-specific"):
        check_trailers([("keep-alive", "5")])
