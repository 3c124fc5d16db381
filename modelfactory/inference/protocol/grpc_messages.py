"""gRPC's messages on an HTTP/2 stream: the length-prefixed message, its compression, and the
status a call ends with (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md).

The transport (:mod:`.grpc_transport`) moves the bytes; this module reads a request's one
message (bounded, on the wire and once inflated) and frames a reply's. Handlers raise
:class:`GrpcError` to end a call with a status.
"""

from __future__ import annotations

import enum
import struct
import zlib

ENCODINGS = {"identity": None, "gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
ACCEPT_ENCODING = ",".join(ENCODINGS)


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


def declared_length(body: bytearray) -> int | None:
    """The length prefix of the message that starts ``body``, once its 5 bytes are in."""
    return struct.unpack_from(">I", body, 1)[0] if len(body) >= 5 else None


def read_message(body: bytearray, encoding: str, limit: int) -> bytes:
    """The one message of a unary request's ``body``, inflated when it is flagged compressed."""
    declared = declared_length(body)
    if declared is None or len(body) != 5 + declared:
        raise GrpcError(
            StatusCode.INVALID_ARGUMENT, "a unary call carries exactly one length-prefixed message"
        )
    payload = bytes(body[5:])
    if not body[0]:
        return payload
    wbits = ENCODINGS[encoding]
    if wbits is None:
        raise GrpcError(
            StatusCode.INVALID_ARGUMENT,
            "the message is flagged compressed but grpc-encoding is identity",
        )
    inflate = zlib.decompressobj(wbits)
    try:
        message = inflate.decompress(payload, limit + 1)
    except zlib.error as exc:
        raise GrpcError(
            StatusCode.INVALID_ARGUMENT, f"the {encoding} message does not inflate: {exc}"
        ) from None
    if len(message) > limit:
        raise too_large(len(message) + len(inflate.unconsumed_tail), limit, "inflated ")
    return message


def frame_message(message: bytes) -> bytes:
    """An uncompressed length-prefixed message."""
    return b"\0" + struct.pack(">I", len(message)) + message


def too_large(size: int, limit: int, what: str = "") -> GrpcError:
    return GrpcError(
        StatusCode.RESOURCE_EXHAUSTED,
        f"{what}request message of {size} bytes is over the limit of {limit} bytes",
    )


def percent_encode(message: str) -> str:
    """grpc-message encoding: UTF-8, then %XX for every byte outside printable ASCII and '%'."""
    return "".join(
        chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in message.encode()
    )
