"""A controller's view of a rollout, simulated: counters that grow interval by interval, and
observations fed to decide() one tick at a time, its status round-tripped through the codec as a
restarted operator would read it."""

from __future__ import annotations

from modelfactory.rollout.actions import (
    ClearTraffic,
    Observation,
    Promote,
    RegistryView,
    Rollback,
    SetChallenger,
    SetTraffic,
)
from modelfactory.rollout.decide import decide
from modelfactory.rollout.spec import parse_spec
from modelfactory.rollout.state import RolloutState
from modelfactory.rollout.status import Status
from modelfactory.status import from_status, to_status

CHAMPION, CHALLENGER = "1", "2"
INTERVAL = 60.0
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, float("inf"))


def spec(**overrides):
    raw = {
        "model": "m",
        "rollout": {
            "steps": [{"setWeight": 10}, {"analysis": {}}, {"setWeight": 50}, {"analysis": {}}],
            "budgetMs": 50,
            "progressDeadlineSeconds": 3600,
        },
        "analysis": {"interval": "1m", "minRequests": 100, "inconclusiveLimit": 2},
    }
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        raw.setdefault(section, {})[field] = value
    return parse_spec(raw)


class Traffic:
    """Cumulative counters of one serving pod, grown interval by interval."""

    def __init__(self):
        self.counters: dict[str, float] = {}

    def add(
        self,
        calls=0,
        errors=0,
        fallbacks=0,
        compared=None,
        disagreed=0,
        latency_s=0.001,
        shadow=False,
        champion_latency_s=0.001,
    ):
        c = self.counters
        mode = "shadow" if shadow else "canary"

        def inc(key, n):
            c[key] = c.get(key, 0.0) + n

        inc(f"calls|{mode}|{CHALLENGER}", calls)
        inc(f"errors|{CHALLENGER}", errors)
        inc(f"fallbacks|{CHALLENGER}", fallbacks)
        inc(f"compared|{CHALLENGER}", calls if compared is None else compared)
        inc(f"disagreed|{CHALLENGER}", disagreed)
        for bound in BUCKETS:
            if not shadow:
                inc(f"challenger_le|{CHALLENGER}|{bound}", calls if latency_s <= bound else 0)
            inc(f"answered_le|{CHAMPION}|{bound}", calls if champion_latency_s <= bound else 0)
        return {"pod-a": dict(c)}


class Run:
    """Feeds observations to decide() as a controller would, one tick at a time."""

    def __init__(self, rollout_spec, challenger=CHALLENGER, champion=CHAMPION):
        self.spec = rollout_spec
        self.status = Status()
        self.now = 1_000_000.0
        self.registry = RegistryView(champion, challenger, RolloutState(champion, challenger))
        self.traffic = Traffic()
        self.metrics = {"pod-a": {}}
        self.actions: list = []

    def tick(
        self,
        seconds=0.0,
        action=None,
        registry="same",
        metrics="same",
        queried=None,
        query_error=None,
        outcomes=None,
        outcomes_error=None,
        replay=None,
        **traffic,
    ):
        self.now += seconds
        if traffic:
            self.metrics = self.traffic.add(**traffic)
        reg = self.registry if registry == "same" else registry
        observed = Observation(
            now=self.now,
            registry=reg,
            registry_error=None if reg else "connection refused",
            metrics=self.metrics if metrics == "same" else metrics,
            metrics_error=None if metrics == "same" else "connection refused",
            action=action,
            queried=queried or {},
            query_error=query_error,
            outcomes=outcomes,
            outcomes_error=outcomes_error,
            replay=replay,
        )
        # A restarted controller only has what the status holds: round-trip it every time.
        decision = decide(self.spec, from_status(Status, to_status(self.status)), observed)
        self.status = decision.status
        self.actions = decision.actions
        self._apply(decision.actions)
        return decision.actions

    def _apply(self, actions):
        """What the registry looks like after the controller applied the actions."""
        champion, challenger, traffic = (
            self.registry.champion,
            self.registry.challenger,
            self.registry.traffic,
        )
        for action in actions:
            if isinstance(action, SetTraffic):
                traffic = RolloutState(
                    champion, challenger, action.mode, action.weight, action.step, action.budget_ms
                )
            elif isinstance(action, ClearTraffic):
                traffic = RolloutState(champion, challenger)
            elif isinstance(action, Promote):
                champion, challenger, traffic = action.version, None, RolloutState(action.version)
            elif isinstance(action, Rollback):
                challenger, traffic = None, RolloutState(champion)
            elif isinstance(action, SetChallenger):
                challenger = action.version
        self.registry = RegistryView(champion, challenger, traffic)

    def of(self, kind):
        return [a for a in self.actions if isinstance(a, kind)]


# Enough requests that zero errors bound the error rate below 1% (anytime-valid, alpha/3 each).
GOOD = {"calls": 1500, "latency_s": 0.004}
