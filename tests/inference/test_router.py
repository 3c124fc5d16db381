"""The model router's decisions and behaviour, without MLflow: weights, stickiness, explicit
versions, shadow, fallback, and keeping the last known state."""

from __future__ import annotations

import itertools
import time

import pytest

from modelfactory.inference.router import (
    ModelRouter,
    RouterObserver,
    UnknownVersion,
    choose_route,
    request_bucket,
)
from modelfactory.inference.schema import InvalidInput
from modelfactory.rollout import RolloutState
from tests.support.fakes import FakeModel

RECORDS = [{"x": 1.0}]


def canary(weight: float, **kw) -> RolloutState:
    return RolloutState(champion="1", challenger="2", mode="canary", weight=weight, **kw)


def test_tags_describe_the_rollout_and_bad_tags_mean_champion_only():
    state = RolloutState.from_registry(
        {"champion": "3", "challenger": "4"},
        {
            "rollout.mode": "canary",
            "rollout.weight": "25",
            "rollout.step": "2",
            "rollout.budget_ms": "20",
            "rollout.version": "4",
        },
    )
    assert (state.mode, state.weight, state.step, state.budget_ms, state.active) == (
        "canary",
        25,
        2,
        20,
        True,
    )
    assert not RolloutState.from_registry(
        {"champion": "3"}, {"rollout.mode": "canary", "rollout.weight": "50"}
    ).active


def test_a_new_challenger_never_inherits_the_traffic_of_a_rollout_left_behind():
    """Tags written for v4 (a rollout paused and abandoned); v5 registers as challenger."""
    left_behind = {"rollout.mode": "canary", "rollout.weight": "80", "rollout.version": "4"}
    state = RolloutState.from_registry({"champion": "3", "challenger": "5"}, left_behind)
    assert not state.active and state.versions == ("3",)
    assert "written for v4, the challenger is v5" in state.problem
    assert all(choose_route(state).version == "3" for _ in range(100))


@pytest.mark.parametrize(
    "tags",
    [
        {"rollout.mode": "blue-green", "rollout.weight": "10"},
        {"rollout.mode": "canary", "rollout.weight": "150"},
        {"rollout.mode": "canary", "rollout.weight": "ten"},
    ],
)
def test_malformed_rollout_tags_mean_champion_only_with_the_reason(tags):
    ignored = RolloutState.from_registry(
        {"champion": "3", "challenger": "4"}, {**tags, "rollout.version": "4"}
    )
    assert not ignored.active and ignored.problem


def test_weighted_choice_follows_the_weight():
    draws = itertools.cycle(i / 1000 for i in range(1000))
    routes = [choose_route(canary(30), draw=lambda: next(draws)) for _ in range(1000)]
    assert sum(r.version == "2" for r in routes) == 300
    assert all(r.fallback == "1" for r in routes if r.version == "2")
    assert all(r.version == "1" for r in (choose_route(canary(0)) for _ in range(200)))
    assert all(r.version == "2" for r in (choose_route(canary(100)) for _ in range(200)))


def test_sticky_keys_stay_put_and_keep_the_challenger_as_the_weight_grows():
    keys = [f"customer-{i}" for i in range(2000)]
    at_10 = {k for k in keys if choose_route(canary(10), request_key=k).version == "2"}
    assert at_10 == {k for k in keys if choose_route(canary(10), request_key=k).version == "2"}
    at_50 = {k for k in keys if choose_route(canary(50), request_key=k).version == "2"}
    assert at_10 <= at_50
    assert 0.05 < len(at_10) / len(keys) < 0.15 and 0.45 < len(at_50) / len(keys) < 0.55
    assert 0 <= request_bucket("anything") < 1


def test_explicit_version_wins_and_unknown_versions_are_refused():
    assert choose_route(canary(100), explicit_version="1").version == "1"
    assert choose_route(canary(0), explicit_version="2").version == "2"
    with pytest.raises(UnknownVersion, match="'7' is not served"):
        choose_route(canary(50), explicit_version="7")


def test_shadow_never_answers_with_the_challenger():
    state = RolloutState(champion="1", challenger="2", mode="shadow", weight=100)
    route = choose_route(state)
    assert (route.version, route.shadow) == ("1", "2")
    assert (
        choose_route(
            RolloutState(champion="1", challenger="2", mode="shadow", weight=100), draw=lambda: 0.5
        ).shadow
        == "2"
    )


