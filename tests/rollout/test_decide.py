"""The rollout decision core as tables: what each observation makes the controller do."""

from __future__ import annotations

import pytest

from modelfactory.rollout.actions import (
    ClearTraffic,
    Event,
    Observation,
    Promote,
    RecordOutcome,
    RegistryView,
    Rollback,
    SetChallenger,
    SetTraffic,
)
from modelfactory.rollout.decide import decide
from modelfactory.rollout.spec import parse_spec
from modelfactory.rollout.state import RolloutState
from modelfactory.rollout.status import DEGRADED, HEALTHY, PAUSED, PROGRESSING, Status
from tests.rollout.simulation import CHALLENGER, CHAMPION, GOOD, INTERVAL, Run, spec


def test_a_new_challenger_starts_at_the_first_step_and_gets_its_traffic():
    run = Run(spec())
    run.tick()
    assert run.status.phase == PROGRESSING and run.status.challenger == CHALLENGER
    assert run.of(SetTraffic) == [SetTraffic("canary", 10, 1, 50)]
    assert run.registry.traffic.active and run.status.step == 1


def test_a_good_challenger_goes_through_every_step_and_is_promoted():
    run = Run(spec())
    run.tick()
    run.tick(INTERVAL, **GOOD)  # the 10% interval passes: on to 50%
    assert run.status.weight == 50 and run.of(SetTraffic) == [SetTraffic("canary", 50, 3, 50)]
    run.tick(INTERVAL, **GOOD)  # the 50% interval passes: last step done
    assert run.of(Promote) == [Promote(CHALLENGER)]
    outcome = run.of(RecordOutcome)[0]
    assert outcome.outcome == "promoted" and outcome.metrics["agreement"]["value"] == 1.0
    assert run.status.phase == HEALTHY and run.status.champion == CHALLENGER
    assert run.status.history[0].outcome == "promoted"
    run.tick(10)  # afterwards: the new champion alone, nothing to do
    assert run.status.phase == HEALTHY and run.actions == []


@pytest.mark.parametrize(
    ("traffic", "metric", "measured", "violates"),
    [
        ({"calls": 300, "errors": 30}, "error-rate", "error-rate 0.1 [", "violates <= 0.01"),
        ({"calls": 300, "fallbacks": 30}, "fallback-rate", "fallback-rate 0.1 [", "<= 0.02"),
        ({"calls": 300, "latency_s": 0.2}, "latency-p99-ms", "latency-p99-ms 248", "<= 50"),
        ({"calls": 300, "disagreed": 90}, "agreement", "agreement 0.7 [", "violates >= 0.9"),
    ],
)
def test_a_metric_beyond_its_threshold_rolls_back_with_the_measured_value(
    traffic, metric, measured, violates
):
    run = Run(spec())
    run.tick()
    run.tick(INTERVAL, **traffic)
    assert run.of(Rollback) == [Rollback(CHALLENGER)]
    assert run.status.phase == DEGRADED
    assert measured in run.status.message and violates in run.status.message
    assert "failed 1 > failureLimit 0" in run.status.message
    outcome = run.of(RecordOutcome)[0]
    assert outcome.outcome == "rolled-back" and outcome.metrics[metric]["failed"] == 1
    assert any(isinstance(a, Event) and a.type == "Warning" for a in run.actions)
    assert not run.registry.traffic.active and run.registry.challenger is None


def test_failure_limit_allows_that_many_failed_intervals():
    run = Run(spec(analysis__failureLimit=1))
    run.tick()
    run.tick(INTERVAL, calls=300, errors=30)
    assert run.status.phase == PROGRESSING and run.status.weight == 10  # failed once, allowed
    assert run.status.analysis.metrics["error-rate"].failed == 1
    run.tick(INTERVAL, calls=300, errors=30)
    assert run.of(Rollback) and "failed 2 > failureLimit 1" in run.status.message


def test_a_dry_run_metric_is_measured_and_shown_but_never_rolls_back():
    run = Run(spec(analysis__dryRun=["latency-p99-ms"]))
    run.tick()
    run.tick(INTERVAL, calls=1500, latency_s=0.2)
    assert not run.of(Rollback) and run.status.weight == 50
    latency = run.status.analysis.metrics["latency-p99-ms"]
    assert latency.failed == 1 and latency.dry_run and latency.value > 50


def test_latency_may_be_judged_against_the_champion():
    ratio = {"name": "latency-p99-ms", "maxRatioToChampion": 1.5}
    run = Run(spec(analysis__metrics=[ratio]))
    run.tick()
    run.tick(INTERVAL, calls=300, latency_s=0.004, champion_latency_s=0.004)
    assert run.status.weight == 50
    run.tick(INTERVAL, calls=300, latency_s=0.04, champion_latency_s=0.004)
    assert run.of(Rollback) and "latency-p99-ms" in run.status.message


