import pytest

from modelfactory.data import bank_marketing as bank
from modelfactory.errors import DataValidationError


@pytest.fixture
def frame():
    return bank.generate_bank_marketing(200, seed=2)


def problems_of(frame):
    with pytest.raises(DataValidationError) as caught:
        bank.validate_bank_marketing(frame, "upload.csv")
    return caught.value.problems, str(caught.value)


def test_missing_column_is_named(frame):
    problems, message = problems_of(frame.drop(columns=["euribor3m", "job"]))
    assert problems == ["missing column(s): job, euribor3m"]
    assert message.startswith("upload.csv:")


def test_wrong_type_names_column_value_and_rows(frame):
    frame["age"] = frame["age"].astype(object)
    frame.loc[[4, 9], "age"] = "forty"
    problems, _ = problems_of(frame)
    assert problems == ["column 'age': expected numbers, found 'forty' in rows 5, 10"]


def test_unknown_target_category_names_rows(frame):
    frame.loc[[0, 1, 2, 3, 4, 5, 6], "y"] = "maybe"
    problems, _ = problems_of(frame)
    assert len(problems) == 1
    assert "target column 'y': unknown value(s) 'maybe'" in problems[0]
    assert "rows 1, 2, 3, 4, 5 (and 2 more)" in problems[0]


def test_empty_values_are_reported(frame):
    frame.loc[3, "marital"] = None
    problems, _ = problems_of(frame)
    assert problems == ["column 'marital': empty value in row 4"]


def test_every_problem_is_reported_at_once(frame):
    frame = frame.drop(columns=["loan"])
    frame.loc[0, "y"] = "perhaps"
    frame["campaign"] = frame["campaign"].astype(object)
    frame.loc[1, "campaign"] = "x"
    problems, _ = problems_of(frame)
    assert len(problems) == 3


def test_too_few_rows(frame):
    problems, _ = problems_of(frame.head(5))
    assert problems == ["5 row(s); at least 20 needed"]


def test_unknown_feature_categories_are_not_errors(frame):
    frame.loc[0, "job"] = "astronaut"
    assert len(bank.validate_bank_marketing(frame, "x")) == len(frame)
