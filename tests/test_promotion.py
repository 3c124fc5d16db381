import pytest

from modelfactory.promotion import GateMetric, promotion_gate

AUC = GateMetric("roc_auc")
MAPE = GateMetric("mape", higher_is_better=False)


def test_first_version_is_promoted_when_it_beats_the_baseline():
    decision = promotion_gate(AUC, 0.80, champion=None, baseline=0.75)
    assert decision.promote and "no champion yet" in decision.reason


def test_a_model_no_better_than_its_baseline_is_never_promoted():
    decision = promotion_gate(AUC, 0.74, champion=None, baseline=0.75)
    assert not decision.promote
    assert decision.reason == "roc_auc 0.7400 does not beat the baseline's 0.7500"


def test_the_margin_over_the_champion_is_required():
    assert promotion_gate(AUC, 0.805, champion=0.80, baseline=0.7, margin=0.01).promote is False
    decision = promotion_gate(
        AUC, 0.815, champion=0.80, baseline=0.7, margin=0.01, champion_version="3"
    )
    assert decision.promote and "champion v3's 0.8000" in decision.reason


def test_a_tie_with_the_champion_is_not_promoted():
    assert not promotion_gate(AUC, 0.8, champion=0.8, baseline=0.7).promote


def test_lower_is_better_metrics():
    assert promotion_gate(MAPE, 0.10, champion=0.12, baseline=0.2, margin=0.01).promote
    assert not promotion_gate(MAPE, 0.115, champion=0.12, baseline=0.2, margin=0.01).promote


def test_decision_tags_record_the_numbers():
    tags = promotion_gate(AUC, 0.81, champion=0.8, baseline=0.7).as_tags()
    assert tags["promotion.decision"] == "promoted"
    assert tags["promotion.champion"] == "0.8" and tags["promotion.baseline"] == "0.7"


def test_negative_margin_is_refused():
    with pytest.raises(ValueError, match="margin"):
        promotion_gate(AUC, 0.8, champion=0.7, baseline=0.6, margin=-0.1)
