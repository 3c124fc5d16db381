"""The OpenAPI document of the model API: JSON Schemas of the bodies, the headers and the
refusals of each route.

:func:`~modelfactory.inference.protocol.rest.route_table` gives each route its document from
here (FastAPI's ``openapi_extra``): the handlers read raw bodies (the v2 binary extension, our
own refusals naming the field), so FastAPI cannot derive these schemas from types. The fuzz
test (``tests/serving/test_fuzz_openapi.py``) holds the API to what this document promises.
"""

from __future__ import annotations

from modelfactory.inference.protocol.headers import MODEL_VERSION, REQUEST_ID, REQUEST_KEY
from modelfactory.inference.protocol.v2 import DATATYPES

_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "problems": {"type": "array", "items": {"type": "string"}},
    },
}
_SCALAR = {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}]}
_V2_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "shape": {
            "type": "array",
            "items": {"type": "integer", "minimum": 0},
            "minItems": 1,
            "maxItems": 2,
        },
        "datatype": {"type": "string", "enum": list(DATATYPES)},
        "parameters": {"type": "object"},
        "data": {"type": "array", "items": _SCALAR},
    },
}
_V2_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": _V2_TENSOR, "minItems": 1},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
            },
        },
    },
}
_V2_RESPONSE = {
    "type": "object",
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "id": {"type": "string"},
        "outputs": {"type": "array", "items": {"type": "object"}},
    },
}
_RECORD = {"type": "object", "additionalProperties": _SCALAR}
_HEADERS = [
    {
        "name": MODEL_VERSION,
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": (
            "Answer with this model version (champion or challenger), bypassing the rollout."
        ),
    },
    {
        "name": REQUEST_KEY,
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": (
            "Sticky routing key: the same key gets the same version at a given rollout weight."
        ),
    },
    {
        "name": REQUEST_ID,
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "Echoed, and stored with the logged predictions (generated when absent): "
        "POST /feedback names a prediction by it.",
    },
]
_FEEDBACK_ITEM = {
    "type": "object",
    "required": ["request_id", "actual"],
    "properties": {
        "request_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "record": {"type": "integer", "minimum": 0},
        "actual": {},
    },
}
_FEEDBACK_ANSWER = {
    "type": "object",
    "properties": {
        "model": {"type": "string"},
        "stored": {"type": "integer"},
        "replaced": {"type": "integer"},
    },
}
_ERRORS = {
    str(code): {"description": text, "content": {"application/json": {"schema": _ERROR}}}
    for code, text in (
        (401, "Missing or wrong bearer token"),
        (
            404,
            "Unknown model or version, a record naming what the model does not have, or a "
            "feedback request id the prediction log does not hold",
        ),
        (413, "Request body over MODELFACTORY_MAX_REQUEST_BYTES"),
        (422, "Input that does not fit the model, naming the field or input"),
        (503, "No model loaded yet"),
    )
}


def _body(schema: dict) -> dict:
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        "parameters": _HEADERS,
    }


def _responses(schema: dict, *codes: int) -> dict:
    answer = {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}}
    return {**answer, **{str(c): _ERRORS[str(c)] for c in codes}}


# --- the documents of the routes (rest.route_table) ---------------------------------------------

PREDICT = {
    **_body(
        {
            "type": "object",
            "required": ["records"],
            "properties": {"records": {"type": "array", "items": _RECORD, "minItems": 1}},
        }
    ),
    "responses": _responses({"type": "object"}, 401, 404, 413, 422, 503),
}
FEEDBACK = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _FEEDBACK_ITEM,
                        {"type": "array", "items": _FEEDBACK_ITEM, "minItems": 1},
                    ]
                }
            }
        },
    },
    "responses": _responses(_FEEDBACK_ANSWER, 401, 404, 413, 422, 503),
}
DESCRIBE = {"responses": _responses({"type": "object"}, 401, 503)}
SERVER_READY = {"responses": {"503": _ERRORS["503"]}}
MODEL_GET = {"responses": _responses({"type": "object"}, 401, 404, 503)}  # metadata, readiness
INFER = {**_body(_V2_REQUEST), "responses": _responses(_V2_RESPONSE, 401, 404, 413, 422, 503)}
