"""A registered classifier loaded for serving: version resolved once, inputs checked, fast path
verified.

Serving knows nothing about training: it resolves ``models:/<name>@<alias>`` to a
version, loads that version, reads the input schema from its signature, and
answers records with a class and a probability. When the model's structure
allows, predictions come from the compiled twin (:mod:`.compiled_forest`), but only after
it matched the original on the logged input example and on a few thousand
records drawn across the model's whole input space.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from modelfactory.classification.compiled_forest import (
    CompiledClassifier,
    compile_classifier,
    parity_gap,
)
from modelfactory.inference.schema import InputSchema
from modelfactory.inference.served import DATATYPE_BY_KIND, TensorSpec
from modelfactory.registry import Registry

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-9
PARITY_SAMPLE_ROWS = 2000


@dataclass
class ServedClassifier:
    name: str
    version: str
    run_id: str | None
    schema: InputSchema
    model: Any  # the scikit-learn pipeline
    labels: tuple[str, str] = ("no", "yes")  # (negative, positive)
    threshold: float = 0.5
    compiled: CompiledClassifier | None = None
    info: dict = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        name: str,
        alias: str = "champion",
        tracking_uri: str | None = None,
        version: str | None = None,
    ) -> ServedClassifier:
        started = time.perf_counter()
        registry = Registry(tracking_uri)
        mlflow.set_tracking_uri(registry.tracking_uri)
        if version is None:
            found = registry.version_by_alias(name, alias)
            if found is None:
                raise LookupError(f"registered model {name!r} has no version with alias {alias!r}")
            version = str(found.version)
        uri = f"models:/{name}/{version}"
        model_info = mlflow.models.get_model_info(uri)
        metadata = model_info.metadata or {}
        served = cls(
            name=name,
            version=version,
            run_id=model_info.run_id,
            schema=InputSchema.from_signature(model_info.signature),
            model=mlflow.sklearn.load_model(uri),
            labels=tuple(metadata.get("labels", ("no", "yes"))),
            threshold=float(metadata.get("threshold", 0.5)),
        )
        served.compiled, served.info = served._verified_fast_path(_input_example(model_info))
        served.info["load_seconds"] = round(time.perf_counter() - started, 3)
        log.info("loaded %s v%s: %s", name, version, served.info)
        return served

    def _verified_fast_path(
        self, example: pd.DataFrame | None
    ) -> tuple[CompiledClassifier | None, dict]:
        compiled = compile_classifier(self.model)
        if compiled is None:
            return None, {"fast_path": False, "fast_path_reason": "model structure not supported"}
        sample = _sample_records(compiled, self.schema, PARITY_SAMPLE_ROWS)
        if example is not None:
            sample = pd.concat([example[self.schema.names], sample], ignore_index=True)
        gap = parity_gap(compiled, self.model, self.schema.frame(sample.to_dict(orient="records")))
        if gap > PARITY_TOLERANCE:
            return None, {
                "fast_path": False,
                "fast_path_reason": f"parity gap {gap:.3g} on {len(sample)} rows",
            }
        return compiled, {"fast_path": True, "parity_gap": gap, "parity_rows": len(sample)}

    def positive_probability(self, records: Sequence[Mapping]) -> np.ndarray:
        if self.compiled is not None:
            return self.compiled.predict_positive(records)
        return self.model.predict_proba(self.schema.frame(records))[:, 1]

    def predict(self, records, max_records: int | None = None) -> list[dict]:
        """Class and positive-class probability per record; raises InvalidInput naming bad
        fields."""
        records = self.schema.check(records, max_records)
        probabilities = self.positive_probability(records)
        negative, positive = self.labels
        return [
            {"class": positive if p >= self.threshold else negative, "probability": float(p)}
            for p in probabilities
        ]

    # The served-model interface (modelfactory.inference.served.ServedModel).
    def input_tensors(self) -> list[TensorSpec]:
        return self._input_specs

    @cached_property
    def _input_specs(self) -> list[TensorSpec]:  # every v2 request reads them: built once
        return [TensorSpec(f.name, DATATYPE_BY_KIND[f.kind], f.kind) for f in self.schema.fields]

    def output_tensors(self) -> list[TensorSpec]:
        return [TensorSpec("class", "BYTES", "string"), TensorSpec("probability", "FP64", "number")]

    def summarize(self, prediction: Mapping) -> tuple[str, float]:
        return prediction["class"], prediction["probability"]

    def agrees(self, ours: Sequence[Mapping], theirs: Sequence[Mapping]) -> list[bool]:
        return [a["class"] == b["class"] for a, b in zip(ours, theirs, strict=True)]


def _input_example(model_info) -> pd.DataFrame | None:
    try:
        example = (
            model_info.load_input_example() if hasattr(model_info, "load_input_example") else None
        )
    except Exception:  # an example is a bonus for the parity check, never a reason not to serve
        log.warning("could not load the input example of %s", model_info.model_uri)
        return None
    return example if isinstance(example, pd.DataFrame) else None


def _sample_records(
    compiled: CompiledClassifier, schema: InputSchema, rows: int, seed: int = 0
) -> pd.DataFrame:
    """Records spread over every category and ±3 standard deviations of every number the model
    knows."""
    rng = np.random.default_rng(seed)
    kinds = {f.name: f.kind for f in schema.fields}
    data = {}
    for column, _, mean, scale in compiled.encoder.numeric:
        values = mean + scale * rng.uniform(-3, 3, rows)
        data[column] = (
            np.round(values).astype(np.int64) if kinds.get(column) == "integer" else values
        )
    for column, positions in compiled.encoder.categorical:
        data[column] = rng.choice([*positions, "__unseen__"], rows)
    return pd.DataFrame(data)
