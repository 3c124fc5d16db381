import gzip

import pytest

from modelfactory.data import bank_marketing as bank
from modelfactory.errors import DataSourceError, DataValidationError


def test_real_file_loads_with_its_published_counts(real_bank):
    assert len(real_bank) == 41188
    assert int(bank.target_vector(real_bank).sum()) == 4640
    assert list(real_bank.columns) == list(bank.COLUMN_ORDER)


def test_generated_data_has_the_real_schema_and_imbalance():
    frame = bank.generate_bank_marketing(20000, seed=3)
    validated = bank.validate_bank_marketing(frame, "generated")
    share = bank.target_vector(validated).mean()
    assert 0.08 < share < 0.15
    for column, categories in bank.CATEGORIES.items():
        assert set(validated[column]) <= set(categories), column


def test_generated_data_round_trips_through_the_loader(tmp_path):
    frame = bank.generate_bank_marketing(500, seed=1)
    path = bank.write_bank_marketing(frame, tmp_path / "bank.csv")
    loaded = bank.validate_bank_marketing(bank.load_bank_marketing(path), str(path))
    assert loaded.shape == frame.shape
    assert (loaded["y"] == frame["y"]).all()


def test_gzipped_file_without_extension_is_read(tmp_path):
    frame = bank.generate_bank_marketing(100, seed=1)
    plain = bank.write_bank_marketing(frame, tmp_path / "bank.csv")
    artifact = tmp_path / "raw"  # KFP artifact files have no extension
    artifact.write_bytes(gzip.compress(plain.read_bytes()))
    assert len(bank.load_bank_marketing(artifact)) == 100


def test_comma_separated_file_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "bank.csv"
    bank.generate_bank_marketing(50, seed=1).to_csv(path, index=False)
    with pytest.raises(DataValidationError, match="comma-separated"):
        bank.load_bank_marketing(path)


def test_older_bank_full_format_is_named(tmp_path):
    path = tmp_path / "bank-full.csv"
    path.write_text("age;job;balance;day;y\n30;admin.;100;5;no\n")
    with pytest.raises(DataValidationError, match="bank-full format"):
        bank.load_bank_marketing(path)


def test_missing_and_empty_files_are_named(tmp_path):
    with pytest.raises(DataSourceError, match="no such file"):
        bank.load_bank_marketing(tmp_path / "absent.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataSourceError, match="empty"):
        bank.load_bank_marketing(empty)


def test_the_later_period_reproduces_the_real_files_last_year(real_bank):
    last_year = real_bank[bank.calendar_months(real_bank) >= "2010-01"]
    later = bank.generate_bank_marketing(20_000, seed=4, period="later")
    macro = ["emp.var.rate", "cons.price.idx", "cons.conf.idx", "nr.employed"]
    assert set(map(tuple, later[macro].drop_duplicates().to_numpy())) == set(
        map(tuple, last_year[macro].drop_duplicates().to_numpy())
    )
    assert abs(later["euribor3m"].mean() - last_year["euribor3m"].mean()) < 0.02
    for column, value in (("contact", "cellular"), ("poutcome", "success")):
        assert abs((later[column] == value).mean() - (last_year[column] == value).mean()) < 0.02
    assert (
        later["nr.employed"].max()
        < bank.generate_bank_marketing(20_000, seed=4)["nr.employed"].min()
    )  # employment below any month the default mix holds
    bank.validate_bank_marketing(later, "later period")


def test_rows_learned_from_served_predictions_may_lack_the_call_duration():
    rows = bank.generate_bank_marketing(50, seed=1).assign(duration=float("nan"))
    assert bank.validate_bank_marketing(rows, "served rows")["duration"].isna().all()


def test_an_unknown_period_is_named():
    with pytest.raises(ValueError, match="period must be one of all, later, not '2011'"):
        bank.generate_bank_marketing(10, period="2011")
