"""Drift on the real UCI file's own months: its 2008 summer against its 2009-2010 months drifts on
the macro-economic columns; random halves of the same months do not drift at all."""

from __future__ import annotations

import numpy as np
import pytest

from modelfactory.data.bank_marketing import (
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    calendar_months,
    generate_bank_marketing,
)
from modelfactory.monitoring.drift import METHODS, ColumnTest, DriftSettings, drift_report

MACRO = ("emp.var.rate", "cons.price.idx", "cons.conf.idx", "euribor3m", "nr.employed")


def test_the_file_runs_from_may_2008_to_november_2010(real_bank):
    calendar = calendar_months(real_bank)
    assert (calendar.iloc[0], calendar.iloc[-1]) == ("2008-05", "2010-11")
    assert calendar.is_monotonic_increasing
    assert calendar.nunique() == 26


def test_early_months_against_late_months_drift_on_the_macro_columns(bank_months):
    early, late = bank_months
    report = drift_report(early, late, NUMERIC_FEATURES, CATEGORICAL_FEATURES)
    assert set(MACRO) <= set(report.drifted_inputs)
    assert report.drifted_share > 0.5
    scores = {c.column: c for c in report.columns}
    assert all(scores[c].method == "psi" and scores[c].score >= 0.1 for c in MACRO)
    assert report.current_rows == len(late) and report.reference_rows == len(early)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_halves_of_the_same_months_do_not_drift(bank_months, seed):
    early, _ = bank_months
    half = np.random.default_rng(seed).random(len(early)) < 0.5
    report = drift_report(early[half], early[~half], NUMERIC_FEATURES, CATEGORICAL_FEATURES)
    assert report.drifted_inputs == [], [(c.column, c.score) for c in report.columns]
    assert max(c.score for c in report.columns) < 0.05  # half the threshold at most


def test_a_500_row_window_of_the_reference_months_raises_no_false_alarm(bank_months):
    """The smallest window the default policy judges: PSI's noise stays below its threshold."""
    early, _ = bank_months
    rng = np.random.default_rng(7)
    for _ in range(5):
        window = early.iloc[rng.choice(len(early), 500, replace=False)]
        report = drift_report(early, window, NUMERIC_FEATURES, CATEGORICAL_FEATURES)
        assert report.drifted_inputs == []


def test_the_generators_later_period_drifts_from_its_default_mix():
    trained_on = generate_bank_marketing(5000, seed=1)
    later = generate_bank_marketing(2000, seed=2, period="later")
    same = generate_bank_marketing(2000, seed=3)
    drifted = drift_report(trained_on, later, NUMERIC_FEATURES, CATEGORICAL_FEATURES)
    assert set(MACRO) - {"cons.price.idx"} <= set(drifted.drifted_inputs)
    assert (
        drift_report(trained_on, same, NUMERIC_FEATURES, CATEGORICAL_FEATURES).drifted_inputs == []
    )


def test_per_column_methods_and_thresholds_apply(bank_months):
    early, late = bank_months
    settings = DriftSettings(
        numeric=ColumnTest(method="wasserstein", threshold=0.1),
        categorical=ColumnTest(method="jensenshannon", threshold=0.1),
        columns={"euribor3m": ColumnTest(method="psi", threshold=1000.0)},
    )
    report = drift_report(early, late, NUMERIC_FEATURES, CATEGORICAL_FEATURES, (), settings)
    by_column = {c.column: c for c in report.columns}
    assert (by_column["age"].method, by_column["job"].method) == ("wasserstein", "jensenshannon")
    assert by_column["euribor3m"].method == "psi" and not by_column["euribor3m"].drifted
    assert by_column["nr.employed"].drifted


def test_a_method_that_does_not_fit_the_column_is_named():
    settings = DriftSettings(columns={"job": ColumnTest(method="wasserstein")})
    frame = generate_bank_marketing(200, seed=1)
    with pytest.raises(
        ValueError, match="'wasserstein' does not apply to categorical column 'job'"
    ):
        drift_report(frame, frame, NUMERIC_FEATURES, CATEGORICAL_FEATURES, (), settings)
    with pytest.raises(ValueError, match="unknown drift method 'psy'"):
        ColumnTest(method="psy")


def test_the_method_table_is_evidentlys_own():
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests

    kinds = {"num": "numeric", "cat": "categorical"}
    registered = {
        name: frozenset(kinds[t.value] for t in by_type if t.value in kinds)
        for name, by_type in _registered_stat_tests.items()
        if any(t.value in kinds for t in by_type)
    }
    assert registered == METHODS


def test_a_column_without_values_is_skipped_and_named():
    frame = generate_bank_marketing(300, seed=1)
    report = drift_report(frame, frame.assign(age=np.nan), NUMERIC_FEATURES, CATEGORICAL_FEATURES)
    assert report.skipped == {"age": "no values in the window"}
    assert "age" not in {c.column for c in report.columns}


def test_the_html_report_has_both_sections_and_names_the_drifted_columns(bank_months, tmp_path):
    early, late = bank_months
    reference = early.assign(probability=0.05)
    current = late.assign(probability=0.4)
    report = drift_report(
        reference,
        current,
        (*NUMERIC_FEATURES, "probability"),
        CATEGORICAL_FEATURES,
        ("probability",),
    )
    html = report.save_html(tmp_path / "report.html").read_text()
    assert (
        "Input drift: the model's inputs" in html
        and "Prediction drift: the model's outputs" in html
    )
    assert all(column in html for column in MACRO)
    snapshot = report.save_json(tmp_path / "snapshot.json").read_text()
    assert '"column":"euribor3m"' in snapshot.replace(" ", "")
