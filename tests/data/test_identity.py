"""Row identity: the same customer or store-day is the same row whatever its label and however
it was read back; a relabelled file holds no new rows."""

import numpy as np
import pandas as pd
import pytest

from modelfactory.data import bank_marketing as bank
from modelfactory.data.identity import row_keys, unseen


@pytest.fixture(scope="module")
def customers():
    return bank.generate_bank_marketing(2000, seed=11)


def test_relabelled_customers_are_the_same_rows(customers):
    relabelled = customers.assign(y=np.where(customers["y"] == "yes", "no", "yes"))
    assert not unseen(relabelled, customers, bank.ROW_IDENTITY).any()


def test_a_customer_is_known_by_features_not_by_the_call_duration(customers):
    other_calls = customers.assign(duration=customers["duration"] + 1)
    assert not unseen(other_calls, customers, bank.ROW_IDENTITY).any()


def test_only_rows_with_other_features_are_new(customers):
    seen, rest = customers.iloc[:1500], customers.iloc[1500:]
    new = unseen(rest, seen, bank.ROW_IDENTITY)
    expected = ~rest[list(bank.ROW_IDENTITY)].apply(tuple, axis=1).isin(
        set(seen[list(bank.ROW_IDENTITY)].apply(tuple, axis=1))
    )
    assert new.tolist() == expected.tolist()
    assert 0 < new.sum() <= len(rest)


def test_numbers_read_back_as_floats_and_categories_as_text_keep_their_identity(customers):
    read_back = customers.astype({"age": float, "campaign": float}).astype(
        {c: "category" for c in bank.CATEGORICAL_FEATURES}
    )
    assert (row_keys(read_back, bank.ROW_IDENTITY) == row_keys(customers, bank.ROW_IDENTITY)).all()


def test_a_store_day_is_the_same_row_at_any_time_resolution():
    ds = pd.to_datetime(["2015-07-30", "2015-07-31", "2015-07-31"])
    days = pd.DataFrame({"Store": [1, 1, 2], "ds": ds})
    micro = days.assign(ds=days["ds"].astype("datetime64[us]"), Store=days["Store"].astype(float))
    assert (row_keys(micro, ("Store", "ds")) == row_keys(days, ("Store", "ds"))).all()
    assert unseen(days, days.iloc[:1], ("Store", "ds")).tolist() == [False, True, True]


def test_a_table_without_an_identity_column_is_named():
    with pytest.raises(ValueError, match="the holdout lacks the column\\(s\\) ds"):
        unseen(pd.DataFrame({"Store": [1]}), pd.DataFrame({"Store": [1]}), ("Store", "ds"))
