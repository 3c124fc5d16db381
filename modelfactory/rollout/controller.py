"""The level-based rollout loop: observe, decide, apply; the same on a cluster and on one machine.

:class:`RolloutController` reads the registry (:class:`MlflowRegistry`) and the serving pods'
counters (:class:`MetricsScraper` over the URLs an adapter finds: a Service's EndpointSlices
in the operator, the local serving processes on one machine), and, when the rollout asks for
them, the ground truth of each version's answers (an ``outcomes`` reader) and the challenger's
replay (its version's ``rollout.replay`` tag), calls the pure
:func:`~modelfactory.rollout.decide.decide`, and applies its actions to the registry; a replay
it asks for is started by a ``replayer`` (in this process on one machine, a Job on a cluster)
that records its result on the version. The status
it returns is what the adapter stores (a ModelDeployment's status, or a JSON file locally);
nothing else is kept between ticks, so a restarted controller resumes where the status says.

If writing to the registry fails half-way, the controller returns the status it was given with
the reason in its message: the next tick observes again and decides again (holding its ground
rather than recording a move that did not happen).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import httpx

from modelfactory.registry import CHALLENGER, CHAMPION, Registry, fail_fast
from modelfactory.rollout.actions import (
    Action,
    ClearTraffic,
    Decision,
    Event,
    Observation,
    Promote,
    RecordOutcome,
    RegistryView,
    Rollback,
    RunReplay,
    SetChallenger,
    SetTraffic,
    VersionOutcome,
)
from modelfactory.rollout.analysis import interval_due
from modelfactory.rollout.decide import decide
from modelfactory.rollout.measurements import PodSamples, samples_from_text
from modelfactory.rollout.replay import TAG as REPLAY_TAG
from modelfactory.rollout.replay import ReplayResult
from modelfactory.rollout.spec import RolloutSpec
from modelfactory.rollout.state import RolloutState, clear_rollout, set_rollout
from modelfactory.rollout.status import DEGRADED, HEALTHY, Status
from modelfactory.timestamps import rfc3339

log = logging.getLogger(__name__)

# Tags on a model version recording how its rollout ended (lineage: version -> deployment).
OUTCOME_TAGS = ("rollout.outcome", "rollout.reason", "rollout.deployment", "rollout.finished_at")
# On the registered model: the one deployment that drives its rollout.
OWNER_TAG = "modelfactory.deployment"
# Starts the replay a RunReplay asks for; its result lands on the version's rollout.replay tag.
Replayer = Callable[[str, RunReplay], object]
# The ground truth of the named versions' answers since a time (seconds since the epoch).
OutcomeReader = Callable[[str, list[str], float], Mapping[str, VersionOutcome]]


class MlflowRegistry:
    """The registry side of a rollout: aliases, traffic tags and outcomes on the versions.

    MLflow calls of the process fail fast from here on (:func:`modelfactory.registry.fail_fast`).
    """

    def __init__(self, registry: Registry, deployment: str):
        fail_fast()
        self.registry = registry
        self.deployment = deployment  # "namespace/name" of the ModelDeployment, or "local"

    def claim(self, model: str) -> str:
        """Claim ``model``'s rollout for this deployment unless another holds it; the holder."""
        return self.view_and_claim(model)[1]

    def view_and_claim(self, model: str) -> tuple[RegistryView, str]:
        """The model's rollout as the registry records it, and who drives it (claimed for this
        deployment when nobody does): one read of the registered model."""
        found = self.registry.client.get_registered_model(model)
        tags = dict(found.tags or {})
        traffic = RolloutState.from_registry(dict(found.aliases or {}), tags)
        owner = tags.get(OWNER_TAG)
        if owner is None:
            self.registry.client.set_registered_model_tag(model, OWNER_TAG, self.deployment)
            owner = self.deployment
        return RegistryView(traffic.champion, traffic.challenger, traffic), owner

    def release(self, model: str) -> None:
        """Give up the claim (a deleted deployment), if it is this deployment's."""
        tags = dict(self.registry.client.get_registered_model(model).tags or {})
        if tags.get(OWNER_TAG) == self.deployment:
            self.registry.client.delete_registered_model_tag(model, OWNER_TAG)

    def apply(self, model: str, action: Action) -> None:
        registry, client = self.registry, self.registry.client
        if isinstance(action, SetTraffic):
            set_rollout(registry, model, action.mode, action.weight, action.step, action.budget_ms)
        elif isinstance(action, ClearTraffic):
            clear_rollout(registry, model)
        elif isinstance(action, Promote):
            registry.set_alias(model, CHAMPION, action.version)
            self._drop_challenger(model, action.version)
            clear_rollout(registry, model)
        elif isinstance(action, Rollback):
            self._drop_challenger(model, action.version)
            clear_rollout(registry, model)
        elif isinstance(action, SetChallenger):
            registry.set_alias(model, CHALLENGER, action.version)
        elif isinstance(action, RecordOutcome):
            tags = {
                "rollout.outcome": action.outcome,
                "rollout.reason": action.reason[:5000],
                "rollout.deployment": self.deployment,
                "rollout.finished_at": rfc3339(int(time.time())),
                "rollout.metrics": json.dumps(action.metrics)[:5000],
            }
            for key, value in tags.items():
                client.set_model_version_tag(model, action.version, key, value)

    def replay_result(self, model: str, version: str) -> ReplayResult | None:
        """The replay recorded on ``version``, if one finished."""
        text = (self.registry.client.get_model_version(model, version).tags or {}).get(REPLAY_TAG)
        return ReplayResult.from_tag(text) if text else None

    def record_replay(self, model: str, result: ReplayResult) -> None:
        self.registry.client.set_model_version_tag(
            model, result.version, REPLAY_TAG, result.as_tag()
        )

    def _drop_challenger(self, model: str, version: str) -> None:
        found = self.registry.version_by_alias(model, CHALLENGER)
        if found is not None and str(found.version) == version:
            self.registry.delete_alias(model, CHALLENGER)


