"""The v2 gRPC messages (``inference.GRPCInferenceService``) to and from the protocol's tensors.

As MLServer keeps protobuf in ``grpc/converters.py``, away from its codecs: the v2 codec
(:mod:`~modelfactory.inference.protocol.v2`) knows no protobuf, and the gRPC service
(:mod:`~modelfactory.inference.protocol.grpc_service`) converts here before and after it calls
the endpoint. The messages are tritonclient's generated classes (why: the gRPC service's
docstring). Decoding is on every gRPC call's path, so it reads each protobuf field once (ADR
0001 has the figures).
"""

from __future__ import annotations

from collections.abc import Sequence

from tritonclient.grpc import service_pb2 as pb

from modelfactory.inference.protocol.v2 import InferRequest, Tensor, V2Error, decode_raw, encode_raw
from modelfactory.inference.served import TensorSpec


def infer_request_from_grpc(request: pb.ModelInferRequest) -> InferRequest:
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
    # each attribute is read once, and repeated fields are copied by slicing, not list() (upb
    # iterates item by item; ADR 0001).
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


def infer_response_to_grpc(
    model_name: str, version: str, request_id: str | None, tensors: Sequence[Tensor]
) -> pb.ModelInferResponse:
    """A ``ModelInferResponse`` using raw_output_contents (what Triton sends and its client
    reads)."""
    response = pb.ModelInferResponse()
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

    return response


def model_metadata_to_grpc(
    model_name: str,
    versions: Sequence[str],
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    platform: str = "modelfactory",
) -> pb.ModelMetadataResponse:
    """The gRPC twin of :func:`~modelfactory.inference.protocol.v2.model_metadata`."""
    tensor = pb.ModelMetadataResponse.TensorMetadata
    return pb.ModelMetadataResponse(
        name=model_name,
        versions=list(versions),
        platform=platform,
        inputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in inputs],
        outputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in outputs],
    )
