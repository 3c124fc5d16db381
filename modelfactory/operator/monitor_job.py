"""``python -m modelfactory.operator.monitor_job``: one check of a DriftMonitor, as its CronJob
runs it.

The arguments come from the CronJob: the monitor's namespace and name, and its configuration
(``--config``, the spec without its scheduling fields, as JSON). The state between checks
(consecutive drifted checks, the last retrain) is the DriftMonitor's status, read at the start
and written once the check is over, so a check that fails half-way leaves it as it was. A check
that cannot run (the registry, the prediction store or KFP unreachable, a model without a
champion) writes why into the ``Checked`` condition and exits non-zero; it never guesses a
decision.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelfactory.monitoring.check import CheckSummary, run_monitor
from modelfactory.monitoring.config import MonitorConfig
from modelfactory.monitoring.policy import MonitorState
from modelfactory.monitoring.state import status_of
from modelfactory.operator.conditions import set_conditions
from modelfactory.operator.crds import DRIFT_MONITOR, GROUP, MODEL_DEPLOYMENT, VERSION
from modelfactory.operator.kube import api_client
from modelfactory.operator.monitors import DEPLOYMENT_REF, monitor_config
from modelfactory.registry import Registry
from modelfactory.status import from_status, to_status
from modelfactory.use_cases import monitored_use_case

# A check's decision as the Drifted condition reads it.
DRIFTED = {"drift_pending", "retrain", "cooldown", "alert"}


def _custom_objects() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client())


def served_model(namespace: str, deployment: str, api=None) -> str:
    """The model the ModelDeployment ``deployment`` serves now."""
    api = api or _custom_objects()
    try:
        found = api.get_namespaced_custom_object(
            GROUP, VERSION, namespace, MODEL_DEPLOYMENT.plural, deployment
        )
    except ApiException as exc:
        if exc.status == 404:
            raise LookupError(
                f"spec.modelDeployment: no ModelDeployment {deployment!r} in namespace {namespace}"
            ) from None
        raise
    return found["spec"]["model"]


class StatusStore:
    """A DriftMonitor's state in its status (the monitor's ServiceAccount may get and patch its
    own status, nothing else)."""

    def __init__(self, namespace: str, name: str, api=None):
        self.namespace, self.name = namespace, name
        self.api = api or _custom_objects()
        self._status: dict[str, Any] = {}
        self.model: str | None = None  # the model checked (a ModelDeployment's, resolved)

    def load(self) -> MonitorState:
        found = self.api.get_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, DRIFT_MONITOR.plural, self.name
        )
        self._status = found.get("status") or {}
        return from_status(MonitorState, self._status)

    def save(self, state: MonitorState, summary: CheckSummary | None = None) -> None:
        status = status_of(state, summary)
        if self.model:
            status["model"] = self.model
        if summary is not None:
            status["conditions"] = _conditions(
                self._status,
                checked=(True, _camel(summary.decision), summary.reason),
                drifted=summary.decision in DRIFTED,
            )
        self._patch(status)

    def failed(self, problem: str) -> None:
        """The check could not run: say why; the state (and the last result) stay as they were."""
        self._patch(
            {"conditions": _conditions(self._status, checked=(False, "CheckFailed", problem))}
        )

    def _patch(self, status: dict[str, Any]) -> None:
        self.api.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, DRIFT_MONITOR.plural, self.name, {"status": status}
        )


def _camel(action: str) -> str:
    return "".join(part.title() for part in action.split("_"))


def _conditions(
    previous: dict[str, Any], checked: tuple[bool, str, str], drifted: bool | None = None
) -> list[dict[str, Any]]:
    """``Checked`` (did the last check run, and what it decided) and ``Drifted`` (kept as it was
    when the check failed); the operator's ``Scheduled`` stays."""
    wanted = [("Checked", *checked)]
    if drifted is not None:
        wanted.append(
            (
                "Drifted",
                drifted,
                checked[1] if drifted else "NoDrift",
                checked[2] if drifted else "",
            )
        )
    return set_conditions(previous.get("conditions"), wanted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelfactory.operator.monitor_job")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--name", required=True, help="The DriftMonitor.")
    parser.add_argument("--config", required=True, help="Its spec without schedule, as JSON.")
    arguments = parser.parse_args(argv)
    namespace, name = arguments.namespace, arguments.name
    store = StatusStore(namespace, name)
    try:
        raw = json.loads(arguments.config)
        reference = raw.get(DEPLOYMENT_REF)
        model = served_model(namespace, reference) if reference else raw.get("model")
        config = MonitorConfig.model_validate(monitor_config(raw, model))
        store.model = config.model
        case = monitored_use_case(config.model, config.use_case, Registry())
        result, _ = run_monitor(config, store, case)
    except Exception as exc:  # whatever stopped the check is what the status must say
        problem = f"{type(exc).__name__}: {exc}"
        print(f"DriftMonitor {namespace}/{name}: the check failed: {problem}", file=sys.stderr)
        try:
            store.failed(problem)
        except Exception as unwritable:
            print(f"and its status could not be written: {unwritable}", file=sys.stderr)
        return 1
    print(json.dumps(to_status(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