class MetricsUnreachable(RuntimeError):
    pass


# One HTTP client each per process: a controller is made per reconcile, and a new client loads
# the CA bundle again (most of an idle reconcile's CPU; docs/adr/0009).
@cache
def _pod_client() -> httpx.Client:
    # Pod addresses are never behind an HTTP proxy the environment may name.
    return httpx.Client(timeout=3.0, trust_env=False)


@cache
def _prometheus_client() -> httpx.Client:
    return httpx.Client(timeout=5.0)


@dataclass
class MetricsScraper:
    """GET ``/metrics`` of every serving pod ``targets()`` names (pod name -> base URL).

    Any pod that does not answer makes the whole reading unreachable: counters of a pod missing
    at one end of an interval would be counted wrong at the other.
    """

    targets: Callable[[], dict[str, str]]
    timeout: float = 3.0
    client: httpx.Client = field(default_factory=lambda: _pod_client())

    def scrape(self, model: str, versions: Iterable[str]) -> PodSamples:
        found: PodSamples = {}
        wanted = [v for v in versions if v]
        targets = self.targets()
        if not targets:
            raise MetricsUnreachable("no ready serving endpoint to read /metrics from")
        for pod, url in targets.items():
            try:
                answer = self.client.get(f"{url.rstrip('/')}/metrics", timeout=self.timeout)
                answer.raise_for_status()
            except httpx.HTTPError as exc:
                raise MetricsUnreachable(f"{pod} ({url}): {exc}") from None
            found[pod] = samples_from_text(answer.text, model, wanted)
        return found


@dataclass(frozen=True)
class Tick:
    """One reconcile: the decision, the actions applied, and a problem if any."""

    decision: Decision
    applied: list[Action]
    observed: Observation
    problem: str | None = None

    @property
    def status(self) -> Status:
        return self.decision.status

    @property
    def events(self) -> list[Event]:
        return [a for a in self.applied if isinstance(a, Event)]

    @property
    def settled(self) -> bool:
        """Nothing in flight, and the registry was read and written as decided."""
        status = self.decision.status
        return (
            self.problem is None
            and self.observed.registry is not None
            and status.challenger is None
            and status.phase in (HEALTHY, DEGRADED)
        )


class PrometheusUnreachable(Exception):
    pass


@dataclass
class PrometheusQueries:
    """Evaluates an analysis' PromQL metrics (``GET /api/v1/query``) on its Prometheus.

    A query answers one number: a scalar, or a vector of one sample (aggregate with ``sum``,
    ``max``, ``histogram_quantile``...); an empty vector or NaN is no data, several series are
    an error naming the query.
    """

    client: httpx.Client = field(default_factory=lambda: _prometheus_client())

    def evaluate(
        self, address: str, queries: Mapping[str, str], values: Mapping[str, str]
    ) -> dict[str, float | None]:
        found: dict[str, float | None] = {}
        for name, template in queries.items():
            query = render_query(template, values)
            try:
                answer = self.client.get(
                    f"{address.rstrip('/')}/api/v1/query", params={"query": query}
                )
                body = answer.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise PrometheusUnreachable(f"{address}: {exc}") from None
            if body.get("status") != "success":
                raise PrometheusUnreachable(
                    f"{name}: {body.get('errorType', answer.status_code)}: "
                    f"{body.get('error', answer.text[:200])} (query {query!r})"
                )
            found[name] = _one_number(name, body["data"])
        return found


