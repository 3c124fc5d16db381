"""Saving a model set, loading one store lazily, and forecasting a horizon."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from modelfactory.forecasting.model_set import (
    ModelSetError,
    forecast,
    future_frame,
    list_stores,
    load_store_model,
    read_manifest,
    save_model_set,
)


def test_layout_is_one_file_per_store_plus_a_manifest(model_set_dir):
    assert sorted(p.name for p in (model_set_dir / "stores").iterdir()) == [
        "store_1.json",
        "store_2.json",
        "store_3.json",
    ]
    manifest = read_manifest(model_set_dir)
    assert sorted(manifest["stores"]) == ["1", "2", "3"]
    assert manifest["config"]["interval_width"] == 0.95
    assert manifest["metadata"] == {"source": "synthetic"}
    assert manifest["metrics"]["stores"] == 3
    assert manifest["stores"]["2"]["file"] == "stores/store_2.json"
    assert list_stores(model_set_dir) == [1, 2, 3]


def test_loading_one_store_reads_only_its_file(model_set_dir, tmp_path):
    copy = tmp_path / "set"
    (copy / "stores").mkdir(parents=True)
    (copy / "manifest.json").write_text("not json")  # never read on the happy path
    (copy / "stores" / "store_1.json").write_text("garbage")  # never read either
    (copy / "stores" / "store_2.json").write_bytes(
        (model_set_dir / "stores" / "store_2.json").read_bytes()
    )
    model = load_store_model(copy, 2)
    assert model.store == 2
    assert model.history_end == pd.Timestamp("2015-07-31")
    assert model.open_weekdays == [0, 1, 2, 3, 4, 5]


def test_unknown_store_says_what_the_set_holds(model_set_dir):
    with pytest.raises(
        ModelSetError, match=r"store 9: no model in .* the set has 3 stores \(\[1, 2, 3\]\)"
    ):
        load_store_model(model_set_dir, 9)
    with pytest.raises(ModelSetError, match="not a model set"):
        load_store_model(model_set_dir / "stores", 1)


def test_failed_store_reason_is_given(synthetic_result, tmp_path):
    synthetic_result_copy = type(synthetic_result)(
        config=synthetic_result.config,
        models={1: synthetic_result.models[1]},
        failures={2: "RuntimeError: optimiser diverged"},
        warnings=[],
        metrics={},
    )
    save_model_set(tmp_path, synthetic_result_copy)
    with pytest.raises(ModelSetError, match="training failed: RuntimeError: optimiser diverged"):
        load_store_model(tmp_path, 2)


def test_forecast_is_daily_with_intervals_and_closed_sundays(model_set_dir):
    model = load_store_model(model_set_dir, 1)
    frame = forecast(model, horizon_days=28)
    assert list(frame.columns) == ["ds", "yhat", "yhat_lower", "yhat_upper", "open"]
    assert len(frame) == 28
    assert frame["ds"].iloc[0] == pd.Timestamp("2015-08-01")
    assert (frame["ds"].diff().dropna() == pd.Timedelta(days=1)).all()
    sundays = frame[frame["ds"].dt.dayofweek == 6]
    assert len(sundays) == 4 and not sundays["open"].any() and (sundays["yhat"] == 0).all()
    open_days = frame[frame["open"]]
    assert (open_days["yhat_lower"] < open_days["yhat"]).all()
    assert (open_days["yhat"] < open_days["yhat_upper"]).all()
    assert open_days["yhat"].between(1000, 50000).all()


def test_future_regressor_policies(model_set_dir):
    model = load_store_model(model_set_dir, 1)
    assert "promo" in model.regressors
    last_year = future_frame(model, 28, "last_year")
    none = future_frame(model, 28, "none")
    assert set(last_year["promo"]) == {0.0, 1.0}  # the fortnightly rhythm, 52 weeks back
    assert (none["promo"] == 0).all()
    history = model.model.history.set_index("ds")["promo"]
    day = last_year["ds"].iloc[2]
    assert last_year["promo"].iloc[2] == history.get(day - pd.Timedelta(days=364), 0.0)
    with_plan = forecast(model, 28, "last_year")
    without = forecast(model, 28, "none")
    promo_days = last_year["promo"].to_numpy() == 1
    assert (with_plan["yhat"][promo_days] > without["yhat"][promo_days]).all()


def test_explicit_promo_plan(model_set_dir):
    model = load_store_model(model_set_dir, 3)
    ds = pd.date_range("2015-08-01", periods=14)
    plan = pd.DataFrame({"ds": ds, "promo": 1.0})
    frame = future_frame(model, 14, plan)
    assert (frame["promo"] == 1).all()
    with pytest.raises(ValueError, match="column 'promo' has no value for \\['2015-08-11'"):
        future_frame(model, 14, plan.head(10))
    with pytest.raises(ValueError, match="horizon_days must be at least 1"):
        forecast(model, 0)


def test_manifest_is_valid_json_and_models_round_trip(model_set_dir, synthetic_result):
    stored = json.loads((model_set_dir / "stores" / "store_1.json").read_text())
    assert stored["prophet"] == synthetic_result.models[1].model_json