class Recorder(RouterObserver):
    def __init__(self):
        self.fallbacks, self.shadows, self.failures, self.errors = [], [], [], []
        self.batches, self.skipped = [], []
        self.calls, self.latencies, self.comparisons = [], [], []

    def fallback(self, model, challenger, reason):
        self.fallbacks.append(reason)

    def challenger_error(self, model, kind):
        self.errors.append(kind)

    def shadow(self, challenger, results, seconds):
        self.batches.append(len(results))
        self.shadows.extend(
            (challenger.version, r.predictions, r.agreements, r.request_id) for r in results
        )

    def state_refresh_failed(self, error):
        self.failures.append(str(error))

    def shadow_skipped(self, challenger):
        self.skipped.append(challenger)

    def challenger_called(self, model, mode):
        self.calls.append(mode)

    def challenger_latency(self, model, seconds):
        self.latencies.append(seconds)

    def compared(self, challenger, agreements):
        self.comparisons.append((challenger, list(agreements)))


def make_router(state: RolloutState, champion: FakeModel, challenger: FakeModel, observer=None):
    models = {"1": champion, "2": challenger}
    router = ModelRouter(
        "fake", read_state=lambda: state, load=models.__getitem__, observer=observer
    )
    assert router.refresh()
    return router


@pytest.mark.parametrize(
    ("challenger", "reason"),
    [
        (FakeModel("2", "yes", fail=True), "error"),
        (FakeModel("2", "yes", delay=0.3), "late"),
        (FakeModel("2", "yes", reject=True), "rejected"),
    ],
)
def test_a_canary_falls_back_to_the_champion_when_the_challenger_fails_is_late_or_rejects(
    challenger, reason
):
    observer = Recorder()
    router = make_router(canary(100, budget_ms=50), FakeModel("1", "no"), challenger, observer)
    routed = router.predict(RECORDS)
    assert routed.model.version == "1" and routed.predictions[0]["class"] == "no"
    assert routed.fallback_reason == reason and observer.fallbacks == [reason]
    router.stop()


def test_canary_answers_from_the_challenger():
    router = make_router(canary(100), FakeModel("1", "no"), FakeModel("2", "yes"))
    routed = router.predict(RECORDS)
    assert (routed.model.version, routed.predictions[0]["class"], routed.fallback_reason) == (
        "2",
        "yes",
        None,
    )
    with pytest.raises(
        InvalidInput
    ):  # bad for the champion too: the caller's problem, not a fallback
        router.predict([{"y": 1}])


def test_shadow_records_the_challengers_answer_and_its_disagreement():
    observer = Recorder()
    router = make_router(
        RolloutState(champion="1", challenger="2", mode="shadow", weight=100),
        FakeModel("1", "no"),
        FakeModel("2", "yes"),
        observer,
    )
    routed = router.predict(RECORDS * 3, request_id="r-1")
    router.drain()
    assert routed.model.version == "1" and [p["class"] for p in routed.predictions] == ["no"] * 3
    assert observer.shadows == [
        ("2", [{"class": "yes", "probability": 0.9}] * 3, [False] * 3, "r-1")
    ]


def test_shadow_requests_queued_together_are_predicted_in_one_challenger_call():
    observer = Recorder()
    challenger = FakeModel("2", "yes", delay=0.2)
    router = make_router(
        RolloutState(champion="1", challenger="2", mode="shadow", weight=100),
        FakeModel("1", "no"),
        challenger,
        observer,
    )
    for i in range(6):
        router.predict(RECORDS * (i + 1), request_id=f"r-{i}")
    router.drain()
    # Queued within one tick (or two, when a tick falls between the requests), not one call each.
    assert challenger.calls <= 2 and observer.batches in (
        [6],
        [5, 1],
        [4, 2],
        [3, 3],
        [2, 4],
        [1, 5],
    )
    assert sorted((len(p), rid) for _, p, _, rid in observer.shadows) == [
        (i + 1, f"r-{i}") for i in range(6)
    ]


def test_shadow_requests_past_the_pending_limit_are_skipped_and_counted_not_queued():
    observer = Recorder()
    models = {"1": FakeModel("1", "no"), "2": FakeModel("2", "yes", delay=0.3)}
    router = ModelRouter(
        "fake",
        read_state=lambda: RolloutState(champion="1", challenger="2", mode="shadow", weight=100),
        load=models.__getitem__,
        observer=observer,
        shadow_pending_limit=3,
    )
    router.refresh()
    answers = [router.predict(RECORDS, request_id=f"r-{i}") for i in range(10)]
    router.drain()
    assert [a.model.version for a in answers] == ["1"] * 10
    # At most 3 wait; the slow challenger holds at most one more batch of 3 while the rest arrive.
    assert len(observer.skipped) >= 4 and len(observer.skipped) + len(observer.shadows) == 10
    router.stop()


class RefusesThirteen(FakeModel):
    def predict(self, records, max_records=None):
        if any(r.get("x") == 13 for r in records):
            raise RuntimeError("13 is unlucky")
        return super().predict(records, max_records)


