"""The Open Inference Protocol (v2) for tabular models: tensors in, records out, and back.

A tabular request carries one tensor per input column, shape ``[n]`` (or ``[n, 1]``),
the convention of MLServer's pandas codec; a reply carries one tensor per output, shape
``[n]``, or ``[n, h]`` for an output that holds a list of ``h`` values per record (a
forecast's days; see ``TensorSpec.length_from``). This module is protocol-only and pure:
it turns the JSON body (with Triton's binary-data extension, which tritonclient uses by
default) or a gRPC ``ModelInferRequest`` into :class:`Tensor` objects, checks them
against the model's :class:`~modelfactory.inference.served.TensorSpec` list, naming the
input at fault, and encodes predictions back. HTTP and gRPC adapters map
:class:`V2Error` kinds to status codes (422/INVALID_ARGUMENT, ...).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelfactory.inference.served import ACCEPTED_DATATYPES, TensorSpec

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


def grpc_request_tensors(request) -> InferRequest:
    """A ``inference.ModelInferRequest`` as tensors (contents fields or raw_input_contents)."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise V2Error(
            "invalid", f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs"
        )
    if not request.inputs:
        raise V2Error("invalid", "inputs: expected at least one tensor")
    tensors = []
    # A request has one tensor per feature, and protobuf's accessors are slow at that scale:
    # each attribute is read once, and repeated fields are copied by slicing, which is three
    # times faster than list() (upb iterates item by item).
    for i, item in enumerate(request.inputs):
        name, datatype = item.name or f"inputs[{i}]", item.datatype
        contents_field = _CONTENTS_FIELD.get(datatype)
        if contents_field is None:
            raise V2Error("invalid", f"input '{name}': datatype {datatype!r} is not a v2 datatype")
        shape = item.shape[:]
        if not shape or min(shape) < 0:
            raise V2Error(
                "invalid",
                f"input '{name}': shape must be a non-empty list of non-negative integers",
            )
        data = (
            decode_raw(name, datatype, raw[i]) if raw else getattr(item.contents, contents_field)[:]
        )
        tensors.append(Tensor(name, datatype, shape, data))
    outputs = [o.name for o in request.outputs] or None
    return InferRequest(tensors, request.id or None, outputs)


# The InferTensorContents field holding each datatype's values (FP16 travels as fp32,
# the small integer types as int32/uint32).
_CONTENTS_FIELD = {
    "BYTES": "bytes_contents",
    "BOOL": "bool_contents",
    "FP16": "fp32_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
}


# --- tensors <-> records ------------------------------------------------------------------------


def tensors_to_records(
    request: InferRequest, specs: Sequence[TensorSpec], max_rows: int | None = None
) -> list[dict]:
    """Records from one tensor per column; every problem names the input it is about."""
    by_name: dict[str, Tensor] = {}
    problems = []
    for tensor in request.inputs:
        if tensor.name in by_name:
            problems.append(f"input '{tensor.name}': given more than once")
        by_name[tensor.name] = tensor
    expected = {spec.name for spec in specs}
    for name in by_name:
        if name not in expected:
            problems.append(
                f"input '{name}': not an input of this model "
                f"(inputs: {', '.join(sorted(expected))})"
            )
    row_counts: dict[str, int] = {}
    columns: dict[str, list] = {}
    for spec in specs:
        found = by_name.get(spec.name)
        if found is None:
            problems.append(f"input '{spec.name}': missing ({spec.datatype}, shape [n])")
            continue
        tensor = found
        if tensor.datatype not in ACCEPTED_DATATYPES[spec.kind]:
            problems.append(
                f"input '{spec.name}': datatype {tensor.datatype} not accepted; "
                f"send {spec.datatype}"
            )
            continue
        if len(tensor.shape) > 2 or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            problems.append(
                f"input '{spec.name}': shape {tensor.shape}; expected [n] or [n, 1], "
                "one value per row"
            )
            continue
        n = tensor.shape[0]
        if len(tensor.data) != n:
            problems.append(
                f"input '{spec.name}': shape {tensor.shape} holds {n} values, data has "
                f"{len(tensor.data)}"
            )
            continue
        row_counts[spec.name] = n
        values, bad = _column(spec, tensor)
        if bad is not None:
            problems.append(
                f"input '{spec.name}'[{bad[0]}]: expected {_ARTICLE[spec.kind]} "
                f"({tensor.datatype}), got {_describe(bad[1])}"
            )
            continue
        columns[spec.name] = values
    if len(set(row_counts.values())) > 1:
        counts = ", ".join(f"{name}: {n}" for name, n in row_counts.items())
        problems.append(
            f"inputs: different numbers of rows ({counts}); every input needs one value per row"
        )
    rows = next(iter(row_counts.values()), 0)
    if not problems and not rows:
        problems.append("inputs: every tensor is empty; send at least one row")
    if not problems and max_rows is not None and rows > max_rows:
        problems.append(f"inputs: {rows} rows; at most {max_rows} per request")
    if problems:
        raise V2Error("invalid", "the inputs do not match the model", problems)
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _column(spec: TensorSpec, tensor: Tensor) -> tuple[list, tuple[int, Any] | None]:
    values = tensor.data
    if spec.kind == "string":
        out = []
        for i, v in enumerate(values):
            if isinstance(v, bytes):
                try:
                    v = v.decode("utf-8")
                except UnicodeDecodeError:
                    return [], (i, v)
            if not isinstance(v, str):
                return [], (i, v)
            out.append(v)
        return out, None
    if spec.kind == "boolean":
        for i, v in enumerate(values):
            if not isinstance(v, bool):
                return [], (i, v)
        return values, None
    integer_type = not tensor.datatype.startswith("FP")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int | float):
            return [], (i, v)
        if isinstance(v, float) and (not math.isfinite(v) or (integer_type and not v.is_integer())):
            return [], (i, v)
        if spec.kind == "integer" and isinstance(v, float) and not v.is_integer():
            return [], (i, v)
    if spec.kind == "integer":
        return [int(v) for v in values], None
    return values, None


