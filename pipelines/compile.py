"""Compile every use case's pipeline to the YAML beside it:
``python -m modelfactory_pipelines.compile``.

``make pipelines`` runs it. The pipeline of use case ``<name>`` is ``<name>_pipeline`` in
``pipelines/<name>.py``; a test fails when the committed YAML is stale.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from kfp import compiler

from modelfactory.use_cases import USE_CASES

HERE = Path(__file__).parent


def pipeline_of(name: str):
    return getattr(importlib.import_module(f"modelfactory_pipelines.{name}"), f"{name}_pipeline")


def compile_pipeline(name: str, path: Path | None = None) -> Path:
    path = path or HERE / f"{name}.yaml"
    compiler.Compiler().compile(pipeline_of(name), str(path))
    return path


if __name__ == "__main__":
    for use_case in USE_CASES:
        print(compile_pipeline(use_case))
