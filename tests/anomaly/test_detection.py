"""DBSCAN outlier detection: founding simulator, exactness of the scalable methods, metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import DBSCAN

from modelfactory.anomaly.detection import (
    DetectionConfig,
    dbscan_labels,
    detect_outliers,
    label_agreement,
    standardize,
)
from modelfactory.data.taxi import load_taxi_rides, simulate_rides
from modelfactory.errors import DataValidationError
from tests.support.data import TAXI_JANUARY, shared_file


def test_simulated_anomalies_are_flagged():
    result = detect_outliers(simulate_rides(seed=42))
    flagged = result.rides.groupby("group")["is_outlier"].mean()
    assert flagged["fast"] >= 0.8 and flagged["slow"] >= 0.8
    assert flagged["normal"] <= 0.1
    assert result.rides["is_outlier"].equals(result.rides["cluster"] == -1)
    metrics = result.metrics
    assert metrics["rides"] == 400 and metrics["noise"] == int(result.rides["is_outlier"].sum())
    assert metrics["clusters"] >= 1 and metrics["method"] == "exact"


def _scaled_sim(n: int) -> np.ndarray:
    k = n // 40
    rides = simulate_rides(n_normal=n - 3 * k, n_per_group=k, seed=1)
    return standardize(rides[["ride_dist", "ride_time", "ride_speed"]].to_numpy())


@pytest.mark.parametrize("method", ["exact", "grid"])
def test_scalable_methods_agree_with_plain_dbscan(method):
    scaled = _scaled_sim(20_000)
    reference = DBSCAN(eps=0.5, min_samples=10).fit_predict(scaled)
    labels, info = dbscan_labels(scaled, DetectionConfig(method=method))
    agreement = label_agreement(reference, labels)
    assert info["method"] == method
    assert agreement["flag_agreement"] >= 0.999 and agreement["ari"] >= 0.99
    if method == "exact":
        assert agreement["flag_agreement"] == 1.0
    else:
        assert info["distinct_points"] < len(scaled) / 2


def test_duplicates_count_towards_density():
    # 12 identical rides form a cluster (min_samples 10); a lone ride far away is noise.
    scaled = np.vstack([np.zeros((12, 3)), np.full((1, 3), 5.0)])
    labels, info = dbscan_labels(scaled, DetectionConfig(eps=0.1, min_samples=10, method="exact"))
    assert info["distinct_points"] == 2
    assert labels.tolist() == [0] * 12 + [-1]


def test_auto_switches_to_grid_when_neighbourhoods_are_huge():
    scaled = np.random.default_rng(0).normal(0, 0.01, (20_000, 3))  # one dense blob
    labels, info = dbscan_labels(scaled, DetectionConfig(max_neighbor_pairs=1_000_000))
    assert info["method"] == "grid"
    assert info["estimated_neighbor_pairs"] <= 1_000_000
    assert (labels == 0).all()


def test_real_day_flags_impossible_rides():
    rides = load_taxi_rides(shared_file(TAXI_JANUARY), batch_date="2023-01-15").rides
    result = detect_outliers(rides)
    outliers = result.rides[result.rides["is_outlier"]]
    assert 0 < len(outliers) < 0.05 * len(rides)
    # The most absurd rides of the day are among the outliers.
    assert rides["ride_speed"].idxmax() in outliers.index
    assert rides["ride_dist"].idxmax() in outliers.index


def test_silhouette_needs_two_clusters():
    rng = np.random.default_rng(0)
    blobs = pd.DataFrame(
        np.vstack([rng.normal(0, 0.1, (200, 3)), rng.normal(5, 0.1, (200, 3))]),
        columns=["ride_dist", "ride_time", "ride_speed"],
    )
    result = detect_outliers(blobs)
    assert result.metrics["clusters"] == 2 and result.metrics["silhouette"] > 0.9
    single = detect_outliers(blobs.iloc[:200])
    assert single.metrics["silhouette"] is None


def test_bad_values_are_named():
    rides = simulate_rides().head(5).copy()
    rides.loc[3, "ride_time"] = np.nan
    with pytest.raises(
        DataValidationError, match="column 'ride_time': missing or infinite values at row 4"
    ):
        detect_outliers(rides)


def test_empty_batch():
    result = detect_outliers(simulate_rides().head(0))
    assert result.metrics["rides"] == 0 and "is_outlier" in result.rides.columns


def test_config_validation():
    with pytest.raises(ValueError, match="eps must be > 0"):
        DetectionConfig(eps=0)
    assert DetectionConfig().to_dict()["features"] == ["ride_dist", "ride_time", "ride_speed"]
