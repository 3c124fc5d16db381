"""Checking request records against a model's MLflow signature, naming every field at fault.

Serving never trusts a request: each record must carry every input column with
a value of the right kind. All problems of a request are collected, so the 422
answer lists them at once (``records[3].age: expected an integer, got "41"``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from modelfactory.errors import ModelFactoryError

_KIND_BY_MLFLOW_TYPE = {
    "long": "integer",
    "integer": "integer",
    "double": "number",
    "float": "number",
    "string": "string",
    "boolean": "boolean",
}


class InvalidInput(ModelFactoryError):
    """The request does not fit the model's input schema; ``problems`` name each field."""

    kind = "invalid"  # the V2Error kind (and refusal reason) protocols answer with

    def __init__(self, problems: Sequence[str], message: str | None = None):
        self.problems = list(problems)
        shown = "; ".join(self.problems[:20])
        more = f" (and {len(self.problems) - 20} more)" if len(self.problems) > 20 else ""
        super().__init__(message or f"invalid input: {shown}{more}")


class InputNotFound(InvalidInput):
    """A well-formed record asks for something the model does not have (a store without a model).

    Protocols answer 404 / NOT_FOUND with the message. It stays an InvalidInput so that in
    a canary the champion decides, as for any input the challenger refuses.
    """

    kind = "not_found"

    def __init__(self, message: str):
        super().__init__([message], message)


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # integer, number, string, boolean


@dataclass(frozen=True)
class InputSchema:
    fields: tuple[Field, ...]

    @classmethod
    def from_signature(cls, signature) -> InputSchema:
        fields = []
        for spec in signature.inputs.inputs:
            type_name = spec.type.name if hasattr(spec.type, "name") else str(spec.type)
            fields.append(Field(spec.name, _KIND_BY_MLFLOW_TYPE.get(type_name, "string")))
        return cls(tuple(fields))

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def problems(self, records: Any, max_records: int | None = None) -> list[str]:
        if not isinstance(records, list):
            return ["records: expected a list of objects"]
        if not records:
            return ["records: expected at least one record"]
        if max_records is not None and len(records) > max_records:
            return [f"records: {len(records)} records; at most {max_records} per request"]
        found = []
        for i, record in enumerate(records):
            if not isinstance(record, Mapping):
                found.append(
                    f"records[{i}]: expected an object with fields {', '.join(self.names)}"
                )
                continue
            for field in self.fields:
                if field.name not in record or record[field.name] is None:
                    found.append(f"records[{i}].{field.name}: missing")
                elif not _fits(record[field.name], field.kind):
                    found.append(
                        f"records[{i}].{field.name}: expected {_ARTICLE[field.kind]}, "
                        f"got {_describe(record[field.name])}"
                    )
        return found

    def check(self, records: Any, max_records: int | None = None) -> list[Mapping]:
        problems = self.problems(records, max_records)
        if problems:
            raise InvalidInput(problems)
        return records

    def frame(self, records: Sequence[Mapping]) -> pd.DataFrame:
        frame = pd.DataFrame.from_records(records, columns=self.names)
        for field in self.fields:
            if field.kind == "integer":
                frame[field.name] = frame[field.name].astype("int64")
            elif field.kind == "number":
                frame[field.name] = frame[field.name].astype("float64")
        return frame


_INT64 = 2**63
_ARTICLE = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
}


def _fits(value: Any, kind: str) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "integer":  # within int64, as the model was trained on
        return (isinstance(value, int) and -_INT64 <= value < _INT64) or (
            isinstance(value, float) and value.is_integer() and -_INT64 <= value < _INT64
        )
    if kind == "number":
        return (isinstance(value, int) and abs(value) < _INT64) or (
            isinstance(value, float) and math.isfinite(value)
        )
    return isinstance(value, str)


def _describe(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 40 else text[:37] + "..."
