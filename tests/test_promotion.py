"""The promotion gate as a table: numbers in, a decision and the reason a user reads out."""

import math

import pytest

from modelfactory.promotion import Comparison, GateEvidence, GateMetric, promotion_gate

AUC = GateMetric("roc_auc", min_rows=500, tolerance=0.02)
MAPE = GateMetric("mape", higher_is_better=False, min_rows=30, tolerance=0.01)
IN_CHAMPION = "were in champion v1's or this run's training data"
IN_EITHER = "were in either version's training data"


def fresh(rows=1485, candidate=0.80, champion=0.79, of_rows=8238, note="", noise=0.0):
    return Comparison(rows, of_rows, candidate, champion, IN_CHAMPION, note, noise)


def own(rows=1498, candidate=0.79, champion=0.79, of_rows=8238, note="", noise=0.0):
    return Comparison(rows, of_rows, candidate, champion, IN_EITHER, note, noise)


def evidence(new=None, kept=None):
    return GateEvidence("1", new or fresh(), kept or own())


NOT_LOGGED = Comparison(0, 0, note="champion v1 logged no holdout_data/ (registered before)")


def case(name, metric, candidate, baseline, gate_evidence, promoted, *fragments, **options):
    """One row: the gate's inputs, whether it promotes, what its reason says."""
    arguments = (metric, candidate, baseline, gate_evidence, options, promoted, fragments)
    return pytest.param(*arguments, id=name)


TABLE = [
    case(
        "first version beats its baseline",
        *(AUC, 0.80, 0.75, None, True),
        "no champion yet; roc_auc 0.8000 beats the baseline",
    ),
    case(
        "no better than its baseline, whatever the champion",
        *(AUC, 0.74, 0.75, evidence(), False),
        "roc_auc 0.7400 does not beat the baseline's 0.7500",
    ),
    case(
        "beats the champion on fresh rows and holds on the champion's holdout",
        *(AUC, 0.80, 0.70, evidence(), True),
        "roc_auc 0.8000 beats champion v1's 0.7900 by 0.0100 (margin 0) on 1,485 rows neither "
        "version trained on (of 8,238 holdout rows; 6,753 were in champion v1's or this run's "
        "training data)",
        "on champion v1's holdout (1,498 of its 8,238 rows neither version trained on) roc_auc "
        "0.7900 vs 0.7900",
    ),
    case(
        "a tie on fresh rows is not promoted",
        *(AUC, 0.80, 0.70, evidence(fresh(candidate=0.7789, champion=0.7796)), False),
        "0.7789 vs champion v1's 0.7796 on 1,485 rows",
        "gain -0.0007 does not exceed the margin 0",
    ),
    case(
        "the margin is required on fresh rows",
        *(AUC, 0.80, 0.70, evidence(fresh(candidate=0.805, champion=0.80)), False),
        "gain +0.0050 does not exceed the margin 0.01",
        margin=0.01,
    ),
    case(
        "too few rows neither version trained on: no judgement",
        *(AUC, 0.80, 0.70, evidence(fresh(rows=12)), False),
        "cannot judge against champion v1: 12 rows neither version trained on (of 8,238 holdout "
        "rows; 8,226 were in champion v1's or this run's training data), fewer than the 500 "
        "needed; hold out rows champion v1 never trained on",
    ),
    case(
        "a lower minimum lets a small holdout be judged",
        *(AUC, 0.80, 0.70, evidence(fresh(rows=120), own(rows=130)), True),
        "on 120 rows neither version trained on",
        "(130 of its 8,238 rows",
        min_rows=100,
    ),
    case(
        "a single class among the fresh rows: no score, no judgement",
        *(AUC, 0.80, 0.70, evidence(fresh(candidate=math.nan, note="only one class")), False),
        "cannot judge against champion v1",
        "only one class",
    ),
    case(
        "flipped labels: better on its own labels, far worse on the champion's",
        *(AUC, 0.80, 0.70, evidence(fresh(2704, 0.8520, 0.1337), own(2715, 0.1484, 0.8660)), False),
        "roc_auc 0.1484 vs champion v1's 0.8660 on champion v1's holdout (2,715 rows neither "
        "version trained on, with the labels champion v1 was accepted on): 0.7176 worse, beyond "
        "the margin 0 + 0.0200 (the tolerance)",
        "on 2,704 rows neither version trained on",
        "it scored 0.8520 vs 0.1337",
    ),
    case(
        "far worse on the champion's holdout is refused even when too few fresh rows are left",
        *(AUC, 0.80, 0.70, evidence(fresh(rows=434), own(2715, 0.1484, 0.8660)), False),
        "0.7176 worse, beyond the margin 0 + 0.0200 (the tolerance); on 434 rows neither version",
    ),
    case(
        "worse on the champion's holdout within the tolerance passes",
        *(AUC, 0.80, 0.70, evidence(kept=own(candidate=0.775, champion=0.79)), True),
        "beats champion v1's 0.7900",
        "roc_auc 0.7750 vs 0.7900",
    ),
    case(
        "a loss within twice its standard error on a noisy holdout is noise",
        *(
            AUC,
            0.67,
            0.60,
            evidence(fresh(2482, 0.6661, 0.5318), own(1539, 0.5798, 0.6010, noise=0.015)),
            True,
        ),
        "beats champion v1's 0.5318 by 0.1343",
        "roc_auc 0.5798 vs 0.6010, 0.0212 worse, within 0.0300",
    ),
    case(
        "a loss beyond twice its standard error is refused",
        *(
            AUC,
            0.67,
            0.60,
            evidence(fresh(2482, 0.6661, 0.5318), own(1539, 0.5498, 0.6010, noise=0.015)),
            False,
        ),
        "0.0512 worse, beyond the margin 0 + 0.0300 (twice the difference's standard error 0.0150)",
    ),
    case(
        "the standard error of a tie on fresh rows is shown beside the margin",
        *(AUC, 0.80, 0.70, evidence(fresh(1476, 0.7809, 0.7816, noise=0.0067)), False),
        "gain -0.0007 does not exceed the margin 0; standard error 0.0067;",
    ),
    case(
        "the margin widens what the champion's holdout forgives",
        *(AUC, 0.82, 0.70, evidence(fresh(candidate=0.82), own(candidate=0.765)), True),
        "beats champion v1's 0.7900 by 0.0300 (margin 0.01)",
        margin=0.01,
    ),
    case(
        "beyond margin and tolerance on the champion's holdout is refused",
        *(AUC, 0.82, 0.70, evidence(fresh(candidate=0.82), own(candidate=0.755)), False),
        "0.0350 worse, beyond the margin 0.01 + 0.0200 (the tolerance)",
        margin=0.01,
    ),
    case(
        "a champion without a logged holdout: judged on fresh rows, and it says so",
        *(AUC, 0.80, 0.70, evidence(kept=NOT_LOGGED), True),
        "on 1,485 rows neither version trained on",
        "champion v1's holdout not checked: champion v1 logged no holdout_data/",
    ),
    case(
        "too few of the champion's holdout rows left: not checked, and it says so",
        *(AUC, 0.80, 0.70, evidence(kept=own(rows=40)), True),
        "champion v1's holdout not checked: 40 of its 8,238 rows are outside both versions' "
        "training data, fewer than the 500 needed",
    ),
    case(
        "lower MAPE is better on fresh store-days",
        *(MAPE, 0.10, 0.20, evidence(fresh(252, 0.10, 0.12, 252), own(252, 0.10, 0.11, 252)), True),
        "mape 0.1000 beats champion v1's 0.1200 by 0.0200 (margin 0) on 252 rows",
    ),
    case(
        "a forecaster worse on the champion's sales is refused",
        *(
            MAPE,
            0.10,
            0.20,
            evidence(fresh(252, 0.10, 0.12, 252), own(252, 0.90, 0.11, 252)),
            False,
        ),
        "mape 0.9000 vs champion v1's 0.1100 on champion v1's holdout",
        "0.7900 worse",
    ),
    case(
        "a refit champion leaves no fresh store-day: no judgement",
        *(MAPE, 0.10, 0.20, evidence(fresh(0, None, None, 252), own(252, 0.10, 0.11, 252)), False),
        "cannot judge against champion v1: 0 rows neither version trained on (of 252",
    ),
]