def test_a_failing_request_in_a_shadow_batch_does_not_cost_the_others_their_answer():
    observer = Recorder()
    router = make_router(
        RolloutState(champion="1", challenger="2", mode="shadow", weight=100),
        FakeModel("1", "no"),
        RefusesThirteen("2", "yes", delay=0.1),
        observer,
    )
    for request_id, records in (
        ("first", RECORDS),
        ("a", RECORDS),
        ("b", [{"x": 13}]),
        ("c", RECORDS),
    ):
        router.predict(records, request_id=request_id)
    router.drain()
    answered = {rid: p is not None for _, p, _, rid in observer.shadows}
    assert answered == {"first": True, "a": True, "b": False, "c": True}
    assert observer.errors == ["RuntimeError"]


def test_a_failing_shadow_never_reaches_the_caller():
    observer = Recorder()
    router = make_router(
        RolloutState(champion="1", challenger="2", mode="shadow", weight=100),
        FakeModel("1", "no"),
        FakeModel("2", fail=True),
        observer,
    )
    assert router.predict(RECORDS).predictions[0]["class"] == "no"
    router.drain()
    assert observer.errors == ["RuntimeError"]


def test_registry_outage_keeps_the_last_known_state():
    observer = Recorder()
    states = iter([canary(40)])

    def read_state():
        try:
            return next(states)
        except StopIteration:
            raise ConnectionError("registry down") from None

    models = {"1": FakeModel("1"), "2": FakeModel("2")}
    router = ModelRouter("fake", read_state=read_state, load=models.__getitem__, observer=observer)
    assert router.refresh()
    assert not router.refresh()
    assert router.state == canary(40) and router.ready and observer.failures == ["registry down"]


def test_a_challenger_that_fails_to_load_leaves_the_champion_serving_alone():
    def load(version):
        if version == "2":
            raise OSError("artifact missing")
        return FakeModel(version)

    router = ModelRouter("fake", read_state=lambda: canary(100), load=load)
    assert router.refresh()
    assert not router.state.active and "failed to load" in router.state.problem
    assert all(router.predict(RECORDS).model.version == "1" for _ in range(20))


def test_not_ready_until_a_champion_loads():
    router = ModelRouter("fake", read_state=lambda: RolloutState(), load=FakeModel)
    router.refresh()
    assert not router.ready
    with pytest.raises(LookupError):
        router.predict(RECORDS)


def test_an_answer_past_the_budget_is_late_even_when_it_arrived_before_the_wait():
    """A challenger taking 2 ms against a 1 ms budget never answers, whether its answer arrives
    during the wait or was already there when the wait began (a wait timeout alone let those
    through), and every one of its latencies is counted."""
    observer = Recorder()
    router = make_router(
        canary(100, budget_ms=1), FakeModel("1", "no"), FakeModel("2", "yes", delay=0.002), observer
    )
    answers = [router.predict(RECORDS) for _ in range(50)]
    assert {a.model.version for a in answers} == {"1"}
    assert observer.fallbacks == ["late"] * 50 and observer.calls == ["canary"] * 50
    deadline = time.monotonic() + 5
    while len(observer.latencies) < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(observer.latencies) == 50 and min(observer.latencies) >= 0.002
    router.stop()


def test_the_latency_of_a_challenger_that_timed_out_is_counted_when_it_finishes():
    observer = Recorder()
    router = make_router(
        canary(100, budget_ms=20), FakeModel("1", "no"), FakeModel("2", "yes", delay=0.2), observer
    )
    assert router.predict(RECORDS).fallback_reason == "late"
    deadline = time.monotonic() + 5
    while not observer.latencies and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(observer.latencies) == 1 and observer.latencies[0] >= 0.2
    router.stop()


def test_a_canary_answer_is_compared_with_the_champion_on_the_same_input():
    observer = Recorder()
    router = make_router(canary(100), FakeModel("1", "no"), FakeModel("2", "yes"), observer)
    for _ in range(3):
        assert router.predict(RECORDS).model.version == "2"
    router.drain()
    assert observer.comparisons and {c for c, _ in observer.comparisons} == {"2"}
    assert [a for _, found in observer.comparisons for a in found] == [False, False, False]
    assert observer.shadows == []  # a comparison is not a shadow prediction (nothing logged)
    router.stop()


def test_shadow_predictions_count_as_calls_and_comparisons():
    observer = Recorder()
    router = make_router(
        RolloutState(champion="1", challenger="2", mode="shadow", weight=100),
        FakeModel("1", "no"),
        FakeModel("2", "no"),
        observer,
    )
    for _ in range(4):
        router.predict(RECORDS)
    router.drain()
    assert observer.calls == ["shadow"] * 4
    assert [a for _, found in observer.comparisons for a in found] == [True] * 4
    router.stop()
