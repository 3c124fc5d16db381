"""The noise the gate allows on the champion's holdout: the bootstrap standard error of the
difference between two versions' ROC-AUC on the same rows."""

import numpy as np
import pytest

from modelfactory.classification.training import roc_auc_difference_error


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(5)
    y = (rng.random(4000) < 0.11).astype(int)
    signal = y + rng.normal(0, 1.0, len(y))
    return y, signal + rng.normal(0, 0.5, len(y)), signal + rng.normal(0, 0.5, len(y))


def test_the_same_scores_have_no_noise(scored):
    y, new, _ = scored
    assert roc_auc_difference_error(y, new, new) == 0.0


def test_the_noise_shrinks_with_the_rows_compared(scored):
    y, new, old = scored
    few = roc_auc_difference_error(y[:500], new[:500], old[:500])
    many = roc_auc_difference_error(y, new, old)
    assert 0 < many < few
    assert few / many == pytest.approx(np.sqrt(4000 / 500), rel=0.35)


def test_one_class_gives_no_measure():
    ones = np.ones(50, dtype=int)
    assert roc_auc_difference_error(ones, np.linspace(0, 1, 50), np.linspace(1, 0, 50)) == 0.0