@pytest.mark.parametrize(
    "metric, candidate, baseline, gate_evidence, options, promoted, fragments", TABLE
)
def test_the_gate(metric, candidate, baseline, gate_evidence, options, promoted, fragments):
    decision = promotion_gate(
        metric, candidate, baseline=baseline, evidence=gate_evidence, **options
    )
    assert decision.promote is promoted, decision.reason
    for fragment in fragments:
        assert fragment in decision.reason


def test_the_decision_tags_name_the_rows_and_scores_of_both_comparisons():
    tags = promotion_gate(
        AUC, 0.81, baseline=0.7, evidence=evidence(fresh(candidate=0.80, champion=0.79))
    ).as_tags()
    assert tags["promotion.decision"] == "promoted"
    assert tags["promotion.champion"] == "0.79" and tags["promotion.baseline"] == "0.7"
    assert tags["promotion.champion_version"] == "1"
    assert (tags["promotion.fresh_rows"], tags["promotion.fresh_of_rows"]) == ("1485", "8238")
    assert (tags["promotion.fresh_candidate"], tags["promotion.fresh_champion"]) == ("0.8", "0.79")
    assert tags["promotion.champion_holdout_rows"] == "1498"
    assert tags["promotion.champion_holdout_candidate"] == "0.79"


def test_a_comparison_without_scores_is_tagged_with_why():
    tags = promotion_gate(AUC, 0.81, baseline=0.7, evidence=evidence(kept=NOT_LOGGED)).as_tags()
    assert tags["promotion.champion_holdout_rows"] == "0"
    assert "promotion.champion_holdout_candidate" not in tags
    assert tags["promotion.champion_holdout_note"].startswith("champion v1 logged no holdout")


@pytest.mark.parametrize(
    "margin, min_rows, message", [(-0.1, None, "margin"), (0.0, 0, "minimum rows")]
)
def test_a_negative_margin_or_an_empty_minimum_is_refused(margin, min_rows, message):
    with pytest.raises(ValueError, match=message):
        promotion_gate(
            AUC, 0.8, baseline=0.6, evidence=evidence(), margin=margin, min_rows=min_rows
        )
