"""The retraining policy decides from what a check measured and the monitor's state, and says why;
its state survives a restart."""

from __future__ import annotations

import datetime as dt

import pytest

from modelfactory.monitoring.policy import DriftPolicy, Evidence, LastRetrain, MonitorState, decide
from modelfactory.monitoring.state import JsonStateStore
from modelfactory.status import from_status, to_status

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
POLICY = DriftPolicy(
    min_rows=500,
    drifted_share=0.3,
    decisive=("euribor3m",),
    consecutive_checks=2,
    cooldown=dt.timedelta(hours=24),
    max_performance_drop=0.05,
    min_labelled_rows=200,
)
INPUTS = tuple(f"c{i}" for i in range(10))


def evidence(rows=5000, drifted=(), outputs=(), labelled=0, drop=None) -> Evidence:
    return Evidence(
        rows=rows,
        input_columns=len(INPUTS),
        drifted_inputs=tuple(drifted),
        drifted_outputs=tuple(outputs),
        labelled_rows=labelled,
        metric="roc_auc",
        realized=None if drop is None else 0.80 - drop,
        holdout=None if drop is None else 0.80,
        performance_drop=drop,
    )


@pytest.mark.parametrize(
    ("measured", "state", "action", "in_reason"),
    [
        (evidence(rows=499, drifted=INPUTS), MonitorState(), "insufficient_data", "499 rows"),
        (
            evidence(rows=10, drifted=INPUTS, outputs=("probability",), labelled=300, drop=0.4),
            MonitorState(consecutive_drifted_checks=5),
            "insufficient_data",
            "never a retrain",
        ),
        (evidence(drifted=INPUTS[:2]), MonitorState(), "no_drift", "2 of 10 input columns"),
        (evidence(drifted=INPUTS[:3]), MonitorState(), "drift_pending", "check 1 of 2"),
        (
            evidence(drifted=INPUTS[:3]),
            MonitorState(consecutive_drifted_checks=1),
            "retrain",
            "30%",
        ),
        (
            evidence(drifted=("euribor3m",)),
            MonitorState(consecutive_drifted_checks=1),
            "retrain",
            "decisive column(s) drifted: euribor3m",
        ),
        (
            evidence(outputs=("probability",)),
            MonitorState(consecutive_drifted_checks=1),
            "retrain",
            "prediction drift: probability",
        ),
        (evidence(labelled=300, drop=0.09), MonitorState(), "retrain", "drop 0.0900 > 0.05"),
        (evidence(labelled=150, drop=0.09), MonitorState(), "no_drift", "within"),
        (evidence(labelled=300, drop=0.03), MonitorState(), "no_drift", "drop +0.0300 within"),
        (
            evidence(drifted=INPUTS),
            MonitorState(
                consecutive_drifted_checks=3, last_retrain=LastRetrain(NOW - dt.timedelta(hours=3))
            ),
            "cooldown",
            "started 3h ago (cooldown 24h, until 2026-11-30T09:00:00Z)",
        ),
        (
            evidence(drifted=INPUTS),
            MonitorState(
                consecutive_drifted_checks=3, last_retrain=LastRetrain(NOW - dt.timedelta(hours=25))
            ),
            "retrain",
            "10 of 10",
        ),
    ],
    ids=[
        "too few rows",
        "too few rows whatever else",
        "below the share",
        "first drifted check waits",
        "second drifted check retrains",
        "a decisive column alone",
        "prediction drift alone",
        "realized performance fell",
        "too few labels to judge",
        "performance within the limit",
        "cooldown holds",
        "cooldown over",
    ],
)
def test_decisions_and_their_reasons(measured, state, action, in_reason):
    decision, _ = decide(measured, POLICY, state, NOW)
    assert decision.action == action
    assert in_reason in decision.reason
    assert decision.retrain == (action == "retrain")


def test_insufficient_data_neither_counts_nor_resets_the_drifted_checks():
    decision, state = decide(
        evidence(rows=3), POLICY, MonitorState(consecutive_drifted_checks=1), NOW
    )
    assert decision.action == "insufficient_data" and state.consecutive_drifted_checks == 1
    assert state.last_check == NOW


def test_a_quiet_check_resets_the_count_and_a_retrain_starts_the_cooldown():
    _, state = decide(evidence(drifted=INPUTS), POLICY, MonitorState(), NOW)
    assert state.consecutive_drifted_checks == 1
    _, state = decide(evidence(), POLICY, state, NOW)
    assert state.consecutive_drifted_checks == 0
    _, state = decide(evidence(drifted=INPUTS), POLICY, state, NOW)
    decision, state = decide(evidence(drifted=INPUTS), POLICY, state, NOW)
    assert decision.retrain
    assert state.consecutive_drifted_checks == 0 and state.last_retrain.time == NOW
    assert state.last_retrain.reason.startswith("10 of 10 input columns drifted")
    later = NOW + dt.timedelta(hours=1)
    decision, _ = decide(evidence(labelled=300, drop=0.2), POLICY, state, later)
    assert decision.action == "cooldown"  # the performance trigger waits for the cooldown too


def test_disabled_retraining_only_alerts():
    decision, state = decide(
        evidence(drifted=INPUTS), POLICY, MonitorState(consecutive_drifted_checks=1), NOW, False
    )
    assert decision.action == "alert" and "retraining is disabled" in decision.reason
    assert state.last_retrain is None


def test_consecutive_counting_survives_a_restart(tmp_path):
    """Each check runs in a new process (a CronJob's Job): the count lives in the store."""
    path = tmp_path / "state.json"
    _, state = decide(evidence(drifted=INPUTS), POLICY, JsonStateStore(path).load(), NOW)
    JsonStateStore(path).save(state)
    restarted = JsonStateStore(path).load()  # a new process reads what the last one kept
    assert restarted.consecutive_drifted_checks == 1
    decision, state = decide(
        evidence(drifted=INPUTS), POLICY, restarted, NOW + dt.timedelta(hours=1)
    )
    assert decision.action == "retrain"
    JsonStateStore(path).save(state.with_retrain("run-7", "4"))
    kept = JsonStateStore(path).load()
    assert (kept.last_retrain.run_id, kept.last_retrain.version) == ("run-7", "4")
    assert kept.last_retrain.time == NOW + dt.timedelta(hours=1)
    decision, _ = decide(evidence(drifted=INPUTS), POLICY, kept, NOW + dt.timedelta(hours=2))
    assert decision.action == "drift_pending"  # counting afresh after the retrain


def test_the_state_is_the_drift_monitor_status():
    state = MonitorState(
        consecutive_drifted_checks=2,
        last_check=NOW,
        last_retrain=LastRetrain(
            NOW - dt.timedelta(days=1), run_id="abc", reason="drift", version="3"
        ),
    )
    status = to_status(state)
    assert status == {
        "consecutiveDriftedChecks": 2,
        "lastCheck": "2026-11-29T12:00:00Z",
        "lastRetrain": {
            "time": "2026-11-28T12:00:00Z",
            "runId": "abc",
            "reason": "drift",
            "version": "3",
        },
    }
    assert from_status(MonitorState, status) == state
    assert from_status(MonitorState, None) == MonitorState()


def test_a_state_file_that_cannot_be_read_is_named(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(Exception, match="state.json: the monitor's state cannot be read"):
        JsonStateStore(path).load()
