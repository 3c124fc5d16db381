"""The MLflow model registry as modelfactory uses it: versions, aliases, decisions, summaries.

Conventions every use case follows:
- a new version gets the alias ``challenger``; the promotion gate may move
  ``champion`` to it, and the decision and its reason are tags on the version;
- the training run of a version holds its metrics (``holdout_*`` for the model,
  ``baseline_holdout_*`` for the baseline on the same holdout), its training
  data under the artifact path ``reference_data/`` (drift detection compares
  against it, and the gate leaves those rows out when it judges a later version) and its
  holdout under ``holdout_data/`` (the rows and labels it was accepted on, on which the gate
  scores a later version; the forecaster's carries the forecast it was scored on, ``yhat``);
- the gate's evidence is on the version and its run: ``promotion.*`` tags (the decision, its
  reason, the rows and scores of each comparison) and ``gate_*`` metrics.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException, RestException

from modelfactory.errors import RegistryError
from modelfactory.promotion import PromotionDecision

CHAMPION = "champion"  # the version that answers
CHALLENGER = "challenger"  # the newest version, eligible for a rollout
REFERENCE_DATA_PATH = "reference_data"  # the rows a version trained on
HOLDOUT_DATA_PATH = "holdout_data"  # the rows (and labels) a version was evaluated on
USE_CASE_TAG = "modelfactory.use_case"  # on the registered model: which use case serves it


# A controller must see an unreachable registry in seconds, then hold and say why; MLflow's
# client retries 7 times with exponential backoff by default (minutes of a blocked reconcile).
FAIL_FAST = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


def fail_fast() -> None:
    """Make this process's MLflow calls give up quickly (unless the environment says otherwise)."""
    for key, value in FAIL_FAST.items():
        os.environ.setdefault(key, value)


def resolve_tracking_uri(explicit: str | None = None) -> str:
    """An explicit URI, else MLFLOW_TRACKING_URI, else the embedded server's address."""
    if explicit:
        return explicit
    from modelfactory.config import get_settings

    return get_settings().mlflow_tracking_uri


@dataclass
class VersionSummary:
    name: str
    version: str
    aliases: list[str]
    run_id: str | None
    created: int
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class Registry:
    """A thin, typed face over MlflowClient for the registry operations the platform needs."""

    def __init__(self, tracking_uri: str | None = None):
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def register(
        self,
        name: str,
        model_uri: str,
        run_id: str,
        use_case: str,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        challenger: bool = True,
    ) -> ModelVersion:
        """Create ``name`` if new (tagged with its use case), add a version from ``model_uri``, and
        (``challenger``) mark it the challenger."""
        try:
            self.client.get_registered_model(name)
        except MlflowException:
            self.client.create_registered_model(name)
        self.client.set_registered_model_tag(name, USE_CASE_TAG, use_case)
        version = self.client.create_model_version(
            name,
            source=model_uri,
            run_id=run_id,
            tags=tags,
            description=description,
            model_id=_model_id(model_uri),
        )
        if challenger:
            self.client.set_registered_model_alias(name, CHALLENGER, version.version)
        return version

    def version_by_alias(self, name: str, alias: str) -> ModelVersion | None:
        try:
            return self.client.get_model_version_by_alias(name, alias)
        except RestException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise
        except MlflowException as exc:
            if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
                return None
            # MLflow's auth app refuses (403) to say whether an absent model has an alias.
            if exc.error_code == "PERMISSION_DENIED" and not self.exists(name):
                return None
            raise

    def exists(self, name: str) -> bool:
        """Whether ``name`` is a registered model (that this client may read)."""
        try:
            self.client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return False
            raise
        return True

    def use_case_of(self, name: str) -> str | None:
        """The use case that registered ``name`` (None for a model registered otherwise)."""
        return dict(self.client.get_registered_model(name).tags or {}).get(USE_CASE_TAG)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        self.client.delete_registered_model_alias(name, alias)

    def record_decision(
        self, name: str, version: str, decision: PromotionDecision, make_champion: bool
    ) -> None:
        """Store the gate's verdict on the version; ``make_champion`` moves the alias to it."""
        for key, value in decision.as_tags().items():
            self.client.set_model_version_tag(name, version, key, value)
        if make_champion:
            self.set_alias(name, CHAMPION, version)

    def run_metrics(self, run_id: str | None) -> dict[str, float]:
        if not run_id:
            return {}
        return dict(self.client.get_run(run_id).data.metrics)

    def versions(self, name: str) -> Iterator[VersionSummary]:
        aliases_by_version: dict[str, list[str]] = {}
        for alias, version in self.client.get_registered_model(name).aliases.items():
            aliases_by_version.setdefault(str(version), []).append(alias)
        for mv in self.client.search_model_versions(
            f"name='{name}'", order_by=["version_number DESC"]
        ):
            yield VersionSummary(
                name=name,
                version=str(mv.version),
                aliases=sorted(aliases_by_version.get(str(mv.version), [])),
                run_id=mv.run_id,
                created=mv.creation_timestamp,
                metrics=self.run_metrics(mv.run_id),
                tags=dict(mv.tags),
            )

    def model_names(self) -> list[str]:
        return sorted(m.name for m in self.client.search_registered_models())


def tracking_server_auth(url: str, tracking_uri: str = "") -> tuple[str, str] | None:
    """The MLflow account (``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``) to send with a plain HTTP
    request for ``url`` (an artifact URL of a run), when ``url`` is on the tracking server
    (``tracking_uri``, else ``MLFLOW_TRACKING_URI``) and an account is set; never for another
    host."""
    from urllib.parse import urlsplit

    username = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    tracking = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not (username and password and tracking.startswith(("http://", "https://"))):
        return None
    target, server = urlsplit(url), urlsplit(tracking)
    if (target.scheme, target.netloc) != (server.scheme, server.netloc):
        return None
    return username, password


def _model_id(model_uri: str) -> str | None:
    """The logged-model id in an MLflow 3 ``models:/m-<id>`` URI, if that is what we got."""
    prefix = "models:/"
    if model_uri.startswith(prefix) and model_uri[len(prefix) :].startswith("m-"):
        return model_uri[len(prefix) :].split("/")[0]
    return None


def ensure_reachable(tracking_uri: str | None = None) -> str:
    """Fail early, with an actionable message, when the tracking server does not answer."""
    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        import httpx

        try:
            httpx.get(f"{uri.rstrip('/')}/health", timeout=5).raise_for_status()
        except httpx.HTTPError as exc:
            raise RegistryError(
                f"MLflow tracking server at {uri} does not answer ({exc}). "
                "Start the embedded one with "
                "`modelfactory up`, or point MLFLOW_TRACKING_URI at a running server."
            ) from exc
    os.environ.setdefault("MLFLOW_TRACKING_URI", uri)
    return uri
