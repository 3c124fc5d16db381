"""Realized performance: logged predictions joined with their ground truth give, per version, the
figures scikit-learn gives on the same rows (on sqlite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from modelfactory.monitoring.performance import read_labelled, realized_performance
from modelfactory.monitoring.reference import VersionFigures
from modelfactory.monitoring.window import Window
from modelfactory.predictions.feedback import FeedbackStore, parse_feedback
from modelfactory.promotion import GateMetric
from modelfactory.use_cases import CLASSIFICATION, FORECASTING
from tests.support.prediction_log import write_log

SPEC = CLASSIFICATION.monitoring
START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
RECORDS_PER_REQUEST = 3


def figures(version: str, **metrics) -> VersionFigures:
    return VersionFigures("m", version, f"run-{version}", metrics, registry=None)


def log_version(url, version, n, seed):
    """``n`` served predictions of ``version`` in requests of 3 records, and their truth."""
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.3
    probability = np.clip(0.3 * truth + rng.random(n) * 0.7, 0, 1)
    request_ids = [f"v{version}-r{i // RECORDS_PER_REQUEST}" for i in range(n)]
    features = [{"age": 30 + i % 40, "job": "admin."} for i in range(n)]
    outputs = [{"class": "yes" if p >= 0.5 else "no", "probability": p} for p in probability]
    write_log(url, features, outputs, "m", version, START, request_ids=request_ids)
    # The same requests answered in shadow by another version: never joined as served rows.
    shadow = [{"class": "no", "probability": 1 - p} for p in probability]
    write_log(url, features, shadow, "m", "9", START, role="shadow", request_ids=request_ids)
    return request_ids, truth, probability


def test_realized_metrics_equal_scikit_learns_on_the_same_joined_rows(prediction_store_url):
    url = prediction_store_url
    expected = {}
    store = FeedbackStore(url, "m")
    rng = np.random.default_rng(0)
    for version, n in (("1", 3000), ("2", 1200)):
        request_ids, truth, probability = log_version(url, version, n, seed=int(version))
        labelled = rng.random(n) < 0.6  # ground truth arrived for 60% of the predictions
        items = [
            {
                "request_id": request_ids[i],
                "record": i % RECORDS_PER_REQUEST,
                "actual": "yes" if truth[i] else "no",
            }
            for i in np.flatnonzero(labelled).tolist()
        ]
        wrong_first = [
            {**item, "actual": "no" if item["actual"] == "yes" else "yes"} for item in items[:50]
        ]
        store.record(parse_feedback(wrong_first, SPEC.check_actual))  # corrected below
        store.record(parse_feedback(items, SPEC.check_actual, max_items=len(items)))
        y, p = truth[labelled].astype(int), probability[labelled]
        predicted = (p >= 0.5).astype(int)
        expected[version] = {
            "rows": int(labelled.sum()),
            "roc_auc": roc_auc_score(y, p),
            "precision": precision_score(y, predicted),
            "recall": recall_score(y, predicted),
            "f1": f1_score(y, predicted),
        }
    store.close()

    joined = read_labelled(url, Window("m"), SPEC.logged, chunk_rows=500)
    assert set(joined["model_version"]) == {"1", "2"}  # no shadow rows
    results = realized_performance(
        joined,
        SPEC,
        lambda v: figures(v, holdout_roc_auc=0.8, holdout_f1=0.5),
        max_drop=0.05,
    )
    by_version = {r.version: r for r in results}
    for version, figures_expected in expected.items():
        result = by_version[version]
        assert result.labelled_rows == figures_expected["rows"]
        for name in ("roc_auc", "precision", "recall", "f1"):
            assert result.realized[name] == pytest.approx(figures_expected[name], abs=1e-12)
        assert result.holdout == {"roc_auc": 0.8, "f1": 0.5}
        drop = result.drop(GateMetric("roc_auc"))
        assert drop == pytest.approx(0.8 - figures_expected["roc_auc"])


def test_a_window_limits_the_labelled_rows(prediction_store_url):
    url = prediction_store_url
    request_ids, truth, _ = log_version(url, "1", 300, seed=5)
    store = FeedbackStore(url, "m")
    store.record(
        parse_feedback(
            [
                {"request_id": r, "record": i % 3, "actual": int(t)}
                for i, (r, t) in enumerate(zip(request_ids, truth, strict=True))
            ],
            SPEC.check_actual,
        )
    )
    store.close()
    window = Window("m", since=START + dt.timedelta(seconds=150))  # rows 150..299
    joined = read_labelled(url, window, SPEC.logged)
    assert len(joined) == 150
    assert set(joined["request_id"]) == {f"v1-r{k}" for k in range(50, 100)}


def test_without_ground_truth_there_is_nothing_to_measure(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert read_labelled(url, Window("m"), SPEC.logged).empty
    assert realized_performance(pd.DataFrame(), SPEC, figures, 0.05) == []


def test_realized_mape_per_store_names_the_store_whose_error_drifted(tmp_path):
    days = [f"2015-08-{d:02d}" for d in range(1, 8)]
    labelled = pd.DataFrame(
        {
            "model_version": ["1", "1", "1"],
            "store": [1.0, 2.0, 2.0],
            "ds": [days, days, days],
            "yhat": [[100.0] * 7, [200.0] * 7, [200.0] * 7],
            "actual": [
                [110.0] * 7,  # store 1: 9% off, as on its holdout
                [400.0, 400.0, None, 400.0, 400.0, 400.0, 400.0],  # store 2: 50% off
                {days[2]: 400.0},  # the missing day, sent later as a date -> sales map
            ],
        }
    )
    table = tmp_path / "evaluation"
    table.mkdir()
    (table / "store_metrics.csv").write_text("store,mape\n1,0.10\n2,0.12\n")
    version = figures("1", holdout_mape=0.11)
    version._downloads["evaluation/store_metrics.csv"] = table / "store_metrics.csv"
    realized, flagged = FORECASTING.monitoring.performance(labelled, version, 0.05)
    assert realized["store_1_mape"] == pytest.approx(10 / 110)
    assert realized["store_2_mape"] == pytest.approx(0.5)
    assert realized["mape"] == pytest.approx((10 / 110 + 0.5) / 2)
    assert list(flagged) == ["store 2"]
    assert "realized MAPE 0.500 on 7 days vs 0.120 on the holdout" in flagged["store 2"]
