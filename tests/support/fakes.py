"""A served model without MLflow, for fast router tests."""

from __future__ import annotations

import time

from modelfactory.inference.schema import InvalidInput
from modelfactory.inference.served import TensorSpec


class FakeModel:
    name = "fake"

    def __init__(
        self,
        version: str,
        answer: str = "no",
        delay: float = 0.0,
        fail: bool = False,
        reject: bool = False,
    ):
        self.version = version
        self.answer = answer
        self.delay = delay
        self.fail = fail
        self.reject = reject
        self.calls = 0

    def input_tensors(self):
        return [TensorSpec("x", "FP64", "number")]

    def output_tensors(self):
        return [TensorSpec("class", "BYTES", "string"), TensorSpec("probability", "FP64", "number")]

    def predict(self, records, max_records=None):
        self.calls += 1
        if not isinstance(records, list) or not all(
            isinstance(r, dict) and "x" in r for r in records
        ):
            raise InvalidInput(["records[0].x: missing"])
        if self.reject:
            raise InvalidInput(["records[0].x: not for me"])
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("challenger blew up")
        return [
            {"class": self.answer, "probability": 0.9 if self.answer == "yes" else 0.1}
            for _ in records
        ]

    def summarize(self, prediction):
        return prediction["class"], prediction["probability"]

    def agrees(self, ours, theirs):
        return [a["class"] == b["class"] for a, b in zip(ours, theirs, strict=True)]
