"""The classifier in batch: every record of a source scored, bad records set aside with the reason.

The registered version is loaded as serving loads it
(:class:`~modelfactory.classification.served.ServedClassifier`: the input schema from the
model's signature, the compiled twin checked against scikit-learn). Each chunk is
checked column by column against the schema (:mod:`.batch_check`), the good records are
encoded by the twin's encoder straight from the columns and walked by the twin's compiled
forest (:mod:`.forest_walk`), both over slices of the rows on every core the process may
use (:func:`modelfactory.cores.usable_cores`). The twin is checked against the
whole scikit-learn pipeline, with serving's tolerance, before it scores anything; a model
the twin does not know is scored by its pipeline. Why this walk: ADR 0012.

A record with a problem is a reject (its row key, the reasons, the record as read), never
a reason to stop the batch; a source that lacks a column the model needs stops the batch
before anything is scored, naming the column. Each chunk reports the seconds of its
stages (read, check, encode, walk) for the batch's budget.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelfactory.classification.batch_check import check_chunk
from modelfactory.classification.served import (
    PARITY_SAMPLE_ROWS,
    PARITY_TOLERANCE,
    ServedClassifier,
    _sample_records,
)
from modelfactory.cores import usable_cores
from modelfactory.errors import DataValidationError
from modelfactory.scoring.batch import ChunkResult, Stages
from modelfactory.scoring.results import SCORES
from modelfactory.scoring.sources import Chunk, Source
from modelfactory.sql import json_text


class BatchClassifier:
    """A registered classifier version scoring chunks of records (a :class:`BatchModel`)."""

    table = SCORES
    needs_source = True

    def __init__(self, served: ServedClassifier, threads: int | None = None):
        self.served = served
        self.name, self.version = served.name, served.version
        self.threads = threads or usable_cores()
        self.batch_fast_path, self.info = self._verified_batch_path()

    @classmethod
    def load(cls, name: str, version: str, tracking_uri: str) -> BatchClassifier:
        return cls(ServedClassifier.load(name, version=version, tracking_uri=tracking_uri))

    def _verified_batch_path(self) -> tuple[bool, dict]:
        compiled = self.served.compiled
        if compiled is None:
            return False, {"batch_fast_path": False, **self.served.info}
        sample = _sample_records(compiled, self.served.schema, PARITY_SAMPLE_ROWS)
        frame = self.served.schema.frame(sample.to_dict(orient="records"))
        positive = list(self.served.model.classes_).index(compiled.classes[1])
        reference = self.served.model.predict_proba(frame)[:, positive]
        columns = {c: frame[c].to_numpy(dtype=np.float64) for c, *_ in compiled.encoder.numeric}
        for column, _ in compiled.encoder.categorical:
            columns[column] = pa.array(frame[column].astype(str), type=pa.string())
        ours = compiled.forest.predict_keys(compiled.encoder.encode_columns(columns), self.threads)
        gap = float(np.max(np.abs(ours - reference)))
        info = {"batch_fast_path": gap <= PARITY_TOLERANCE, "batch_parity_gap": gap}
        return gap <= PARITY_TOLERANCE, {**info, "threads": self.threads}

    # -- BatchModel ---------------------------------------------------------------------
    def partitions(self, source: Source | None, wanted: int) -> int:
        return max(1, min(wanted, _source(source).units()))

    def total(self, source: Source | None, partition: int, partitions: int) -> int | None:
        return _source(source).rows() if partitions == 1 else None

    def score(
        self, source: Source | None, partition: int, partitions: int, chunk_rows: int
    ) -> Iterator[ChunkResult]:
        source = _source(source)
        chunks = source.chunks(partition, partitions, chunk_rows)
        while True:
            stages = Stages()
            with stages.timed("read"):
                chunk = next(chunks, None)
            if chunk is None:
                return
            yield self.score_chunk(chunk, source.name, stages)

    # -- the work -----------------------------------------------------------------------
    def score_chunk(self, chunk: Chunk, source: str, stages: Stages) -> ChunkResult:
        """Results and rejects of one chunk; ``stages`` gets what each stage cost."""
        with stages.timed("check"):
            self._require_columns(chunk, source)
            checked = check_chunk(chunk, self.served.schema.fields)
            keep = ~checked.rejected
            rejects = self._rejects(chunk, checked)
        compiled = self.served.compiled
        if self.batch_fast_path and compiled is not None:
            with stages.timed("encode"):
                columns = {c: checked.numbers[c][keep] for c, *_ in compiled.encoder.numeric}
                mask = pa.array(keep)
                for column, _ in compiled.encoder.categorical:
                    columns[column] = checked.texts[column].filter(mask)
                keys = compiled.encoder.encode_columns(columns, self.threads)
            with stages.timed("walk"):
                probability = compiled.forest.predict_keys(keys, self.threads)
        else:
            with stages.timed("walk"):
                good = checked.good_frame(self.served.schema.fields)
                probability = (
                    self.served.model.predict_proba(good)[:, 1] if len(good) else np.zeros(0)
                )
        labels = pa.array(self.served.labels, type=pa.string())
        results = pa.table(
            {
                "row_key": chunk.keys.filter(pa.array(keep)),
                "prediction": pc.take(labels, (probability >= self.served.threshold).view(np.int8)),
                "probability": probability,
            }
        )
        return ChunkResult(results, rejects, len(chunk), stages)

    def _require_columns(self, chunk: Chunk, source: str) -> None:
        present = set(chunk.columns)
        missing = [f.name for f in self.served.schema.fields if f.name not in present]
        if missing:
            raise DataValidationError(
                source,
                [
                    f"missing column(s) {', '.join(missing)} that {self.name} v{self.version} "
                    f"needs (its inputs: {', '.join(self.served.schema.names)})"
                ],
            )

    def _rejects(self, chunk: Chunk, checked) -> pa.Table:
        rejected = checked.rejected
        records = (
            [
                json_text({k: _plain(v) for k, v in row.items()})
                for row in chunk.rows(rejected, self.served.schema.names).to_dict("records")
            ]
            if rejected.any()
            else []
        )
        return pa.table(
            {
                "row_key": chunk.keys.filter(pa.array(rejected)),
                "reason": pa.array(checked.reasons[rejected].tolist(), type=pa.string()),
                "record": pa.array(records, type=pa.string()),
            }
        )


def _source(source: Source | None) -> Source:
    if source is None:
        raise ValueError("the classifier scores the records of a source: give --data")
    return source


def _plain(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
