"""Helpers of the serving tests: a settable rollout, metric reads, v2 bodies, real served
processes."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

from modelfactory.local.ports import free_port
from modelfactory.local.serving import ServingProcess
from modelfactory.local.traffic import Load  # noqa: F401  (used by the serving tests)
from modelfactory.use_cases import CLASSIFICATION

MODEL = CLASSIFICATION.model_name


def train_version(
    uri: str,
    workdir: Path,
    seed: int,
    model: str = MODEL,
    flip_labels: bool = False,
    frame=None,
    promotion: str = "direct",
) -> str:
    """Train, evaluate and register a small bank-marketing version (3,000 synthetic rows, or the
    rows of ``frame``; 25 trees); ``flip_labels`` trains it on the opposite answers (a
    challenger that disagrees); ``promotion`` as the pipelines' register step takes it ("rollout":
    a version that passes the gate is left as challenger for a rollout)."""
    from modelfactory.classification import steps
    from modelfactory.classification.training import ClassifierConfig
    from modelfactory.data.bank_marketing import generate_bank_marketing
    from modelfactory.data.io import write_dataset

    frame = generate_bank_marketing(3000, seed=seed) if frame is None else frame.copy()
    if flip_labels:
        frame["y"] = frame["y"].map({"yes": "no", "no": "yes"})
    data = workdir / f"data-{model}-{seed}.parquet"
    write_dataset(frame, str(data))
    train, holdout = (
        str(workdir / f"train-{model}-{seed}.parquet"),
        str(workdir / f"holdout-{model}-{seed}.parquet"),
    )
    steps.split(str(data), train, holdout, seed=seed)
    info = steps.train(
        train,
        str(workdir / f"model-{model}-{seed}.json"),
        tracking_uri=uri,
        config=ClassifierConfig(n_estimators=25, imbalance="class_weight", seed=seed, n_jobs=1),
    )
    steps.evaluate(info, holdout, tracking_uri=uri)
    return steps.register(info, holdout, model, tracking_uri=uri, promotion=promotion)["version"]


class Rollout:
    """A rollout state the test changes at will, read by the router like the registry would be."""

    def __init__(self, champion: str, challenger: str):
        from modelfactory.rollout import RolloutState

        self.state = RolloutState(champion=champion, challenger=challenger)

    def set(self, **changes):
        from dataclasses import replace

        self.state = replace(self.state, **changes)

    def __call__(self):
        return self.state


def metric(endpoint, name: str, **labels) -> float:
    return endpoint.metrics_registry.get_sample_value(name, labels) or 0.0


def v2_body(records, datatypes=None):
    from modelfactory.data.bank_marketing import CATEGORIES

    inputs = []
    for column in records[0]:
        values = [r[column] for r in records]
        kind = (
            "BYTES" if column in CATEGORIES else ("INT64" if isinstance(values[0], int) else "FP64")
        )
        inputs.append(
            {
                "name": column,
                "shape": [len(values)],
                "datatype": (datatypes or {}).get(column, kind),
                "data": values,
            }
        )
    return {"inputs": inputs}


def triton_inputs(module, records, binary: bool = True):
    """tritonclient's InferInputs (``module``: tritonclient.http or .grpc) of bank-marketing
    ``records``, one tensor per column."""
    import numpy as np

    from modelfactory.data.bank_marketing import CATEGORIES

    inputs = []
    for column in records[0]:
        values = [r[column] for r in records]
        if column in CATEGORIES:
            array, datatype = np.array([v.encode() for v in values], dtype=object), "BYTES"
        elif isinstance(values[0], int):
            array, datatype = np.array(values, dtype=np.int64), "INT64"
        else:
            array, datatype = np.array(values, dtype=np.float64), "FP64"
        tensor = module.InferInput(column, [len(values)], datatype)
        if module.__name__.endswith("http"):
            tensor.set_data_from_numpy(array, binary_data=binary)
        else:
            tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


@contextmanager
def served_for_real(model: str, uri: str, home: Path, **options):
    """`bentoml serve` of ``model`` with v2 gRPC, its own home and sqlite prediction store,
    polling the rollout every second; yields (process, gRPC target, store URL) once gRPC answers.

    ``options``: ``workers``, ``metrics_port`` ... for ServingProcess, ``env`` for more environment.
    """
    import tritonclient.grpc as grpcclient

    store = f"sqlite:///{home / 'predictions.db'}"
    extra_env = {
        "MODELFACTORY_HOME": str(home),
        "MODELFACTORY_ROLLOUT_POLL_SECONDS": "1",
        "MODELFACTORY_PREDICTION_STORE_URL": store,
        **options.pop("env", {}),
    }
    process = ServingProcess(
        model, uri, free_port(), log_file=home / "serve.log", extra_env=extra_env, **options
    )
    with process:
        until(grpcclient.InferenceServerClient(process.grpc_target).is_server_ready)
        yield process, process.grpc_target, store


def until(check, timeout: float = 30):
    """Poll ``check()`` until it returns something truthy (errors count as not yet); return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except Exception:
            found = None
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError("condition not reached in time")
