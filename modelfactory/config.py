"""One configuration model for every part of modelfactory.

Values come from (highest first) environment variables, an optional YAML/JSON
file named by ``MODELFACTORY_CONFIG``, and the defaults below. The environment
variable names are the same on one machine and in the Helm chart, so a value
means the same thing wherever it is set. Groups of settings that only one part
reads are sub-models (``serving``, ``predictions``, ``forecast_cache``, ``monitoring``);
in the file they are nested mappings, in the environment each field keeps its flat name
(``MODELFACTORY_MAX_RECORDS``, ``MODELFACTORY_PREDICTION_STORE_URL``,
``MODELFACTORY_FORECAST_CACHE_MB``, ``MODELFACTORY_MONITORING_MAX_ROWS``).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from modelfactory.errors import ModelFactoryError

ENV_PREFIX = "MODELFACTORY_"


class ConfigurationError(ModelFactoryError):
    """A setting that cannot be read: names the variable (or file key) and what was wrong."""


class _Group(BaseSettings):
    """Environment variables win over values given in code or read from the config file."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_settings, init_settings


class ServingSettings(_Group):
    """What a serving process serves and how; the names the chart sets on a serving Deployment."""

    model_name: str = "bank-marketing"
    model_alias: str = "champion"
    use_case: str | None = Field(
        default=None,
        description="Which use case's served model this process runs; by default the use case "
        "whose registered model is `model_name`, else classification.",
    )
    http_host: str = "127.0.0.1"
    http_port: int = 3000
    grpc_port: int = 8001
    grpc_enabled: bool = True
    metrics_port: int = Field(
        default=8002, description="Prometheus /metrics (the operator reads it); 0: off."
    )
    workers: int = 2
    max_request_bytes: int = Field(
        default=1 << 20, description="Larger bodies get 413 / RESOURCE_EXHAUSTED."
    )
    max_records: int = Field(default=1000, description="Rows per request.")
    auth_token: str | None = Field(
        default=None, description='When set, HTTP and gRPC need "Bearer <token>".'
    )
    rollout_poll_seconds: float = 5.0
    access_log: bool = Field(default=False, description="BentoML's per-request INFO line.")


class PredictionStoreSettings(_Group):
    """The prediction log serving writes and monitoring reads."""

    model_config = SettingsConfigDict(env_prefix=f"{ENV_PREFIX}PREDICTION_", extra="ignore")

    log: bool = Field(default=True, description="Write every prediction to the store.")
    store_url: str | None = Field(
        default=None, description="SQLAlchemy URL; sqlite under `home` when unset."
    )
    queue_size: int = Field(
        default=10_000, description="Rows a worker holds in memory; beyond it they are dropped."
    )
    spool_dir: Path | None = Field(
        default=None,
        description="Where each serving worker keeps the rows on their way to the store (its "
        "spool) while the store cannot take them; `prediction-spool` under `home` when unset.",
    )
    spool_max_mb: int = Field(
        default=256,
        ge=0,
        description="The bound of each worker's spool, in MiB (about 500 bytes a row); past it "
        "rows are dropped and counted. 0: no spool, rows the store refuses are dropped.",
    )
    spool_fsync: bool = Field(
        default=False,
        description="fsync the spool after every batch: rows also survive the machine losing "
        "power (worth it on a persistent volume, not on an emptyDir).",
    )


class ForecastCacheSettings(_Group):
    """Per served forecast version and worker: loaded store models and cached forecasts."""

    model_config = SettingsConfigDict(env_prefix=f"{ENV_PREFIX}FORECAST_CACHE_", extra="ignore")

    models: int = 32
    mb: int = 64


class OperatorSettings(_Group):
    """The rollout operator (``python -m modelfactory.operator``)."""

    model_config = SettingsConfigDict(env_prefix=f"{ENV_PREFIX}OPERATOR_", extra="ignore")

    namespace: str = Field(default="", description="Namespace to watch; empty: all namespaces.")
    tick_seconds: float = Field(default=10.0, description="How often each rollout is reconciled.")
    workers: int = Field(default=20, description="Reconciles run at once (threads).")
    metrics_port: int = Field(default=8080, description="Its Prometheus metrics; 0: off.")
    liveness_endpoint: str = "http://0.0.0.0:8081/healthz"
    monitor_image: str = Field(
        default="modelfactory-components:0.1.0",
        description="Image of a DriftMonitor's checks (the components image).",
    )
    serving_template: str = Field(
        default="", description="A pod template file for ModelDeployments without one."
    )
    check_template: str = Field(
        default="",
        description="The pod template of DriftMonitor checks (the serving pod with the drift "
        "checks' MLflow account); the serving template when empty.",
    )
    replay_template: str = Field(
        default="",
        description="The pod template of rollout replay Jobs (the serving pod with the replays' "
        "MLflow account); the serving template when empty.",
    )


