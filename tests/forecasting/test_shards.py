"""Sharding the model factory: which store lands in which shard, reading a shard's rows only, and
merging the shards' model sets into one."""

from __future__ import annotations

import pandas as pd
import pytest

from modelfactory.data.io import distinct_values, read_dataset, write_dataset
from modelfactory.forecasting import steps
from modelfactory.forecasting.config import ForecastConfig
from modelfactory.forecasting.factory import FactoryError
from modelfactory.forecasting.features import prophet_frame
from modelfactory.forecasting.model_set import ModelSetError, merge_model_sets, read_manifest
from modelfactory.forecasting.shards import plan_shards, shard_of, stores_of_shard

CONFIG = ForecastConfig(
    holdout_weeks=4, refit_full_history=False, uncertainty_samples=0, max_failure_share=0.3
)


@pytest.mark.parametrize("n_shards", [1, 2, 3, 8])
def test_a_store_always_lands_in_the_same_shard(n_shards):
    everyone = plan_shards(range(1, 1116), n_shards)
    few = plan_shards([7, 500, 1115], n_shards)
    for shard, stores in few.items():
        assert set(stores) <= set(everyone[shard])  # the other stores change nothing
    assert sorted(s for stores in everyone.values() for s in stores) == list(range(1, 1116))


def test_ids_with_a_pattern_still_spread_over_every_shard():
    tens = plan_shards(range(10, 11160, 10), 4)  # modulo 4 would leave shards 1 and 3 empty
    assert sorted(tens) == [0, 1, 2, 3]
    assert min(len(s) for s in tens.values()) > 0.8 * 1115 / 4


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_a_bad_number_of_shards_is_named(bad):
    with pytest.raises(ValueError, match="n_shards must be a whole number of at least 1"):
        shard_of(1, bad)


@pytest.fixture(scope="module")
def split_files(synthetic_sales, tmp_path_factory):
    work = tmp_path_factory.mktemp("split")
    write_dataset(prophet_frame(synthetic_sales), str(work / "features"))
    steps.split(str(work / "features"), str(work / "train"), str(work / "holdout"), 4, 180)
    return work


def test_a_shard_reads_only_its_stores_rows(split_files):
    path = str(split_files / "train")
    full = read_dataset(path)
    assert distinct_values(path, "Store") == [1, 2, 3]
    mine = read_dataset(path, "Store", [2, 3])
    assert sorted(mine["Store"].unique()) == [2, 3]
    expected = full[full["Store"].isin([2, 3])].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, expected)


def _train_shards(split_files, out, n_shards, config=CONFIG):
    parts = []
    for shard in steps.plan(str(split_files / "train"), n_shards)["shards"]:
        part = out / f"shard-{shard}"
        info = steps.train_shard(
            str(split_files / "train"),
            str(split_files / "holdout"),
            str(part),
            shard,
            n_shards,
            config,
            n_jobs=1,
        )
        assert info["stores"] == len(stores_of_shard([1, 2, 3], shard, n_shards))
        parts.append(part)
    return parts


def test_merged_shards_make_the_same_model_set_as_one_shard(split_files, tmp_path):
    one = merge_model_sets(_train_shards(split_files, tmp_path / "one", 1), tmp_path / "set1")
    parts = _train_shards(split_files, tmp_path / "three", 3)
    three = merge_model_sets(parts, tmp_path / "set3", failures={42: "not in the data"})
    assert len(parts) == 2  # shard 0 holds none of stores 1-3: no task for it
    assert sorted(three["stores"]) == sorted(one["stores"]) == ["1", "2", "3"]
    for store, record in one["stores"].items():
        assert three["stores"][store]["metrics"] == record["metrics"]
    assert three["failures"] == {"42": "not in the data"}
    assert read_manifest(tmp_path / "set3")["metrics"]["stores"] == 3
    assert sorted(p.name for p in (tmp_path / "set3" / "stores").iterdir()) == [
        "store_1.json",
        "store_2.json",
        "store_3.json",
    ]


def test_merging_refuses_shards_that_disagree(split_files, tmp_path):
    parts = _train_shards(split_files, tmp_path / "a", 1)
    with pytest.raises(ModelSetError, match="store 1 is in two shards"):
        merge_model_sets([parts[0], parts[0]], tmp_path / "twice")
    other = _train_shards(
        split_files,
        tmp_path / "b",
        3,
        ForecastConfig(
            holdout_weeks=4,
            refit_full_history=False,
            uncertainty_samples=0,
            max_failure_share=0.3,
            interval_width=0.8,
        ),
    )
    with pytest.raises(ModelSetError, match="another configuration"):
        merge_model_sets([parts[0], other[0]], tmp_path / "mixed")
    with pytest.raises(ModelSetError, match="no model sets to merge"):
        merge_model_sets([], tmp_path / "none")


def test_failures_count_over_all_shards_and_nothing_is_written(split_files, tmp_path):
    parts = _train_shards(split_files, tmp_path / "a", 3)
    failures = {40: "too little history", 41: "too little history"}
    with pytest.raises(FactoryError, match="2 of 5 stores have no model") as caught:
        merge_model_sets(parts, tmp_path / "set", failures=failures)
    assert set(caught.value.failures) == {40, 41}
    assert not (tmp_path / "set" / "manifest.json").exists()


def test_a_run_whose_stores_all_failed_the_split_names_them(split_files, tmp_path):
    with pytest.raises(FactoryError, match="store 7: too little history"):
        steps.merge(
            [],
            str(split_files / "train"),
            str(tmp_path / "set"),
            known_failures={"7": "too little history"},
        )
