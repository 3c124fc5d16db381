"""The tabular convention of v2 (MLServer's pandas codec): one tensor per column in, records out;
predictions back as one tensor per output.

A tabular request carries one tensor per input column, shape ``[n]`` (or ``[n, 1]``); a reply
carries one tensor per output, shape ``[n]``, or ``[n, h]`` for an output that holds a list of
``h`` values per record (a forecast's days; see ``TensorSpec.length_from``). Tensors are checked
against the model's :class:`~modelfactory.inference.served.TensorSpec` list, and every problem
names the input it is about. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from modelfactory.inference.protocol.v2 import InferRequest, Tensor, V2Error
from modelfactory.inference.served import ACCEPTED_DATATYPES, TensorSpec


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
