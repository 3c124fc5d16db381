"""The sharded model factory: the compiled forecasting pipeline, run with the kfp local runner
(which executes its ParallelFor and Collected), registers the same model set whatever the number
of shards."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from modelfactory.forecasting.registered import load_model_set
from modelfactory.forecasting.shards import shard_of
from modelfactory.local.pipeline_runs import compiled_pipeline, run_locally
from tests.support.data import ROSSMANN_TRAIN, shared_file

pytestmark = pytest.mark.integration
# Two stores in each of the three shards of a 3-shard run.
STORES = [1, 2, 3, 4, 15, 17]


@pytest.fixture(scope="module")
def six_stores(tmp_path_factory):
    frame = pd.read_csv(shared_file(ROSSMANN_TRAIN), dtype={"StateHoliday": str}, low_memory=False)
    path = tmp_path_factory.mktemp("rossmann-shards") / "train.csv"
    frame[frame["Store"].isin(STORES)].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def runs(mlflow_server, six_stores, isolated_home):
    """{n_shards: (registration summary, step events, pipeline root)} for 1 and 3 shards."""
    done = {}
    for n_shards in (1, 3):
        events = []
        root = isolated_home / f"shard-runs-{n_shards}"
        summary = run_locally(
            compiled_pipeline("forecasting"),
            {
                "source": str(six_stores),
                "mlflow_tracking_uri": mlflow_server,
                "model_name": f"store-sales-shards-{n_shards}",
                "n_shards": n_shards,
            },
            root,
            events.append,
        )
        done[n_shards] = summary, events, root
    return done


def test_shards_run_as_parallel_tasks_each_with_its_own_stores(runs):
    assert {shard_of(s, 3) for s in STORES} == {0, 1, 2}  # every shard of a 3-shard run has work
    for n_shards, (summary, events, root) in runs.items():
        # kfp's local runner logs its concurrent iterations through one shared, thread-unsafe
        # logging context and may drop a "finished" line: count the starts.
        started = [e.task for e in events if e.status == "running"]
        assert started.count("train-store-shard") == n_shards
        assert summary["stores"] == len(STORES) and summary["failed_stores"] == {}
        manifests = [
            json.loads(path.read_text())
            for path in root.glob("*/for-loop-*-iteration-*/train-store-shard/model/manifest.json")
        ]
        assert len(manifests) == n_shards
        for manifest in manifests:
            shard = manifest["metadata"]["shard"]
            assert {int(s) for s in manifest["stores"]} == {
                s for s in STORES if shard_of(s, n_shards) == shard
            }


def test_one_or_three_shards_register_the_same_stores_with_the_same_holdout_errors(
    runs, mlflow_server
):
    registered = {}
    for n_shards, (summary, _, _) in runs.items():
        model_set = load_model_set(
            f"store-sales-shards-{n_shards}", summary["version"], mlflow_server
        )
        registered[n_shards] = model_set.model.manifest()
    one, three = registered[1], registered[3]
    assert sorted(map(int, one["stores"])) == sorted(map(int, three["stores"])) == STORES
    for store, record in one["stores"].items():
        for metric in ("n", "mape", "rmse", "baseline_mape", "baseline_rmse"):
            assert three["stores"][store]["metrics"][metric] == pytest.approx(
                record["metrics"][metric], rel=1e-9
            ), f"store {store} {metric}"
    assert three["metadata"]["shards"] == 3 and one["metadata"]["shards"] == 1
    assert runs[1][0]["candidate"] == pytest.approx(runs[3][0]["candidate"], rel=1e-9)
