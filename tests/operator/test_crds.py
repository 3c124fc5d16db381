"""The operator and the chart agree on the custom resources: the handlers watch the kinds the
chart's CRDs define, under the names ``operator/crds.py`` holds, and mark them with the
operator's own finalizer and annotations."""

from __future__ import annotations

from pathlib import Path

import kopf
import pytest
import yaml

from modelfactory.operator import crds, handlers

CHART_CRDS = Path(__file__).parents[2] / "charts" / "modelfactory" / "crds"


def chart_crd(file: str) -> dict:
    """The chart's CRD, its template lines left out (they only add labels, annotations, and
    schema patterns)."""
    text = "\n".join(
        line if "{{" not in line else line.split(":")[0] + ": {}" if ":" in line else ""
        for line in (CHART_CRDS / file).read_text().splitlines()
    )
    return yaml.safe_load(text)


def as_kopf_resource(crd: dict) -> kopf.Resource:
    names = crd["spec"]["names"]
    (version,) = [v["name"] for v in crd["spec"]["versions"] if v["served"]]
    return kopf.Resource(
        crd["spec"]["group"],
        version,
        names["plural"],
        kind=names["kind"],
        singular=names["singular"],
        shortcuts=frozenset(names.get("shortNames", ())),
        namespaced=crd["spec"]["scope"] == "Namespaced",
        subresources=frozenset({"status"}),
    )


DEPLOYMENTS = chart_crd("modeldeployment.yaml")
MONITORS = chart_crd("driftmonitor.yaml")


@pytest.mark.parametrize(
    "crd, ours", [(DEPLOYMENTS, crds.MODEL_DEPLOYMENT), (MONITORS, crds.DRIFT_MONITOR)]
)
def test_the_names_are_the_charts(crd, ours):
    resource = as_kopf_resource(crd)
    assert crd["metadata"]["name"] == ours.crd_name
    assert (resource.group, resource.version, resource.plural, resource.kind) == (
        ours.group,
        ours.version,
        ours.plural,
        ours.kind,
    )
    assert ours.api_version == f"{resource.group}/{resource.version}" == crds.API_VERSION


def handlers_by_resource() -> dict[str, set[str]]:
    """Each chart CRD's plural -> the names of the handlers kopf would run for it."""
    registry = kopf.get_default_registry()
    found: dict[str, set[str]] = {}
    for resource in (as_kopf_resource(DEPLOYMENTS), as_kopf_resource(MONITORS)):
        for handler in [
            *registry._changing.get_all_handlers(),  # create, update, resume, delete
            *registry._spawning.get_all_handlers(),  # timers
        ]:
            if handler.selector is not None and handler.selector.check(resource):
                found.setdefault(resource.plural, set()).add(handler.fn.__name__)
    return found


def test_the_handlers_watch_the_resources_the_chart_defines():
    assert handlers_by_resource() == {
        "modeldeployments": {"apply_owned", "reconcile_rollout", "clear_rollout_tags"},
        "driftmonitors": {"apply_monitor"},
    }


def test_the_operator_marks_resources_with_its_own_finalizer_and_annotations(environment):
    environment(MODELFACTORY_OPERATOR_METRICS_PORT="0", MODELFACTORY_OPERATOR_WORKERS="7")
    settings = kopf.OperatorSettings()
    handlers.configure(settings=settings)
    # `kubectl get mdep -o yaml` shows these; the deletion waits for the rollout tags to clear.
    assert settings.persistence.finalizer == "modelfactory.io/rollout-cleanup" == crds.FINALIZER
    assert settings.persistence.progress_storage.prefix == "modelfactory.io"
    assert settings.persistence.diffbase_storage.prefix == "modelfactory.io"
    assert settings.execution.max_workers == 7
