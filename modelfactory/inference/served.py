"""What serving needs from a model, whatever it predicts: the interface the router and protocols
use.

The classifier (:class:`~modelfactory.classification.served.ServedClassifier`)
and the store forecaster
(:class:`~modelfactory.forecasting.served.ServedForecaster`) implement it, and
the router, the endpoint, the HTTP app and v2 gRPC serve either the same way. A
served model names its input and output tensors (Open Inference Protocol v2
datatypes, one tensor per column, the convention of MLServer's pandas codec),
predicts from JSON-like records, and says how to summarise and compare its
predictions (for metrics and shadow agreement).

An output is one value per record (v2 shape ``[n]``), or a list per record whose
length one of the record's inputs sets (``TensorSpec.length_from``: the
forecaster's ``horizon_days`` days, v2 shape ``[n, horizon_days]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

# The v2 datatype each schema kind is served as, and the datatypes a client may send for it.
DATATYPE_BY_KIND = {"integer": "INT64", "number": "FP64", "string": "BYTES", "boolean": "BOOL"}
_INTEGERS = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
ACCEPTED_DATATYPES = {
    "integer": frozenset(_INTEGERS),
    "number": frozenset((*_INTEGERS, "FP16", "FP32", "FP64")),
    "string": frozenset(("BYTES",)),
    "boolean": frozenset(("BOOL",)),
}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # v2 datatype: BOOL, INT64, FP64, BYTES, ...
    kind: str  # schema kind: integer, number, string, boolean
    # Outputs only: each record's value is a list as long as this input of the record says.
    length_from: str | None = None

    @property
    def shape(self) -> list[int]:
        return [-1, -1] if self.length_from else [-1]

    def as_metadata(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape}


@runtime_checkable
class ServedModel(Protocol):
    name: str
    version: str

    def input_tensors(self) -> list[TensorSpec]: ...

    def output_tensors(self) -> list[TensorSpec]: ...

    def predict(self, records: Any, max_records: int | None = None) -> list[dict]:
        """One dict per record, keyed by output tensor name.

        Raises InvalidInput naming the fields at fault, or its subclass InputNotFound when a
        record names something the model does not have (answered 404, not 422).
        """

    def summarize(self, prediction: Mapping) -> tuple[str, float]:
        """(label, score) of one prediction, for the prediction-distribution metrics."""

    def agrees(self, ours: Sequence[Mapping], theirs: Sequence[Mapping]) -> list[bool]:
        """Per record, whether two versions' predictions agree (shadow analysis)."""
