"""A use case's compiled pipeline: ``pipelines/<use case>.yaml``, read as data.

The compiled YAML is the file users upload to the KFP UI; on one machine ``modelfactory run``
executes it with the kfp local runner (ADR 0005), and a retraining run on a cluster submits it
with ``kfp.Client``. It is package data of ``modelfactory_pipelines``, read here by name, never
imported: the core imports none of the adapters.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from modelfactory.errors import ModelFactoryError

PIPELINES_PACKAGE = "modelfactory_pipelines"  # pipelines/ as installed: its compiled YAML files

# The pipeline spec's parameter types and the Python values each takes.
_PARAMETER_TYPES = {
    "STRING": (str,),
    "NUMBER_INTEGER": (int,),
    "NUMBER_DOUBLE": (int, float),
    "BOOLEAN": (bool,),
    "LIST": (list,),
    "STRUCT": (dict,),
}


def compiled_pipeline_file(use_case: str) -> Path:
    """Where the installed ``pipelines/<use_case>.yaml`` is."""
    from importlib.resources import as_file, files

    resource = files(PIPELINES_PACKAGE).joinpath(f"{use_case}.yaml")
    if not resource.is_file():
        raise ModelFactoryError(
            f"no compiled pipeline for {use_case!r} ({resource}); run `make pipelines`"
        )
    with as_file(resource) as path:  # an installed package is a folder: the path stays valid
        return Path(path)


def pipeline_spec(text: str) -> dict:
    """The pipeline spec of a compiled file (its first document: the Kubernetes settings of the
    tasks, such as the Secrets they read, follow as a second one)."""
    return next(d for d in yaml.safe_load_all(text) if d)


def pipeline_parameters(use_case: str) -> dict[str, dict]:
    """The parameters the compiled pipeline of ``use_case`` declares."""
    spec = pipeline_spec(compiled_pipeline_file(use_case).read_text())
    return dict(spec["root"].get("inputDefinitions", {}).get("parameters", {}))


def check_arguments(text: str, arguments: dict) -> dict[str, dict]:
    """Refuse arguments the pipeline does not take, or of the wrong type, naming each; return the
    pipeline's parameters as its spec declares them (``parameterType``, ``defaultValue``)."""
    spec = pipeline_spec(text)
    parameters = dict(spec["root"].get("inputDefinitions", {}).get("parameters", {}))
    problems = []
    for name, value in arguments.items():
        if name not in parameters:
            problems.append(f"{name}: the pipeline takes no such parameter")
            continue
        kind = parameters[name]["parameterType"]
        accepted = _PARAMETER_TYPES.get(kind, (object,))
        if (isinstance(value, bool) and bool not in accepted) or not isinstance(value, accepted):
            problems.append(f"{name}: expected {kind}, got {value!r}")
    if problems:
        name = spec.get("pipelineInfo", {}).get("name", "the pipeline")
        raise ModelFactoryError(
            f"{name}: " + "; ".join(problems) + f" (it takes {', '.join(sorted(parameters))})"
        )
    return parameters