def test_too_few_requests_are_inconclusive_never_a_pass_and_pause_past_the_limit():
    run = Run(spec())
    run.tick()
    for _ in range(3):  # inconclusiveLimit 2: the third inconclusive interval pauses
        run.tick(INTERVAL, calls=20)
        assert run.status.weight == 10 and not run.of(Promote)
    assert run.status.phase == PAUSED
    assert "20 challenger requests < minRequests 100" in run.status.message
    assert run.status.analysis.metrics["error-rate"].inconclusive == 3
    assert [a.reason for a in run.of(Event)] == ["AnalysisInconclusive"]
    run.tick(INTERVAL, calls=20)
    assert run.status.phase == PAUSED and not run.of(Promote)  # it never passes by itself
    assert not run.of(Event)  # still paused: no second event, the message counts on
    assert "inconclusive 4 intervals in a row" in run.status.message
    run.tick(1, action="promote")  # a person decides to go on
    assert run.status.phase == PROGRESSING
    run.tick(INTERVAL, **GOOD)
    assert run.status.weight == 50


def test_unreachable_metrics_make_an_interval_inconclusive():
    run = Run(spec())
    run.tick()
    run.tick(INTERVAL, metrics=None)
    assert run.status.phase == PROGRESSING and run.status.weight == 10
    assert "metrics unreachable (connection refused)" in run.status.analysis.last_reason


def test_an_unreachable_registry_holds_the_rollout_and_then_resumes():
    run = Run(spec())
    run.tick()
    run.tick(INTERVAL, registry=None, **GOOD)
    assert run.actions == [] and run.status.weight == 10
    assert run.status.message.startswith("registry unreachable (connection refused): holding step")
    run.tick(1)
    assert run.status.weight == 50  # the interval that was due closes once it answers


def test_pauses_wait_for_their_duration_or_for_promote():
    steps = [{"setWeight": 20}, {"pause": {"duration": "2m"}}, {"pause": {}}, {"setWeight": 100}]
    run = Run(spec(rollout__steps=steps))
    run.tick()
    run.tick(60)
    assert run.status.step == 1 and run.status.phase == PROGRESSING
    run.tick(61)
    assert run.status.step == 2 and run.status.phase == PAUSED
    run.tick(3600)
    assert run.status.phase == PAUSED and not run.of(Promote)  # no deadline while paused
    run.tick(1, action="promote")
    assert run.of(Promote) == [Promote(CHALLENGER)]


def test_manual_trigger_waits_for_promote_to_start():
    run = Run(spec(rollout__trigger="manual"))
    run.tick()
    assert run.status.phase == PAUSED and run.of(SetTraffic) == []
    assert "waits for promote" in run.status.message
    run.tick(5, action="promote")
    assert run.status.phase == PROGRESSING and run.of(SetTraffic) == [
        SetTraffic("canary", 10, 1, 50)
    ]


def test_abort_rolls_back_and_retry_starts_again():
    run = Run(spec())
    run.tick()
    run.tick(5, action="abort")
    assert run.of(Rollback) == [Rollback(CHALLENGER)]
    assert run.status.phase == DEGRADED and "aborted by a user" in run.status.message
    run.tick(5)
    assert run.status.phase == DEGRADED and run.actions == []  # stays down until told otherwise
    run.tick(5, action="retry")
    assert run.of(SetChallenger) == [SetChallenger(CHALLENGER)]
    assert run.status.phase == PROGRESSING and run.registry.traffic.weight == 10


def test_promote_full_skips_the_remaining_steps():
    run = Run(spec())
    run.tick()
    run.tick(5, action="promote-full")
    assert run.of(Promote) == [Promote(CHALLENGER)] and run.status.champion == CHALLENGER


def test_a_step_that_makes_no_progress_rolls_back_at_the_deadline():
    run = Run(spec(rollout__progressDeadlineSeconds=300))
    run.tick()
    run.tick(INTERVAL, calls=300, errors=0, disagreed=90)
    assert run.of(Rollback)  # agreement fails at once with failureLimit 0
    run = Run(spec(rollout__progressDeadlineSeconds=150, analysis__inconclusiveLimit=10))
    run.tick()
    run.tick(INTERVAL, calls=10)
    run.tick(INTERVAL, calls=10)
    run.tick(INTERVAL, calls=10)
    assert run.of(Rollback) and "made no progress in 150 s" in run.status.message


def test_a_model_another_deployment_drives_is_left_alone_saying_which():
    run = Run(spec())
    decision = decide(run.spec, Status(), Observation(run.now, run.registry, held_by="ns/other"))
    assert decision.actions == [] and "driven by ns/other" in decision.status.message


def test_a_challenger_gone_from_the_registry_aborts_the_rollout():
    run = Run(spec())
    run.tick()
    run.registry = RegistryView(CHAMPION, None, run.registry.traffic)
    run.tick(5)
    assert run.of(ClearTraffic) and not run.of(RecordOutcome)  # no version left to tag
    assert run.status.phase == DEGRADED and "v2 is gone from the registry" in run.status.message


