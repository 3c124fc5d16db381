import numpy as np
import pytest

from modelfactory.data import bank_marketing as bank
from modelfactory.data.split import (
    RandomSplit,
    SequentialSplit,
    class_balance_warnings,
    split_strategy,
)


@pytest.fixture(scope="module")
def frame():
    return bank.generate_bank_marketing(5000, seed=5)


def test_random_split_is_reproducible_and_keeps_the_class_balance(frame):
    first = RandomSplit(0.2, seed=7, stratify_on="y").split(frame)
    second = RandomSplit(0.2, seed=7, stratify_on="y").split(frame)
    assert first.holdout.index.equals(second.holdout.index)
    assert len(first.holdout) == pytest.approx(1000, abs=2)
    overall = bank.target_vector(frame).mean()
    assert bank.target_vector(first.holdout).mean() == pytest.approx(overall, abs=0.003)
    assert not set(first.train.index) & set(first.holdout.index)


def test_different_seeds_give_different_holdouts(frame):
    a = RandomSplit(0.2, seed=1).split(frame).holdout.index
    b = RandomSplit(0.2, seed=2).split(frame).holdout.index
    assert not a.equals(b)


def test_sequential_split_holds_out_the_last_rows(frame):
    parts = SequentialSplit(0.25).split(frame)
    assert parts.holdout.index.equals(frame.index[-1250:])
    assert parts.train.index.equals(frame.index[:-1250])


def test_strategies_by_name_and_bad_arguments():
    assert isinstance(split_strategy("sequential", 0.3), SequentialSplit)
    with pytest.raises(ValueError, match="unknown split strategy 'temporal'"):
        split_strategy("temporal")
    with pytest.raises(ValueError, match="between 0 and 1"):
        RandomSplit(1.5).split(bank.generate_bank_marketing(50))


def test_warns_when_positives_are_badly_under_represented(frame):
    parts = SequentialSplit(0.2).split(frame)
    train_y = bank.target_vector(parts.train)
    holdout_y = np.zeros(len(parts.holdout), dtype=int)
    holdout_y[:40] = 1  # 4% against ~11% overall
    warnings = class_balance_warnings(parts, train_y, holdout_y)
    assert len(warnings) == 1 and warnings[0].startswith("holdout part has 4.0% positive rows")


def test_warns_when_a_part_has_too_few_positives(frame):
    parts = SequentialSplit(0.2).split(frame)
    holdout_y = np.zeros(len(parts.holdout), dtype=int)
    holdout_y[:3] = 1
    warnings = class_balance_warnings(parts, bank.target_vector(parts.train), holdout_y)
    assert "only 3 positive rows" in warnings[0]


def test_a_balanced_split_has_no_warnings(frame):
    parts = RandomSplit(0.2, stratify_on="y").split(frame)
    assert (
        class_balance_warnings(
            parts, bank.target_vector(parts.train), bank.target_vector(parts.holdout)
        )
        == []
    )
