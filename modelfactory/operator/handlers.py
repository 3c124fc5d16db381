"""kopf handlers of ModelDeployment: thin adapters over the rollout controller.

- create/resume/spec change: apply the owned serving Deployment, Service, HPA and PDB;
- a timer: one reconcile of the rollout
  (:class:`~modelfactory.rollout.controller.RolloutController`), its status written to the
  resource (phase, step, weight, analysis, history, conditions) and its decisions emitted as
  Kubernetes events; a user's ``modelfactory.io/action`` annotation (promote, promote-full,
  abort, retry) is consumed;
- deletion: a finalizer clears the model's rollout tags in the registry before the resource goes
  (the owned objects are garbage-collected through their owner references).

and of DriftMonitor: create/resume/spec change apply its CronJob and the ServiceAccount, Role and
RoleBinding its checks run as (:mod:`modelfactory.operator.monitors`); a spec the checks could
not read is refused in status and nothing is applied. The checks themselves write the status
(:mod:`modelfactory.operator.monitor_job`).

Everything a rollout needs to resume is in the resource's status; the operator keeps nothing
in memory between ticks.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import kopf

from modelfactory.config import get_settings
from modelfactory.monitoring.config import MonitorConfig
from modelfactory.monitoring.rollout_evidence import RolloutEvidence
from modelfactory.operator import kube, monitors, replays
from modelfactory.operator.conditions import set_conditions
from modelfactory.operator.crds import (
    ACTION_ANNOTATION,
    DRIFT_MONITOR,
    FINALIZER,
    GROUP,
    MODEL_DEPLOYMENT,
    VERSION,
)
from modelfactory.operator.metrics import OPERATOR_METRICS
from modelfactory.operator.resources import load_serving_template
from modelfactory.operator.resources import owned_objects as render_owned
from modelfactory.registry import Registry
from modelfactory.rollout.actions import RunReplay
from modelfactory.rollout.controller import MetricsScraper, MlflowRegistry, RolloutController
from modelfactory.rollout.spec import SpecError, parse_spec
from modelfactory.rollout.state import clear_rollout
from modelfactory.rollout.status import DEGRADED, HEALTHY, PAUSED, PROGRESSING, Status
from modelfactory.status import from_status, to_status
from modelfactory.use_cases import monitored_use_case

# What kopf's handler decorators take: (group, version, plural).
DEPLOYMENTS = (GROUP, VERSION, MODEL_DEPLOYMENT.plural)
MONITORS = (GROUP, VERSION, DRIFT_MONITOR.plural)
log = logging.getLogger("modelfactory.operator")


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    operator = get_settings().operator
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    # No watching of namespaces and CRDs (cluster-wide list/watch rights it does not need):
    # the CRD exists before the operator starts (the chart installs it), namespaces are named.
    settings.scanning.disabled = True
    settings.execution.max_workers = operator.workers
    if operator.metrics_port:
        OPERATOR_METRICS.serve(operator.metrics_port)


@kopf.on.resume(*DEPLOYMENTS)
@kopf.on.create(*DEPLOYMENTS)
@kopf.on.update(*DEPLOYMENTS, field="spec")
def apply_owned(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    objects, absent = render_owned(
        body, load_serving_template(get_settings().operator.serving_template or None)
    )
    kube.apply(objects)
    for kind, name in absent:
        kube.delete_if_present(body["metadata"]["namespace"], kind, name)
    logger.info("applied %s", ", ".join(f"{o['kind']}/{o['metadata']['name']}" for o in objects))


@kopf.on.resume(*MONITORS)
@kopf.on.create(*MONITORS)
@kopf.on.update(*MONITORS, field="spec")
def apply_monitor(body: kopf.Body, spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> None:
    status = dict(body.get("status") or {})
    target = spec.get("model") or f"the model of ModelDeployment {spec.get('modelDeployment')}"
    try:
        MonitorConfig.model_validate(monitors.monitor_config(dict(spec), target))
    except ValueError as exc:
        problem = f"invalid spec, no CronJob applied: {exc}"
        patch.status["conditions"] = set_conditions(
            status.get("conditions"), [("Scheduled", False, "InvalidSpec", problem)]
        )
        return
    settings = get_settings()
    extra_env = {}
    if settings.monitoring.kfp_host:
        extra_env["MODELFACTORY_MONITORING_KFP_HOST"] = settings.monitoring.kfp_host
        extra_env["MODELFACTORY_MONITORING_KFP_EXPERIMENT"] = settings.monitoring.kfp_experiment
        if settings.monitoring.kfp_mlflow_secret:
            extra_env["MODELFACTORY_MONITORING_KFP_MLFLOW_SECRET"] = (
                settings.monitoring.kfp_mlflow_secret
            )
    operator = settings.operator
    template = load_serving_template(operator.check_template or operator.serving_template or None)
    owned = monitors.owned_objects(body, template, operator.monitor_image, extra_env)
    kube.apply(owned)
    schedule = owned[-1]["spec"]["schedule"]
    message = f"CronJob {monitors.job_name(body)} checks {target} at '{schedule}'"
    patch.status["observedGeneration"] = body["metadata"].get("generation")
    if spec.get("model"):
        patch.status["model"] = spec["model"]  # a ModelDeployment's: each check writes it
    patch.status["conditions"] = set_conditions(  # the checks' Checked and Drifted stay
        status.get("conditions"), [("Scheduled", True, "Scheduled", message)]
    )


def _timer_interval() -> float:
    return get_settings().operator.tick_seconds


@kopf.timer(*DEPLOYMENTS, interval=_timer_interval(), initial_delay=1.0, idle=None)
def reconcile_rollout(
    body: kopf.Body, spec: kopf.Spec, status: kopf.Status, patch: kopf.Patch, **_: Any
) -> None:
    started = time.perf_counter()
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    action = (body["metadata"].get("annotations") or {}).get(ACTION_ANNOTATION)
    if action:
        patch.metadata.setdefault("annotations", {})[ACTION_ANNOTATION] = None  # consumed
    previous = from_status(Status, dict(status))
    try:
        rollout = parse_spec(dict(spec))
    except SpecError as exc:
        previous.phase, previous.message = DEGRADED, f"invalid spec: {exc}"
        _write_status(patch, body, previous)
        OPERATOR_METRICS.reconciled("invalid-spec", time.perf_counter() - started)
        return
    settings = get_settings()
    registry = Registry(settings.mlflow_tracking_uri)

    def replayer(model: str, asked: RunReplay) -> None:
        """A Job runs it (it reads the prediction log); its result lands on the version."""
        operator = settings.operator
        template = load_serving_template(
            operator.replay_template or operator.serving_template or None
        )
        image = operator.monitor_image
        kube.apply([replays.replay_job(body, template, image, asked, rollout.progress_deadline)])

    def outcomes(model: str, versions: list[str], since: float):
        """Read here, from the prediction log (only when a step or metric needs them)."""
        case = monitored_use_case(model, spec.get("useCase"), registry)
        return RolloutEvidence(case, registry.tracking_uri, settings).outcomes(
            model, versions, since
        )

    controller = RolloutController(
        MlflowRegistry(registry, f"{namespace}/{name}"),
        MetricsScraper(lambda: kube.serving_endpoints(namespace, name)),
        replayer=replayer,
        outcomes=outcomes,
    )
    tick = controller.reconcile(rollout, previous, action)
    for event in tick.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        OPERATOR_METRICS.decided(event.reason)
    _write_status(patch, body, tick.status, kube.deployment_available(namespace, name))
    now = tick.status
    OPERATOR_METRICS.rollout(
        namespace, name, rollout.model, now.challenger, now.mode, now.weight, now.step
    )
    OPERATOR_METRICS.evidence_of(namespace, name, rollout.model, now)
    outcome = "registry-write-failed" if tick.problem else "ok"
    OPERATOR_METRICS.reconciled(outcome, time.perf_counter() - started)


@kopf.on.delete(*DEPLOYMENTS, retries=10, backoff=30)
def clear_rollout_tags(spec: kopf.Spec, meta: kopf.Meta, logger: kopf.Logger, **_: Any) -> None:
    """The model's rollout tags go with its ModelDeployment (its objects are garbage-collected)."""
    registry = Registry(get_settings().mlflow_tracking_uri)
    deployment = f"{meta['namespace']}/{meta['name']}"
    try:
        if spec["model"] not in registry.model_names():
            logger.info("%s is not registered: no rollout tags to clear", spec["model"])
            return
        ours = MlflowRegistry(registry, deployment)
        if ours.claim(spec["model"]) == deployment:  # another's rollout is not ours to clear
            clear_rollout(registry, spec["model"])
            ours.release(spec["model"])
    except Exception as exc:
        raise kopf.TemporaryError(f"registry unreachable, rollout tags kept: {exc}") from exc
    logger.info("cleared the rollout tags of %s", spec["model"])


