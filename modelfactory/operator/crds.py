"""The names of modelfactory's custom resources, written once: API group and version, each kind
and plural, and the annotation and finalizer the operator and ``kubectl modelfactory`` share.

The CRDs themselves are the chart's (``charts/modelfactory/crds/``); the operator's
tests check these names against them.
"""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "modelfactory.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass(frozen=True)
class CustomResource:
    """One kind of ours, as the API server names it."""

    kind: str  # in a manifest's ``kind``, and an owner reference's
    plural: str  # in API paths, kopf's handler decorators and RBAC rules
    group: str = GROUP
    version: str = VERSION

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def crd_name(self) -> str:
        """The CustomResourceDefinition's name (``kubectl get crd NAME``)."""
        return f"{self.plural}.{self.group}"


MODEL_DEPLOYMENT = CustomResource("ModelDeployment", "modeldeployments")
DRIFT_MONITOR = CustomResource("DriftMonitor", "driftmonitors")

# A user's promote, promote-full, abort or retry of a rollout (``kubectl annotate mdep NAME
# modelfactory.io/action=promote``); the operator consumes it on its next reconcile.
ACTION_ANNOTATION = f"{GROUP}/action"
# Holds a deleted ModelDeployment until its model's rollout tags are cleared from the registry.
FINALIZER = f"{GROUP}/rollout-cleanup"
