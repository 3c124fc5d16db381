"""Rollouts without a cluster, and the same commands against one.

On one machine, :class:`LocalRollouts` keeps what a ModelDeployment's status would hold in a
JSON file per model under ``MODELFACTORY_HOME/rollouts``, and a user's promote/abort/retry in a
file beside it (what the ``modelfactory.io/action`` annotation is on a cluster);
:func:`run_local` drives the same :class:`~modelfactory.rollout.controller.RolloutController`
the operator runs, against the registry and the local serving processes' ``/metrics``.

On a cluster, :class:`ClusterRollouts` reads a ModelDeployment's status and sets its action
annotation (``kubectl annotate mdep NAME modelfactory.io/action=promote``), which the operator
consumes on its next reconcile.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from modelfactory.errors import ModelFactoryError
from modelfactory.operator.crds import ACTION_ANNOTATION, GROUP, MODEL_DEPLOYMENT, VERSION
from modelfactory.rollout.actions import USER_ACTIONS
from modelfactory.rollout.controller import MetricsScraper, MlflowRegistry, RolloutController, Tick
from modelfactory.rollout.spec import RolloutSpec, parse_spec
from modelfactory.rollout.status import Status
from modelfactory.status import from_status, to_status


class RolloutStore(Protocol):
    def status(self, name: str) -> dict[str, Any]: ...

    def request(self, name: str, action: str) -> str: ...


@dataclass
class LocalRollouts:
    directory: Path

    def _status_file(self, model: str) -> Path:
        return self.directory / f"{model}.json"

    def _action_file(self, model: str) -> Path:
        return self.directory / f"{model}.action"

    def status(self, name: str) -> dict[str, Any]:
        path = self._status_file(name)
        if not path.exists():
            raise ModelFactoryError(
                f"no local rollout of {name} yet: start one with `modelfactory rollout run {name}`"
            )
        return json.loads(path.read_text())

    def save(self, model: str, status: Status, spec: dict[str, Any] | None = None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._status_file(model)
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps({"spec": spec or {}, **to_status(status)}, indent=1))
        partial.replace(path)  # never a half-written status

    def request(self, name: str, action: str) -> str:
        _check_action(action)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._action_file(name).write_text(action)
        return f"{action} requested for the local rollout of {name} (taken at its next tick)"

    def take_action(self, model: str) -> str | None:
        path = self._action_file(model)
        if not path.exists():
            return None
        action = path.read_text().strip()
        path.unlink(missing_ok=True)
        return action or None


@dataclass
class ClusterRollouts:
    namespace: str

    def _api(self):
        from kubernetes import client

        from modelfactory.operator.kube import api_client

        return client.CustomObjectsApi(api_client())

    def status(self, name: str) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            found = self._api().get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, MODEL_DEPLOYMENT.plural, name
            )
        except ApiException as exc:
            if exc.status == 404:
                raise ModelFactoryError(
                    f"no ModelDeployment {name!r} in namespace {self.namespace!r} "
                    "(kubectl get mdep -A lists them)"
                ) from None
            raise ModelFactoryError(f"the Kubernetes API refused: {exc.reason}") from None
        return {"spec": found.get("spec", {}), **(found.get("status") or {})}

    def request(self, name: str, action: str) -> str:
        _check_action(action)
        self.status(name)  # a clear error for a name that does not exist
        body = {"metadata": {"annotations": {ACTION_ANNOTATION: action}}}
        self._api().patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, MODEL_DEPLOYMENT.plural, name, body
        )
        return (
            f"{action} requested on modeldeployment/{name} in {self.namespace} "
            f"(same as: kubectl annotate mdep {name} {ACTION_ANNOTATION}={action} --overwrite)"
        )


def _check_action(action: str) -> None:
    if action not in USER_ACTIONS:
        raise ModelFactoryError(f"unknown action {action!r}; use one of {', '.join(USER_ACTIONS)}")


def load_spec(
    model: str, path: Path | None = None, **overrides: Any
) -> tuple[RolloutSpec, dict[str, Any]]:
    """The rollout of ``model``, parsed and as written: a ModelDeployment manifest's spec (or the
    defaults), with ``analysis`` fields overridden (``interval``, ``minRequests``) when given."""
    raw: dict[str, Any] = {"model": model}
    if path is not None:
        document = yaml.safe_load(Path(path).read_text()) or {}
        raw = {**(document.get("spec") or document), "model": model}
    analysis = dict(raw.get("analysis") or {})
    analysis.update({k: v for k, v in overrides.items() if v is not None})
    raw["analysis"] = analysis
    return parse_spec(raw), raw


def run_local(
    spec: RolloutSpec,
    raw_spec: dict[str, Any] | None,
    store: LocalRollouts,
    tracking_uri: str,
    metrics_urls: list[str],
    tick_seconds: float = 5.0,
    until_done: bool = True,
    timeout: float | None = None,
    on_tick: Callable[[Tick], None] = lambda tick: None,
    sleep: Callable[[float], None] = time.sleep,
) -> Status:
    """Reconcile ``spec``'s rollout every ``tick_seconds``; return the status it ended on.

    With ``until_done``, stops once a rollout that ran has ended (promoted, rolled back or
    aborted), or at once when there is nothing to roll out; else runs until ``timeout``.
    """
    from modelfactory.registry import Registry

    evidence = local_evidence(spec.model, tracking_uri)
    controller = RolloutController(
        MlflowRegistry(Registry(tracking_uri), "local"),
        MetricsScraper(lambda: {url: url for url in metrics_urls}),
        replayer=evidence.replay,
        outcomes=evidence.outcomes,
    )
    try:
        status = from_status(Status, store.status(spec.model))
    except ModelFactoryError:
        status = Status()
    deadline = None if timeout is None else time.monotonic() + timeout
    for _ in _forever():
        tick = controller.reconcile(spec, status, store.take_action(spec.model))
        status = tick.status
        store.save(spec.model, status, raw_spec)
        on_tick(tick)
        if until_done and tick.settled:
            return status
        if deadline is not None and time.monotonic() > deadline:
            return status
        sleep(tick_seconds)
    return status


def local_evidence(model: str, tracking_uri: str):
    """Replays and ground truth of ``model`` read on this machine, for its use case."""
    from modelfactory.config import get_settings
    from modelfactory.monitoring.rollout_evidence import RolloutEvidence
    from modelfactory.registry import Registry
    from modelfactory.use_cases import monitored_use_case

    case = monitored_use_case(model, None, Registry(tracking_uri))
    return RolloutEvidence(case, tracking_uri, get_settings())


def _forever() -> Iterator[int]:
    count = 0
    while True:
        yield count
        count += 1