def test_a_newer_challenger_supersedes_the_one_in_flight():
    run = Run(spec())
    run.tick()
    run.registry = RegistryView(CHAMPION, "3", run.registry.traffic)
    run.tick(5)
    assert run.status.challenger == "3" and run.status.phase == PROGRESSING
    assert (run.status.history[0].version, run.status.history[0].outcome) == ("2", "superseded")


def test_without_a_challenger_traffic_tags_set_by_hand_are_cleared():
    run = Run(spec(), challenger=None)
    run.registry = RegistryView(CHAMPION, None, RolloutState(CHAMPION, "2", "canary", 30))
    run.tick()
    assert run.of(ClearTraffic) and run.status.phase == HEALTHY


def test_traffic_tags_changed_by_hand_are_put_back():
    run = Run(spec())
    run.tick()
    run.registry = RegistryView(
        CHAMPION, CHALLENGER, RolloutState(CHAMPION, CHALLENGER, "canary", 90)
    )
    run.tick(5)
    assert run.of(SetTraffic) == [SetTraffic("canary", 10, 1, 50)]


def test_a_restarted_pod_counts_from_zero_not_negative():
    run = Run(spec())
    run.tick()
    run.tick(10, calls=1000)
    run.tick(INTERVAL - 10)  # interval closes on the 1000 calls
    restarted = {"pod-a": {f"calls|canary|{CHALLENGER}": 150.0, f"compared|{CHALLENGER}": 150.0}}
    run.tick(INTERVAL, metrics=restarted)
    assert run.status.analysis.last_reason.startswith("interval 2: 150 challenger requests")


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"model": ""}, "spec.model"),
        ({"model": "m", "rollout": {"trigger": "sometimes"}}, "spec.rollout.trigger"),
        (
            {"model": "m", "rollout": {"steps": [{"setWeight": 150}]}},
            "spec.rollout.steps[0].setWeight",
        ),
        (
            {"model": "m", "rollout": {"steps": [{"jump": 1}]}},
            "spec.rollout.steps[0]: unknown step",
        ),
        ({"model": "m", "rollout": {"steps": [{"pause": {"duration": "soon"}}]}}, "pause.duration"),
        ({"model": "m", "analysis": {"interval": "5 minutes"}}, "spec.analysis.interval"),
        (
            {"model": "m", "analysis": {"metrics": [{"name": "accuracy", "min": 1}]}},
            "metrics[0]: accuracy is not built in",
        ),
        (
            {"model": "m", "analysis": {"metrics": [{"name": "p95", "max": 1, "query": "up"}]}},
            "spec.analysis.prometheus.address",
        ),
        (
            {"model": "m", "analysis": {"prometheus": {"address": "prometheus:9090"}}},
            "spec.analysis.prometheus.address: an http",
        ),
        ({"model": "m", "analysis": {"metrics": [{"name": "agreement", "max": 1}]}}, "takes a min"),
        ({"model": "m", "analysis": {"dryRun": ["nope"]}}, "spec.analysis.dryRun"),
    ],
)
def test_a_spec_that_makes_no_sense_is_refused_naming_the_field(raw, named):
    from modelfactory.rollout.spec import SpecError

    with pytest.raises(SpecError, match=named.replace("[", r"\[").replace("]", r"\]")):
        parse_spec(raw)


QUERIED = {
    "prometheus": {"address": "http://prometheus:9090"},
    "metrics": [
        {"name": "error-rate", "max": 0.01},
        {"name": "p95-ms", "max": 40, "query": "histogram_quantile(0.95, ...)"},
    ],
}


def test_a_promql_metric_is_judged_on_what_prometheus_answered():
    run = Run(
        spec(analysis__prometheus=QUERIED["prometheus"], analysis__metrics=QUERIED["metrics"])
    )
    run.tick()
    run.tick(INTERVAL, queried={"p95-ms": 12.0}, **GOOD)
    assert run.status.weight == 50 and run.status.analysis.metrics["p95-ms"].value == 12.0
    run.tick(INTERVAL, queried={"p95-ms": 85.0}, **GOOD)
    assert run.of(Rollback) and "p95-ms 85 violates <= 40" in run.status.message


def test_a_promql_metric_without_data_is_no_data_and_prometheus_down_is_inconclusive():
    run = Run(
        spec(analysis__prometheus=QUERIED["prometheus"], analysis__metrics=QUERIED["metrics"])
    )
    run.tick()
    run.tick(INTERVAL, queried={"p95-ms": None}, **GOOD)
    assert run.status.analysis.metrics["p95-ms"].last == "NoData"
    run.tick(INTERVAL, query_error="connection refused", **GOOD)
    assert not run.of(Rollback) and not run.of(Promote)
    assert "Prometheus unreachable (connection refused)" in run.status.analysis.last_reason
