import pytest

from modelfactory.inference.schema import Field, InputSchema, InvalidInput

SCHEMA = InputSchema(
    (Field("age", "integer"), Field("euribor3m", "number"), Field("job", "string"))
)
GOOD = {"age": 41, "euribor3m": 1.3, "job": "admin."}


def test_good_records_pass_and_become_a_typed_frame():
    records = SCHEMA.check([GOOD, {**GOOD, "age": 30.0, "euribor3m": 2}])
    frame = SCHEMA.frame(records)
    assert list(frame.columns) == ["age", "euribor3m", "job"]
    assert str(frame["age"].dtype) == "int64" and str(frame["euribor3m"].dtype) == "float64"


@pytest.mark.parametrize(
    "record, problem",
    [
        ({"euribor3m": 1.3, "job": "x"}, "records[0].age: missing"),
        ({**GOOD, "age": "41"}, 'records[0].age: expected an integer, got "41"'),
        ({**GOOD, "age": 41.5}, "records[0].age: expected an integer, got 41.5"),
        ({**GOOD, "age": True}, "records[0].age: expected an integer, got True"),
        ({**GOOD, "euribor3m": "high"}, 'records[0].euribor3m: expected a number, got "high"'),
        ({**GOOD, "job": 7}, "records[0].job: expected a string, got 7"),
        ({**GOOD, "job": None}, "records[0].job: missing"),
    ],
)
def test_each_bad_field_is_named(record, problem):
    assert SCHEMA.problems([record]) == [problem]


@pytest.mark.parametrize(
    "records, problem",
    [
        ({"age": 1}, "records: expected a list of objects"),
        ([], "records: expected at least one record"),
        ([GOOD, 3], "records[1]: expected an object with fields age, euribor3m, job"),
    ],
)
def test_wrong_shapes_are_named(records, problem):
    assert SCHEMA.problems(records) == [problem]


def test_too_many_records():
    assert SCHEMA.problems([GOOD] * 3, max_records=2) == [
        "records: 3 records; at most 2 per request"
    ]


def test_all_problems_in_one_error():
    with pytest.raises(InvalidInput) as caught:
        SCHEMA.check([{"age": "x"}, {**GOOD, "job": 1}])
    assert len(caught.value.problems) == 4
    assert str(caught.value).startswith("invalid input: records[0].age")
