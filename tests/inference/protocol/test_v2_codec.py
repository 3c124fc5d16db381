"""The v2 tabular codec: tensors to records and back, and refusals that name the input."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from modelfactory.inference.protocol.tabular import (
    check_rectangular,
    output_tensors,
    tensors_to_records,
)
from modelfactory.inference.protocol.v2 import (
    V2Error,
    decode_raw,
    encode_raw,
    json_response,
    parse_http_body,
    parse_json_request,
)
from modelfactory.inference.served import TensorSpec

SPECS = [
    TensorSpec("age", "INT64", "integer"),
    TensorSpec("job", "BYTES", "string"),
    TensorSpec("rate", "FP64", "number"),
]


def body(**overrides):
    inputs = {
        "age": {"name": "age", "shape": [2], "datatype": "INT64", "data": [30, 41]},
        "job": {
            "name": "job",
            "shape": [2, 1],
            "datatype": "BYTES",
            "data": [["admin."], ["student"]],
        },
        "rate": {"name": "rate", "shape": [2], "datatype": "FP32", "data": [1.5, 2]},
    }
    inputs.update(overrides)
    return {"inputs": [v for v in inputs.values() if v is not None]}


def test_one_tensor_per_column_becomes_records():
    records = tensors_to_records(parse_json_request(body()), SPECS)
    assert records == [
        {"age": 30, "job": "admin.", "rate": 1.5},
        {"age": 41, "job": "student", "rate": 2},
    ]


@pytest.mark.parametrize(
    "override, fragment",
    [
        ({"age": None}, "input 'age': missing"),
        (
            {"age": {"name": "age", "shape": [2], "datatype": "FP64", "data": [1.5, 2.0]}},
            "input 'age': datatype FP64",
        ),
        (
            {"age": {"name": "age", "shape": [3], "datatype": "INT64", "data": [1, 2, 3]}},
            "(age: 3, job: 2, rate: 2)",
        ),
        (
            {"age": {"name": "age", "shape": [2, 2], "datatype": "INT64", "data": [1, 2, 3, 4]}},
            "input 'age': shape",
        ),
        (
            {"age": {"name": "age", "shape": [2], "datatype": "INT64", "data": [1]}},
            "input 'age': shape [2] holds 2",
        ),
        (
            {"job": {"name": "job", "shape": [2], "datatype": "BYTES", "data": ["a", 3]}},
            "input 'job'[1]",
        ),
        (
            {"extra": {"name": "extra", "shape": [2], "datatype": "INT64", "data": [1, 2]}},
            "input 'extra': not an",
        ),
    ],
)
def test_bad_tensors_are_refused_naming_the_input(override, fragment):
    with pytest.raises(V2Error) as caught:
        tensors_to_records(parse_json_request(body(**override)), SPECS)
    assert caught.value.kind == "invalid" and fragment in caught.value.detail()


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        {"inputs": []},
        {"inputs": [{"name": "a"}]},
        {"inputs": [{"name": "a", "shape": [1], "datatype": "STRING", "data": [1]}]},
        {"inputs": [{"name": "a", "shape": [-1], "datatype": "INT64", "data": [1]}]},
    ],
)
def test_malformed_requests_are_invalid(bad):
    with pytest.raises(V2Error) as caught:
        parse_json_request(bad)
    assert caught.value.kind == "invalid"


def test_binary_tensor_extension_in_and_out():
    ages = np.array([30, 41], dtype=np.int64).tobytes()
    jobs = b"".join(struct.pack("<I", len(s)) + s for s in (b"admin.", b"student"))
    request = body(
        age={
            "name": "age",
            "shape": [2],
            "datatype": "INT64",
            "parameters": {"binary_data_size": 16},
        },
        job={
            "name": "job",
            "shape": [2],
            "datatype": "BYTES",
            "parameters": {"binary_data_size": len(jobs)},
        },
    )
    request["parameters"] = {"binary_data_output": True}
    parsed = parse_json_request(request, ages + jobs)
    assert tensors_to_records(parsed, SPECS)[1] == {"age": 41, "job": "student", "rate": 2}
    tensors = output_tensors(
        [{"class": "no", "probability": 0.25}],
        [TensorSpec("class", "BYTES", "string"), TensorSpec("probability", "FP64", "number")],
        None,
    )
    head, tail = json_response("m", "1", None, tensors, parsed.binary_outputs)
    assert [o["parameters"]["binary_data_size"] for o in head["outputs"]] == [6, 8]
    assert decode_raw("class", "BYTES", tail[:6]) == [b"no"] and decode_raw(
        "p", "FP64", tail[6:]
    ) == [0.25]
    assert encode_raw(tensors[1]) == np.array([0.25]).tobytes()


def test_truncated_binary_data_is_invalid():
    with pytest.raises(V2Error, match="binary_data_size"):
        parse_json_request(
            body(
                age={
                    "name": "age",
                    "shape": [2],
                    "datatype": "INT64",
                    "parameters": {"binary_data_size": 16},
                }
            ),
            b"\x00" * 8,
        )
    with pytest.raises(V2Error, match="whole number"):
        decode_raw("age", "INT64", b"\x00" * 9)


DAILY = [
    TensorSpec("ds", "BYTES", "string", length_from="days"),
    TensorSpec("y", "FP64", "number", length_from="days"),
]


def test_a_list_per_record_is_an_n_by_length_tensor():
    predictions = [
        {"ds": ("d1", "d2", "d3"), "y": (1.0, 2.0, 3.0)},
        {"ds": ("e1", "e2", "e3"), "y": (4.0, 5.0, 6.0)},
    ]
    ds, y = output_tensors(predictions, DAILY, None)
    assert (ds.shape, ds.data) == ([2, 3], ["d1", "d2", "d3", "e1", "e2", "e3"])
    assert (y.shape, y.data) == ([2, 3], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    head, tail = json_response("m", "1", None, [y], {"y"})
    assert head["outputs"][0]["shape"] == [2, 3]
    assert np.frombuffer(tail, "<f8").reshape(2, 3).tolist() == [[1, 2, 3], [4, 5, 6]]
    (scalar,) = output_tensors([{"p": 0.5}], [TensorSpec("p", "FP64", "number")], None)
    assert scalar.shape == [1]  # one value per record stays [n]
    with pytest.raises(V2Error, match="output 'y': records have \\[1, 3\\] values each"):
        output_tensors([predictions[0], {"ds": ("x",), "y": (1.0,)}], DAILY, ["y"])


def test_rows_asking_for_different_lengths_are_refused_naming_the_input():
    check_rectangular([{"days": 7}, {"days": 7}], DAILY)
    check_rectangular([{"days": 7}, {"days": 14}], SPECS)  # no list outputs: anything goes
    with pytest.raises(V2Error) as caught:
        check_rectangular([{"days": 7}, {"days": 14}, {"days": 7}], DAILY)
    assert caught.value.kind == "invalid"
    assert caught.value.problems[0].startswith(
        "input 'days': rows ask for different values (7, 14)"
    )


def test_an_http_body_with_binary_data_is_split_where_the_header_says():
    ages = np.array([30, 41], "<i8").tobytes()
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "age",
                    "shape": [2],
                    "datatype": "INT64",
                    "parameters": {"binary_data_size": 16},
                }
            ]
        }
    ).encode()
    request = parse_http_body(head + ages, str(len(head)))
    assert request.inputs[0].data == [30, 41]
    with pytest.raises(V2Error, match="inference-header-content-length '999' does not fit"):
        parse_http_body(head + ages, "999")
    with pytest.raises(V2Error, match="not valid JSON"):
        parse_http_body(b"{", None)