_ARTICLE = {
    "integer": "an integer",
    "number": "a finite number",
    "string": "a UTF-8 string",
    "boolean": "true or false",
}


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- encoding -----------------------------------------------------------------------------------


def output_tensors(
    predictions: Sequence[Mapping], specs: Sequence[TensorSpec], requested: Sequence[str] | None
) -> list[Tensor]:
    by_name = {spec.name: spec for spec in specs}
    if requested is not None:
        unknown = [name for name in requested if name not in by_name]
        if unknown:
            raise V2Error(
                "invalid",
                f"outputs: {', '.join(unknown)} not produced by this model "
                f"(outputs: {', '.join(by_name)})",
            )
        chosen = [by_name[name] for name in requested]
    else:
        chosen = list(specs)
    return [_output_tensor(spec, predictions) for spec in chosen]


def _output_tensor(spec: TensorSpec, predictions: Sequence[Mapping]) -> Tensor:
    values = [p[spec.name] for p in predictions]
    if spec.length_from is None:
        return Tensor(spec.name, spec.datatype, [len(values)], values)
    # A list per record: shape [n, length], flattened row-major.
    width = len(values[0]) if values else 0
    if any(len(v) != width for v in values):
        lengths = sorted({len(v) for v in values})
        raise V2Error(
            "invalid",
            f"output '{spec.name}': records have {lengths} values each; v2 tensors are "
            f"rectangular, so send records with the same {spec.length_from}",
        )
    return Tensor(spec.name, spec.datatype, [len(values), width], [x for v in values for x in v])


def check_rectangular(records: Sequence[Mapping], outputs: Sequence[TensorSpec]) -> None:
    """Refuse, before predicting, records whose list outputs would have different lengths.

    v2 tensors are rectangular: an output of shape ``[n, h]`` needs every record to ask for
    the same ``h``, i.e. the same value of the input named by ``TensorSpec.length_from``.
    """
    for name in dict.fromkeys(spec.length_from for spec in outputs if spec.length_from):
        values = list(dict.fromkeys(record.get(name) for record in records))
        if len(values) > 1:
            shown = ", ".join(_describe(v) for v in values[:5])
            shown += ", ..." if len(values) > 5 else ""
            raise V2Error(
                "invalid",
                "the inputs do not match the model",
                [
                    f"input '{name}': rows ask for different values ({shown}); v2 output tensors "
                    f"are rectangular, so every row of a request needs the same {name} (send one "
                    f"request per {name}, or use the JSON routes)"
                ],
            )


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


def fill_grpc_response(
    response, model_name: str, version: str, request_id: str | None, tensors: Sequence[Tensor]
) -> None:
    """Fill a ``ModelInferResponse`` using raw_output_contents (what Triton sends and its client
    reads)."""
    response.model_name = model_name
    response.model_version = version
    if request_id:
        response.id = request_id
    for tensor in tensors:
        output = response.outputs.add()
        output.name = tensor.name
        output.datatype = tensor.datatype
        output.shape.extend(tensor.shape)
        response.raw_output_contents.append(encode_raw(tensor))


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
