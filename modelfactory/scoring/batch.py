"""Scoring one partition of a batch: chunks in, results and rejects out to a part.

A :class:`BatchModel` is what a use case offers for batch work (the classifier scores the
records of a source; the forecaster forecasts its stores and needs no source). It plans
the partitions of the work and turns each chunk of a partition into results and rejects.
:func:`score_partition` drives it and writes the part; memory holds one chunk at a time.
The part's summary keeps the seconds of each stage (what the model reports per chunk, the
read, check, encode and walk of the classifier, and the write of the part) for the
batch's budget (``benchmarks/batch_scoring.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from modelfactory.scoring.results import PartWriter
from modelfactory.scoring.sources import DEFAULT_CHUNK_ROWS, Source
from modelfactory.status import camel_case


@dataclass
class Stages:
    """Seconds by stage: wall time, and the process's CPU time over all its threads (the
    stages of a chunk run one after another, so each one's CPU is its own); on a shared
    machine the CPU says what a stage costs, the wall what it took."""

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[stage] = self.wall.get(stage, 0.0) + time.perf_counter() - wall
            self.cpu[stage] = self.cpu.get(stage, 0.0) + time.process_time() - cpu

    def add(self, other: Stages) -> None:
        for mine, theirs in ((self.wall, other.wall), (self.cpu, other.cpu)):
            for stage, seconds in theirs.items():
                mine[stage] = mine.get(stage, 0.0) + seconds


@dataclass
class ChunkResult:
    results: pd.DataFrame | pa.Table  # the part's results columns (see BatchModel.table)
    rejects: pd.DataFrame | pa.Table  # row_key, reason, record
    rows_read: int
    stages: Stages = field(default_factory=Stages)  # what it cost, by stage

    def reject_reasons(self) -> list[str]:
        if isinstance(self.rejects, pa.Table):
            return self.rejects.column("reason").to_pylist() if self.rejects.num_rows else []
        return [str(r) for r in self.rejects.get("reason", pd.Series(dtype=str))]


@runtime_checkable
class BatchModel(Protocol):
    name: str
    version: str
    table: sa.Table  # the results table (modelfactory.scoring.results)
    needs_source: bool  # False: the model makes its own work (the forecaster's stores)

    def partitions(self, source: Source | None, wanted: int) -> int:
        """How many partitions the work can be cut into, at most ``wanted``."""

    def total(self, source: Source | None, partition: int, partitions: int) -> int | None:
        """The rows (or units) partition ``partition`` will produce, when known upfront."""

    def score(
        self, source: Source | None, partition: int, partitions: int, chunk_rows: int
    ) -> Iterator[ChunkResult]:
        """Results and rejects of partition ``partition``, a chunk at a time."""


@camel_case
@dataclass
class PartSummary:
    partition: int
    rows: int = 0  # read (or, for the forecaster, stores forecast)
    results: int = 0
    rejects: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)  # the commonest reject reasons
    stages: dict[str, float] = field(default_factory=dict)  # wall seconds by stage (read, ...)
    stages_cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by stage


def score_partition(
    model: BatchModel,
    source: Source | None,
    part_dir: str | Path,
    partition: int = 0,
    partitions: int = 1,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_chunk: Callable[[ChunkResult], None] | None = None,
) -> PartSummary:
    """Score partition ``partition`` of ``partitions`` into the part folder ``part_dir``."""
    started = time.perf_counter()
    summary = PartSummary(partition)
    writer = PartWriter(part_dir)
    stages = Stages()
    try:
        for chunk in model.score(source, partition, partitions, chunk_rows):
            with chunk.stages.timed("write"):
                writer.write(chunk.results, chunk.rejects)
            stages.add(chunk.stages)
            summary.rows += chunk.rows_read
            summary.results += len(chunk.results)
            summary.rejects += len(chunk.rejects)
            for reason in chunk.reject_reasons():
                field_name = reason.split(":", 1)[0]
                summary.reasons[field_name] = summary.reasons.get(field_name, 0) + 1
            if on_chunk is not None:
                on_chunk(chunk)
    finally:
        writer.close()
    summary.seconds = time.perf_counter() - started
    summary.stages = {stage: round(seconds, 3) for stage, seconds in stages.wall.items()}
    summary.stages_cpu = {stage: round(seconds, 3) for stage, seconds in stages.cpu.items()}
    return summary
