"""An HTTP/2 request's header block, checked as RFC 9113 §8.2-8.3 require of a server.

The gRPC transport (:mod:`.grpc_transport`) turns h2's own header validation off (its cost:
ADR 0001, docs/adr/0001-grpc-on-h2.md) and reads each request's headers once, here. A block
that breaks one of the RFC's MUSTs is malformed (:class:`MalformedRequest`); the transport
resets that stream with PROTOCOL_ERROR (RFC 9113 §8.1.1) and the connection carries on.

Malformed: a field name with an upper-case letter or a character §8.2.1 forbids; a value with
NUL, CR or LF, or starting or ending with a space or tab; a connection-specific field
(``connection``, ``keep-alive``, ``proxy-connection``, ``transfer-encoding``, ``upgrade``);
``te`` other than ``trailers``; a pseudo-header that is unknown, a response's (``:status``),
repeated, after a regular field, or in trailers; a request without ``:method``, ``:scheme``
or a non-empty ``:path`` (CONNECT: with ``:authority`` and neither of the other two); a
``host`` that names another authority than ``:authority``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

REQUEST_PSEUDO_HEADERS = frozenset({":method", ":scheme", ":authority", ":path"})
CONNECTION_SPECIFIC = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}
)
# RFC 9113 §8.2.1: no 0x00-0x20, no upper case (0x41-0x5a), no 0x7f-0xff, no colon (pseudo-header
# names are checked against the list above instead).
_BAD_NAME = re.compile(r"[\x00-\x20A-Z\x7f-\xff:]")
# Regular names already found well-formed: a client sends the same dozen on every call, and
# looking one up costs less than checking it again (these checks run on every call: ADR 0001).
# Cleared when a client makes up names. `te` is never kept: its value is checked each time.
_WELL_FORMED_NAMES: set[str] = set()
_MAX_REMEMBERED_NAMES = 1024


class MalformedRequest(Exception):
    """The header block breaks RFC 9113; the message says which rule, naming the field."""


@dataclass(slots=True)
class RequestHead:
    method: str
    path: str
    fields: dict[str, str]  # the regular fields (gRPC's metadata), by their lower-case names


def read_request_headers(headers: Iterable[tuple[str, str]]) -> RequestHead:
    """The request's pseudo-headers and fields, or :class:`MalformedRequest`."""
    pseudo: dict[str, str] = {}
    fields: dict[str, str] = {}
    for name, value in headers:
        _check_value(name, value)
        if name in _WELL_FORMED_NAMES:
            fields[name] = value
        elif name[:1] == ":":
            if fields:
                raise MalformedRequest(f"pseudo-header {name!r} after a regular field")
            if name not in REQUEST_PSEUDO_HEADERS:
                raise MalformedRequest(f"{name!r} is not a request pseudo-header")
            if name in pseudo:
                raise MalformedRequest(f"pseudo-header {name!r} appears twice")
            pseudo[name] = value
        else:
            _check_name(name, value)
            fields[name] = value
    method = pseudo.get(":method")
    if method is None:
        raise MalformedRequest("the request has no ':method'")
    if method == "CONNECT":
        if ":scheme" in pseudo or ":path" in pseudo or ":authority" not in pseudo:
            raise MalformedRequest("a CONNECT request has ':authority' and no ':scheme' or ':path'")
    elif ":scheme" not in pseudo:
        raise MalformedRequest("the request has no ':scheme'")
    elif not pseudo.get(":path"):
        raise MalformedRequest("the request's ':path' is missing or empty")
    host, authority = fields.get("host"), pseudo.get(":authority")
    if host is not None and authority is not None and host != authority:
        raise MalformedRequest(f"'host' {host!r} differs from ':authority' {authority!r}")
    return RequestHead(method, pseudo.get(":path", ""), fields)


def check_trailers(headers: Iterable[tuple[str, str]]) -> None:
    """Trailers carry regular fields only (RFC 9113 §8.1), each well-formed."""
    for name, value in headers:
        if name[:1] == ":":
            raise MalformedRequest(f"pseudo-header {name!r} in trailers")
        _check_value(name, value)
        _check_name(name, value)


def _check_value(name: str, value: str) -> None:
    # str methods, not a regular expression: a fifth of the cost, on every field of every call
    if "\n" in value or "\r" in value or "\0" in value or value.strip(" \t") != value:
        raise MalformedRequest(f"the value of {name!r} has NUL, CR, LF or edge whitespace")


def _check_name(name: str, value: str) -> None:
    if name == "te":
        if value != "trailers":
            raise MalformedRequest(f"'te' may only be 'trailers', not {value!r}")
        return
    if name in _WELL_FORMED_NAMES:
        return
    if not name or _BAD_NAME.search(name):
        raise MalformedRequest(f"field name {name!r} is empty, upper case or not a token")
    if name in CONNECTION_SPECIFIC:
        raise MalformedRequest(f"connection-specific field {name!r} is not allowed in HTTP/2")
    if len(_WELL_FORMED_NAMES) >= _MAX_REMEMBERED_NAMES:
        _WELL_FORMED_NAMES.clear()
    _WELL_FORMED_NAMES.add(name)
