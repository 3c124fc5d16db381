"""Batch scoring steps, as plain functions over files: what the CLI and the KFP components call.

``resolve`` picks the registered version (the champion unless one is named) once, so
every partition of a batch scores with the same version even if the champion moves
meanwhile; ``plan`` cuts the work into partitions; ``score`` writes one partition's part;
``publish`` writes every part to the destination in one transaction. A pipeline runs the
partitions as parallel tasks; the CLI runs one partition in its own process.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path

from modelfactory.errors import ModelFactoryError
from modelfactory.registry import CHAMPION, Registry
from modelfactory.scoring.batch import BatchModel, ChunkResult, score_partition
from modelfactory.scoring.results import Lineage
from modelfactory.scoring.results import publish as publish_parts
from modelfactory.scoring.sources import DEFAULT_CHUNK_ROWS, Source
from modelfactory.status import to_status
from modelfactory.use_cases import USE_CASES, served_use_case


def new_batch_id() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def resolve(model_name: str, version: str = "", tracking_uri: str = "") -> str:
    """``version`` when given (checked to exist), else the version the champion alias names."""
    registry = Registry(tracking_uri or None)
    if version:
        try:
            registry.client.get_model_version(model_name, str(version))
        except Exception:
            raise ModelFactoryError(
                f"registered model {model_name!r} has no version {version} at "
                f"{registry.tracking_uri}; see `modelfactory models`"
            ) from None
        return str(version)
    found = registry.version_by_alias(model_name, CHAMPION)
    if found is None:
        raise ModelFactoryError(
            f"registered model {model_name!r} has no champion at {registry.tracking_uri}; "
            "name a version with --version, or see `modelfactory models`"
        )
    return str(found.version)


def load_model(
    model_name: str, version: str, tracking_uri: str = "", horizon_days: int = 42
) -> BatchModel:
    """The registered version as its use case scores it in batch."""
    registry = Registry(tracking_uri or None)
    case = served_use_case(model_name, registry.use_case_of(model_name))
    if case.batch is None:
        batchable = [c.name for c in USE_CASES.values() if c.batch is not None]
        raise ModelFactoryError(
            f"{model_name} ({case.name}) has no batch scoring; it exists for {batchable}"
        )
    return case.batch.load(
        model_name, version, registry.tracking_uri, {"horizon_days": horizon_days}
    )


def open_source(model: BatchModel, data: str = "", query: str = "", key_column: str = ""):
    if not model.needs_source:
        if data or query:
            raise ModelFactoryError(f"{model.name} makes its own work: it takes no --data")
        return None
    if not data:
        raise ModelFactoryError(
            f"{model.name} scores records: give --data (a file, URL or database)"
        )
    if "://" in data and not query and not data.startswith(("http://", "https://", "file:")):
        raise ModelFactoryError(
            f"{data.split('://')[0]}://...: a database needs --query 'SELECT ...'"
        )
    return Source(data, query=query, key_column=key_column)


def plan(model: BatchModel, source: Source | None, partitions: int = 1) -> list[int]:
    """The partitions the work is cut into (at most ``partitions``; fewer when the source has
    fewer independent units)."""
    if partitions < 1:
        raise ModelFactoryError(f"partitions must be at least 1, got {partitions}")
    return list(range(model.partitions(source, partitions)))


def score(
    model: BatchModel,
    source: Source | None,
    part_dir: str,
    partition: int = 0,
    partitions: int = 1,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_chunk: Callable[[ChunkResult], None] | None = None,
) -> dict:
    return to_status(
        score_partition(model, source, part_dir, partition, partitions, chunk_rows, on_chunk)
    )


def publish(
    part_dirs: list[str | Path],
    to: str,
    model: BatchModel,
    batch_id: str = "",
    on_rows: Callable[[int], None] | None = None,
) -> dict:
    """Every part into ``to``, replacing batch ``batch_id`` (a new id when empty)."""
    if not to:
        raise ModelFactoryError("give --to: a SQLAlchemy database URL or a .parquet path")
    batch_id = batch_id or new_batch_id()
    written = publish_parts(
        part_dirs, to, model.table, Lineage(batch_id, model.name, model.version), on_rows
    )
    return {"batch_id": batch_id, "written": written, "table": model.table.name}
