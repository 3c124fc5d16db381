"""Compile every use case's pipeline to the YAML beside it:
``python -m modelfactory_pipelines.compile``.

``make pipelines`` runs it. The pipeline of use case ``<name>`` is ``<name>_pipeline`` in
``pipelines/<name>.py``, and so is each of :data:`STANDALONE` (pipelines of no one use case);
a test fails when a committed YAML is stale.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from kfp import compiler

from modelfactory.use_cases import USE_CASES

HERE = Path(__file__).parent
# Pipelines beside the use cases' own: batch scoring serves every use case that scores in batch.
STANDALONE = ("batch_scoring",)
PIPELINES = (*USE_CASES, *STANDALONE)


def pipeline_of(name: str):
    return getattr(importlib.import_module(f"modelfactory_pipelines.{name}"), f"{name}_pipeline")


def compile_pipeline(name: str, path: Path | None = None) -> Path:
    path = path or HERE / f"{name}.yaml"
    compiler.Compiler().compile(pipeline_of(name), str(path))
    return path


if __name__ == "__main__":
    for name in PIPELINES:
        print(compile_pipeline(name))
