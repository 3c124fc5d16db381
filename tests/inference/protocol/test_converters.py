"""The v2 gRPC messages to and from the protocol's tensors: a gRPC client gets what a JSON client
gets, and a bad message is refused naming the input."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb

from modelfactory.inference.protocol.converters import (
    infer_request_from_grpc,
    infer_response_to_grpc,
    model_metadata_to_grpc,
)
from modelfactory.inference.protocol.tabular import output_tensors, tensors_to_records
from modelfactory.inference.protocol.v2 import (
    V2Error,
    decode_raw,
    model_metadata,
    parse_http_body,
)
from modelfactory.inference.served import TensorSpec

SPECS = [TensorSpec("age", "INT64", "integer"), TensorSpec("job", "BYTES", "string")]
OUTPUTS = [TensorSpec("class", "BYTES", "string"), TensorSpec("probability", "FP64", "number")]
RECORDS = [{"age": 30, "job": "admin."}, {"age": 41, "job": "student"}]


def grpc_request(raw: bool) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m", id="r-1")
    age = request.inputs.add(name="age", datatype="INT64", shape=[2])
    job = request.inputs.add(name="job", datatype="BYTES", shape=[2, 1])
    if raw:  # what tritonclient sends
        request.raw_input_contents.append(np.array([30, 41], "<i8").tobytes())
        request.raw_input_contents.append(
            b"".join(struct.pack("<I", len(s)) + s for s in (b"admin.", b"student"))
        )
    else:  # the typed contents fields other clients fill
        age.contents.int64_contents.extend([30, 41])
        job.contents.bytes_contents.extend([b"admin.", b"student"])
    return request


@pytest.mark.parametrize("raw", [True, False], ids=["raw contents", "typed contents"])
def test_a_grpc_request_gives_the_records_the_json_request_gives(raw):
    request = infer_request_from_grpc(grpc_request(raw))
    assert request.id == "r-1" and request.outputs is None
    from_json = parse_http_body(
        json.dumps(
            {
                "inputs": [
                    {"name": "age", "shape": [2], "datatype": "INT64", "data": [30, 41]},
                    {
                        "name": "job",
                        "shape": [2, 1],
                        "datatype": "BYTES",
                        "data": [["admin."], ["student"]],
                    },
                ]
            }
        ).encode()
    )
    assert tensors_to_records(request, SPECS) == RECORDS
    assert tensors_to_records(from_json, SPECS) == RECORDS


def test_a_bad_grpc_request_is_refused_naming_the_input():
    request = grpc_request(raw=True)
    request.inputs[1].datatype = "STRING"
    with pytest.raises(V2Error, match="input 'job': datatype 'STRING' is not a v2 datatype"):
        infer_request_from_grpc(request)
    request = grpc_request(raw=True)
    del request.raw_input_contents[1]
    with pytest.raises(V2Error, match="raw_input_contents has 1 entries for 2 inputs"):
        infer_request_from_grpc(request)
    with pytest.raises(V2Error, match="expected at least one tensor"):
        infer_request_from_grpc(pb.ModelInferRequest(model_name="m"))


def test_the_grpc_reply_carries_each_output_as_raw_contents_with_its_shape():
    predictions = [{"class": "no", "probability": 0.25}, {"class": "yes", "probability": 0.75}]
    reply = infer_response_to_grpc("m", "3", "r-1", output_tensors(predictions, OUTPUTS, None))
    assert (reply.model_name, reply.model_version, reply.id) == ("m", "3", "r-1")
    assert [(o.name, o.datatype, list(o.shape)) for o in reply.outputs] == [
        ("class", "BYTES", [2]),
        ("probability", "FP64", [2]),
    ]
    classes, probabilities = reply.raw_output_contents
    assert decode_raw("class", "BYTES", classes) == [b"no", b"yes"]
    assert decode_raw("probability", "FP64", probabilities) == [0.25, 0.75]
    # Round trip through the bytes a client receives.
    again = pb.ModelInferResponse.FromString(reply.SerializeToString())
    assert again.raw_output_contents == reply.raw_output_contents


def test_grpc_metadata_says_what_the_json_metadata_says():
    reply = model_metadata_to_grpc("m", ["1", "2"], SPECS, OUTPUTS)
    json_metadata = model_metadata("m", ["1", "2"], SPECS, OUTPUTS)
    assert (reply.name, list(reply.versions), reply.platform) == (
        json_metadata["name"],
        json_metadata["versions"],
        json_metadata["platform"],
    )
    as_json = [
        {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
        for t in [*reply.inputs, *reply.outputs]
    ]
    assert as_json == [*json_metadata["inputs"], *json_metadata["outputs"]]