def render_query(template: str, values: Mapping[str, str]) -> str:
    """``{{model}}``, ``{{challenger}}``, ``{{champion}}``, ``{{interval}}`` filled in."""
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def _one_number(name: str, data: Mapping[str, Any]) -> float | None:
    if data.get("resultType") == "scalar":
        value = float(data["result"][1])
    else:
        series = data.get("result") or []
        if not series:
            return None
        if len(series) > 1:
            raise PrometheusUnreachable(
                f"{name}: the query returned {len(series)} series; aggregate them to one"
            )
        value = float(series[0]["value"][1])
    return None if math.isnan(value) else value


class RolloutController:
    def __init__(
        self,
        registry: MlflowRegistry,
        metrics: MetricsScraper,
        clock: Callable[[], float] = time.time,
        prometheus: PrometheusQueries | None = None,
        replayer: Replayer | None = None,
        outcomes: OutcomeReader | None = None,
    ):
        self.registry = registry
        self.metrics = metrics
        self.clock = clock
        self.prometheus = prometheus or PrometheusQueries()
        self.replayer = replayer
        self.outcomes = outcomes

    def observe(self, spec: RolloutSpec, status: Status, action: str | None) -> Observation:
        now = self.clock()
        try:
            view, owner = self.registry.view_and_claim(spec.model)
        except Exception as exc:  # unreachable, or the model is not registered (yet)
            return Observation(now, None, registry_error=_short(exc), action=action)
        if owner != self.registry.deployment:
            return Observation(now, view, action=action, held_by=owner)
        challenger = view.challenger or status.challenger
        if challenger is None:
            return Observation(now, view, action=action)
        step = (
            spec.steps[status.step] if status.in_flight and status.step < len(spec.steps) else None
        )
        seen: dict[str, Any] = {}
        if step is not None and step.kind == "replay" and status.replay is not None:
            try:
                seen["replay"] = self.registry.replay_result(spec.model, challenger)
            except Exception as exc:
                return Observation(now, None, registry_error=_short(exc), action=action)
        try:
            samples = self.metrics.scrape(spec.model, [view.champion or "", challenger])
        except Exception as exc:
            return Observation(now, view, metrics_error=_short(exc), action=action, **seen)
        due = interval_due(spec, status, now)
        if (due and spec.analysis.needs_outcomes) or (
            step is not None and step.kind == "awaitOutcomes"
        ):
            seen.update(self._outcomes(spec, status, view, challenger))
        analysis, address = spec.analysis, spec.analysis.prometheus
        # Prometheus is asked only when the interval its answers are judged for closes.
        if address is None or not analysis.queries or not due:
            return Observation(now, view, metrics=samples, action=action, **seen)
        values = {
            "model": spec.model,
            "challenger": challenger,
            "champion": view.champion or "",
            "interval": f"{max(int(analysis.interval), 1)}s",
        }
        try:
            queried = self.prometheus.evaluate(address, analysis.queries, values)
        except Exception as exc:
            return Observation(
                now, view, metrics=samples, action=action, query_error=_short(exc), **seen
            )
        return Observation(now, view, metrics=samples, action=action, queried=queried, **seen)

    def _outcomes(
        self, spec: RolloutSpec, status: Status, view: RegistryView, challenger: str
    ) -> dict[str, Any]:
        if self.outcomes is None:
            return {"outcomes_error": "no ground-truth reader here (the prediction store)"}
        versions = [v for v in (view.champion, challenger) if v]
        try:
            found = self.outcomes(spec.model, versions, status.rollout_started_at or 0.0)
        except Exception as exc:
            return {"outcomes_error": _short(exc)}
        return {"outcomes": found}

    def reconcile(self, spec: RolloutSpec, status: Status, action: str | None = None) -> Tick:
        observed = self.observe(spec, status, action)
        decision = decide(spec, status, observed)
        applied: list[Action] = []
        for item in decision.actions:
            if isinstance(item, Event):
                applied.append(item)
                continue
            try:
                if isinstance(item, RunReplay):
                    if self.replayer is None:
                        raise RuntimeError("no replayer here to run a replay step")
                    self.replayer(spec.model, item)
                else:
                    self.registry.apply(spec.model, item)
            except Exception as exc:
                problem = f"{type(item).__name__} could not be applied ({_short(exc)})"
                held = copy.deepcopy(status)
                held.message = f"{problem}: holding; {status.message}"
                log.warning("%s: %s", spec.model, problem)
                return Tick(Decision(held, []), applied, observed, problem)
            applied.append(item)
        return Tick(decision, applied, observed)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