def _write_status(
    patch: kopf.Patch, body: kopf.Body, status: Status, available: tuple[int, int] = (0, 0)
) -> None:
    """Patch the fields that changed, nothing when none did (a steady rollout is read every tick;
    a write per tick would be a no-op PATCH per ModelDeployment per tick)."""
    before = body.get("status") or {}
    written = to_status(status)
    written["observedGeneration"] = body["metadata"].get("generation")
    written["conditions"] = conditions(status, available, previous=before)
    written["availableReplicas"] = available[0]
    for key, value in written.items():
        if _as_stored(before.get(key)) != _as_stored(value):
            patch.status[key] = value


def _as_stored(value: Any) -> Any:
    """``value`` as the API server keeps it after a JSON merge patch: a null member is no member."""
    if isinstance(value, dict):
        return {k: _as_stored(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_as_stored(v) for v in value]
    return value


def conditions(
    status: Status, available: tuple[int, int], previous: dict[str, Any]
) -> list[dict[str, Any]]:
    """Available, Progressing and Promoted, as ``kubectl wait --for=condition=...`` reads them."""
    ready, wanted = available
    in_flight = status.phase in (PROGRESSING, PAUSED)
    promoted = not in_flight and status.last_outcome == "promoted"
    if promoted:
        promoted_reason = "ChallengerPromoted"
    elif in_flight:
        promoted_reason = "RolloutInProgress"
    else:
        promoted_reason = f"Last{(status.last_outcome or 'none').title()}"
    progressing = status.phase == PROGRESSING
    found = [
        (
            "Available",
            ready > 0 and ready >= min(wanted, 1),
            "ReplicasAvailable" if ready else "NoReplicasAvailable",
            f"{ready} of {wanted} serving pods available",
        ),
        (
            "Progressing",
            progressing,
            "RolloutInProgress" if progressing else f"Rollout{status.phase}",
            status.message,
        ),
        (
            "Promoted",
            promoted,
            promoted_reason,
            status.message if status.phase in (HEALTHY, DEGRADED) else "",
        ),
    ]
    return set_conditions(
        previous.get("conditions"),
        ((kind, value, reason.replace("-", ""), message) for kind, value, reason, message in found),
    )
