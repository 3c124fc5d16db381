"""Compile every pipeline to the YAML beside it: ``python -m pipelines.compile`` (``make pipelines``)."""

from pathlib import Path

from kfp import compiler

from pipelines.anomaly import anomaly_pipeline
from pipelines.classification import classification_pipeline
from pipelines.forecasting import forecasting_pipeline

PIPELINES = {
    "classification": classification_pipeline,
    "forecasting": forecasting_pipeline,
    "anomaly": anomaly_pipeline,
}
HERE = Path(__file__).parent


def compile_pipeline(name: str, path: Path | None = None) -> Path:
    path = path or HERE / f"{name}.yaml"
    compiler.Compiler().compile(PIPELINES[name], str(path))
    return path


if __name__ == "__main__":
    for pipeline_name in PIPELINES:
        print(compile_pipeline(pipeline_name))
