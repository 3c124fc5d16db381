"""The Open Inference Protocol (v2) over JSON: requests parsed into tensors, tensors encoded back.

A v2 request is a list of named, typed, shaped tensors; this module turns the JSON body (with
Triton's binary-data extension, which tritonclient uses by default) into :class:`Tensor`
objects and encodes reply tensors as JSON (and binary data), refusing what does not fit with a
:class:`V2Error` that names the field or input at fault. HTTP and gRPC adapters map its kinds
to status codes (422/INVALID_ARGUMENT, ...). Pure: no I/O, no protobuf.

Beside it, as MLServer splits its codecs: :mod:`~modelfactory.inference.protocol.tabular` reads
tensors as a tabular model's records (one tensor per column) and writes predictions back as
tensors; :mod:`~modelfactory.inference.protocol.converters` converts the gRPC messages to and
from these tensors.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelfactory.inference.served import TensorSpec

NUMPY_DTYPE = {
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
DATATYPES = (*NUMPY_DTYPE, "BYTES")
BINARY_HEADER = "inference-header-content-length"


class V2Error(Exception):
    """A request the protocol refuses. ``kind``: invalid, not_found, too_large, unauthenticated,
    unavailable."""

    HTTP_STATUS = {
        "invalid": 422,
        "not_found": 404,
        "too_large": 413,
        "unauthenticated": 401,
        "unavailable": 503,
    }

    def __init__(self, kind: str, message: str, problems: Sequence[str] = ()):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.problems = list(problems)

    @property
    def http_status(self) -> int:
        return self.HTTP_STATUS[self.kind]

    def detail(self) -> str:
        return self.message + (": " + "; ".join(self.problems[:20]) if self.problems else "")


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    data: list  # flattened, row-major, Python values (str for BYTES)


@dataclass
class InferRequest:
    inputs: list[Tensor]
    id: str | None = None
    outputs: list[str] | None = None  # requested output names; None = all
    binary_outputs: set[str] = field(default_factory=set)  # outputs to send as binary data (HTTP)


# --- decoding -----------------------------------------------------------------------------------


def parse_http_body(raw: bytes, header_length: str | None = None) -> InferRequest:
    """A v2 HTTP request body: JSON, followed by binary tensor data when ``header_length`` (the
    ``inference-header-content-length`` header) says where the JSON ends."""
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(raw):
            raise V2Error(
                "invalid",
                f"{BINARY_HEADER} {header_length!r} does not fit a body of {len(raw)} bytes",
            )
        length = int(header_length)
        head, binary = raw[:length], raw[length:]
    else:
        head, binary = raw, b""
    try:
        body = json.loads(head)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise V2Error("invalid", f"the request body is not valid JSON: {exc}") from None
    return parse_json_request(body, binary)


def parse_json_request(body: Any, binary: bytes = b"") -> InferRequest:
    """A v2 JSON inference request (``binary`` = the bytes after the JSON header, if any)."""
    if not isinstance(body, Mapping):
        raise V2Error("invalid", 'expected a JSON object {"inputs": [...]}')
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise V2Error("invalid", "inputs: expected a non-empty list of tensors")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise V2Error("invalid", "id: expected a string")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise V2Error("invalid", "parameters: expected an object")
    offset, tensors = 0, []
    for i, item in enumerate(inputs):
        tensor, offset = _json_tensor(i, item, binary, offset)
        tensors.append(tensor)
    if offset != len(binary):
        raise V2Error("invalid", f"binary data: {len(binary) - offset} bytes after the last tensor")
    outputs, binary_outputs = _requested_outputs(body.get("outputs"), parameters)
    return InferRequest(tensors, request_id, outputs, binary_outputs)


def _json_tensor(i: int, item: Any, binary: bytes, offset: int) -> tuple[Tensor, int]:
    if not isinstance(item, Mapping):
        raise V2Error(
            "invalid", f"inputs[{i}]: expected an object with name, shape, datatype and data"
        )
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise V2Error("invalid", f"inputs[{i}].name: expected a non-empty string")
    datatype, shape = item.get("datatype"), item.get("shape")
    if datatype not in DATATYPES:
        raise V2Error(
            "invalid",
            f"input '{name}': datatype {datatype!r} is not a v2 datatype ({', '.join(DATATYPES)})",
        )
    dims = _check_shape(name, shape)
    parameters = item.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise V2Error("invalid", f"input '{name}': parameters: expected an object")
    size = parameters.get("binary_data_size")
    if size is not None:
        if (
            not isinstance(size, int)
            or isinstance(size, bool)
            or size < 0
            or offset + size > len(binary)
        ):
            raise V2Error(
                "invalid",
                f"input '{name}': binary_data_size {size!r} does not fit the "
                f"{len(binary)} bytes of binary data",
            )
        data = decode_raw(name, datatype, binary[offset : offset + size])
        return Tensor(name, datatype, dims, data), offset + size
    if "data" not in item:
        raise V2Error("invalid", f"input '{name}': data missing")
    return Tensor(name, datatype, dims, _flatten(name, item["data"])), offset


def _check_shape(name: str, shape: Any) -> list[int]:
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise V2Error(
            "invalid", f"input '{name}': shape must be a non-empty list of non-negative integers"
        )
    return shape


def _flatten(name: str, data: Any) -> list:
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(v, list) for v in data):
        return data
    flat: list = []
    stack = [iter(data)]
    while stack:  # row-major flattening of nested lists, without recursion limits
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            flat.append(value)
        else:
            stack.pop()
        if len(stack) > 32:
            raise V2Error("invalid", f"input '{name}': data nested too deeply")
    return flat


def _requested_outputs(outputs: Any, parameters: Mapping) -> tuple[list[str] | None, set[str]]:
    binary_default = parameters.get("binary_data_output") is True
    if outputs is None:
        return None, ({"*"} if binary_default else set())
    if not isinstance(outputs, list):
        raise V2Error("invalid", "outputs: expected a list of {name} objects")
    names, binary = [], set()
    for i, output in enumerate(outputs):
        if not isinstance(output, Mapping) or not isinstance(output.get("name"), str):
            raise V2Error("invalid", f"outputs[{i}]: expected an object with a name")
        names.append(output["name"])
        params = output.get("parameters") or {}
        if isinstance(params, Mapping) and params.get("binary_data", binary_default) is True:
            binary.add(output["name"])
    return names, binary


def decode_raw(name: str, datatype: str, raw: bytes) -> list:
    """Little-endian raw tensor bytes (gRPC raw contents, HTTP binary extension) as Python
    values."""
    if datatype == "BYTES":
        values, offset = [], 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise V2Error("invalid", f"input '{name}': truncated BYTES element length")
            (length,) = struct.unpack_from("<I", raw, offset)
            offset += 4
            if offset + length > len(raw):
                raise V2Error("invalid", f"input '{name}': BYTES element longer than the data")
            values.append(raw[offset : offset + length])
            offset += length
        return values
    dtype = np.dtype(NUMPY_DTYPE[datatype]).newbyteorder("<")
    if len(raw) % dtype.itemsize:
        raise V2Error(
            "invalid", f"input '{name}': {len(raw)} bytes is not a whole number of {datatype}"
        )
    return np.frombuffer(raw, dtype=dtype).tolist()


# --- encoding -----------------------------------------------------------------------------------


def encode_raw(tensor: Tensor) -> bytes:
    if tensor.datatype == "BYTES":
        parts = []
        for value in tensor.data:
            data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
            parts.append(struct.pack("<I", len(data)))
            parts.append(data)
        return b"".join(parts)
    return np.asarray(
        tensor.data, dtype=np.dtype(NUMPY_DTYPE[tensor.datatype]).newbyteorder("<")
    ).tobytes()


def json_response(
    model_name: str,
    version: str,
    request_id: str | None,
    tensors: Sequence[Tensor],
    binary_outputs: set[str],
) -> tuple[dict, bytes]:
    """The v2 JSON reply, and the binary tail for outputs sent with the binary-data extension."""
    outputs, tail = [], []
    for tensor in tensors:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": tensor.shape,
        }
        if "*" in binary_outputs or tensor.name in binary_outputs:
            raw = encode_raw(tensor)
            entry["parameters"] = {"binary_data_size": len(raw)}
            tail.append(raw)
        else:
            entry["data"] = tensor.data
        outputs.append(entry)
    body = {"model_name": model_name, "model_version": version, "outputs": outputs}
    if request_id is not None:
        body["id"] = request_id
    return body, b"".join(tail)


def model_metadata(
    model_name: str,
    versions: Sequence[str],
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    platform: str = "modelfactory",
) -> dict:
    return {
        "name": model_name,
        "versions": list(versions),
        "platform": platform,
        "inputs": [spec.as_metadata() for spec in inputs],
        "outputs": [spec.as_metadata() for spec in outputs],
    }