class MonitoringSettings(_Group):
    """Drift and performance checks over the prediction log, and the retraining they start."""

    model_config = SettingsConfigDict(env_prefix=f"{ENV_PREFIX}MONITORING_", extra="ignore")

    max_rows: int = Field(
        default=200_000,
        ge=1000,
        description="Rows of a window (and of the reference) a check compares; a larger window "
        "is sampled uniformly (docs/adr/0008-drift-checks.md).",
    )
    chunk_rows: int = Field(default=20_000, ge=100, description="Rows read per database fetch.")
    kfp_host: str | None = Field(
        default=None,
        description="Kubeflow Pipelines API endpoint: when set, retraining runs are submitted "
        "there with kfp.Client; unset, they run on this machine with the kfp local runner.",
    )
    kfp_experiment: str = Field(
        default="modelfactory-retraining", description="KFP experiment of retraining runs."
    )
    kfp_mlflow_secret: str | None = Field(
        default=None,
        description="The Kubernetes Secret with the pipelines' MLflow account that retraining "
        "runs read (their mlflow_credentials_secret); unset: the compiled pipeline's default.",
    )
    max_feedback_items: int = Field(
        default=10_000, ge=1, description="Ground-truth values per POST /feedback request."
    )


def _default_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "modelfactory"


class Settings(_Group):
    """Every knob of the platform; each field is ``MODELFACTORY_<NAME>`` in the environment."""

    home: Path = Field(
        default_factory=_default_home,
        description="Data directory for the embedded defaults (MLflow db and artifacts, "
        "pipeline outputs, prediction store, logs).",
    )
    # Registry. MLFLOW_TRACKING_URI (MLflow's own variable) wins when set; otherwise the
    # CLI starts, or reuses, an embedded `mlflow server` on this host and port.
    mlflow_host: str = "127.0.0.1"
    mlflow_port: int = 5000

    # Training and promotion.
    promotion_margin: float = Field(
        default=0.0,
        description="How much better (absolute, on the gate metric) a challenger must score "
        "than the champion on the same holdout to be promoted.",
    )
    seed: int = 42

    # Pipelines: the image every KFP component runs in (cluster or DockerRunner).
    component_image: str = "modelfactory-components:0.1.0"

    serving: ServingSettings = Field(default_factory=ServingSettings)
    predictions: PredictionStoreSettings = Field(default_factory=PredictionStoreSettings)
    forecast_cache: ForecastCacheSettings = Field(default_factory=ForecastCacheSettings)
    operator: OperatorSettings = Field(default_factory=OperatorSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)

    @property
    def tracking_uri_from_env(self) -> str | None:
        return os.environ.get("MLFLOW_TRACKING_URI") or None

    @property
    def mlflow_tracking_uri(self) -> str:
        """MLFLOW_TRACKING_URI when set, else the embedded server's address: the one lookup."""
        return self.tracking_uri_from_env or self.embedded_mlflow_uri

    @property
    def embedded_mlflow_uri(self) -> str:
        return f"http://{self.mlflow_host}:{self.mlflow_port}"

    @property
    def prediction_store_url(self) -> str:
        return self.predictions.store_url or f"sqlite:///{self.home / 'predictions.db'}"

    @property
    def prediction_spool_dir(self) -> Path | None:
        """Where serving workers spool prediction rows; None when the spool is off."""
        if not self.predictions.spool_max_mb:
            return None
        return self.predictions.spool_dir or self.home / "prediction-spool"


GROUPS: dict[str, type[_Group]] = {
    "serving": ServingSettings,
    "predictions": PredictionStoreSettings,
    "forecast_cache": ForecastCacheSettings,
    "operator": OperatorSettings,
    "monitoring": MonitoringSettings,
}


def environment_names() -> set[str]:
    """Every ``MODELFACTORY_*`` variable the settings read (the chart may set no other)."""
    names = set()
    groups: list[type[_Group]] = [Settings, *GROUPS.values()]
    for group in groups:
        prefix = group.model_config.get("env_prefix", ENV_PREFIX)
        names |= {
            f"{prefix}{field}".upper()
            for field in group.model_fields
            if field not in GROUPS or group is not Settings
        }
    return names


def _file_values() -> dict[str, Any]:
    path = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if not path:
        return {}
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigurationError(f"{ENV_PREFIX}CONFIG={path}: cannot be read ({exc})") from None
    if path.endswith((".yaml", ".yml")):
        import yaml

        values = yaml.safe_load(text) or {}
    else:
        values = json.loads(text)
    if not isinstance(values, dict):
        raise ConfigurationError(f"{path}: expected a mapping of settings at the top level")
    return values


def _describe(error: ValidationError, group: type[_Group], where: str) -> str:
    prefix = group.model_config.get("env_prefix", ENV_PREFIX)
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        problems.append(f"{prefix}{field.upper()} ({where}.{field}): {item['msg']}")
    return "invalid settings: " + "; ".join(problems)


def load_settings() -> Settings:
    """Settings from the environment over the config file over the defaults (not cached)."""
    values = _file_values()
    groups: dict[str, Any] = {}
    for name, group in GROUPS.items():
        try:
            groups[name] = group(**(values.pop(name, None) or {}))
        except ValidationError as exc:
            raise ConfigurationError(_describe(exc, group, name)) from None
    try:
        return Settings(**values, **groups)
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc, Settings, "settings")) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (environment over config file over defaults)."""
    return load_settings()
