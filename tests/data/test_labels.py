"""Label distributions against the champion's training data: a flipped file is named with the
column and both rates, a forecaster's sales in another unit with the store and both levels; a
natural move passes."""

import numpy as np
import pandas as pd
import pytest

from modelfactory.data import bank_marketing as bank
from modelfactory.data import rossmann
from modelfactory.data.labels import ClassShares

AGAINST = "champion v1's training data"


@pytest.fixture(scope="module")
def customers():
    return bank.generate_bank_marketing(4000, seed=3)


def flipped(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(y=np.where(frame["y"] == "yes", "no", "yes"))


def test_a_flipped_file_is_a_problem_naming_the_column_and_both_rates(customers):
    rate = bank.target_vector(customers).mean()
    compared = bank.LABELS.compare(flipped(customers), customers, AGAINST)
    assert compared.problems == (
        f"target column 'y': positive rate ('yes') {1 - rate:.1%} against {rate:.1%} in "
        f"{AGAINST}, {abs(1 - 2 * rate) * 100:.1f} points apart (more than 25 allowed)",
    )


def test_another_sample_of_the_same_customers_passes_and_says_how_it_compares(customers):
    compared = bank.LABELS.compare(customers.sample(1000, random_state=1), customers, AGAINST)
    assert compared.problems == ()
    assert compared.summary.startswith("y: positive rate ('yes') ")
    assert compared.summary.endswith(f"in {AGAINST}")


@pytest.mark.parametrize("rate, refused", [(0.30, False), (0.37, True)])
def test_the_positive_rate_may_move_25_points(rate, refused):
    reference = pd.DataFrame({"y": ["yes"] * 11 + ["no"] * 89})
    now = round(rate * 100)
    current = pd.DataFrame({"y": ["yes"] * now + ["no"] * (100 - now)})
    assert bool(bank.LABELS.compare(current, reference, AGAINST).problems) is refused


def test_a_class_the_champion_never_saw_is_a_share_that_moved():
    reference = pd.DataFrame({"label": ["a"] * 50 + ["b"] * 50})
    current = pd.DataFrame({"label": ["a"] * 50 + ["c"] * 50})
    (problem,) = ClassShares("label").compare(current, reference, AGAINST).problems
    assert problem.startswith("target column 'label': share of 'b' 0.0% against 50.0% in ")


def test_a_table_without_the_target_is_named():
    with pytest.raises(ValueError, match="the new data has no target column 'y'"):
        bank.LABELS.compare(pd.DataFrame({"x": [1]}), pd.DataFrame({"y": ["no"]}), AGAINST)


def store_days(store: int, level: float, days: int = 60, start: str = "2015-01-01"):
    dates = pd.date_range(start, periods=days, freq="D")
    sales = level * (1 + 0.2 * (-1) ** np.arange(days))  # averages to ``level`` over even days
    return pd.DataFrame({"Store": store, "Date": dates, "Sales": sales, "Open": 1})


def reference_days(store: int, level: float, days: int = 300):
    """The champion's training rows as the forecaster logs them: Store, ds, y."""
    frame = store_days(store, level, days, "2014-01-01")
    return frame.rename(columns={"Date": "ds", "Sales": "y"})[["Store", "ds", "y"]]


def test_sales_in_another_unit_are_named_by_store_with_both_levels():
    reference = pd.concat([reference_days(1, 5000), reference_days(2, 8000)])
    current = pd.concat([store_days(1, 500_000), store_days(2, 8400)])
    compared = rossmann.LABELS.compare(current, reference, AGAINST)
    (problem,) = compared.problems
    assert problem.startswith(
        f"column 'Sales': the mean per Store moved by more than a factor of 3 from {AGAINST} for "
        "1 of 2: Store 1 "
    )
    assert "(x100.00)" in problem and "Store 2" not in problem


def test_a_store_a_fifth_up_passes_and_closed_days_do_not_count():
    reference = reference_days(1, 5000)
    current = store_days(1, 6000)
    closed = current.head(20).assign(Sales=0, Open=0)
    compared = rossmann.LABELS.compare(pd.concat([current, closed]), reference, AGAINST)
    assert compared.problems == ()
    assert "the largest move Store 1 6,000 against 5,000 (x1.20)" in compared.summary


def test_stores_with_too_few_days_are_not_compared():
    compared = rossmann.LABELS.compare(
        store_days(1, 500_000, days=10), reference_days(1, 5000), AGAINST
    )
    assert compared.problems == () and "not compared" in compared.summary
