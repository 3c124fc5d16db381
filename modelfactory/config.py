"""One configuration model for every part of modelfactory.

Values come from (highest first) environment variables, an optional YAML/JSON
file named by ``MODELFACTORY_CONFIG``, and the defaults below. The environment
variable names are the same on one machine and in the Helm charts, so a value
means the same thing wherever it is set.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "MODELFACTORY_"


def _default_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "modelfactory"


class Settings(BaseSettings):
    """Every knob of the platform; each field is ``MODELFACTORY_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    home: Path = Field(
        default_factory=_default_home,
        description="Data directory for the embedded defaults (MLflow db and artifacts, "
        "pipeline outputs, prediction store, logs).",
    )
    # Registry. MLFLOW_TRACKING_URI (MLflow's own variable) wins when set; otherwise the
    # CLI starts, or reuses, an embedded `mlflow server` on this host and port.
    mlflow_host: str = "127.0.0.1"
    mlflow_port: int = 5000

    # Serving: the same names in `bentoml serve` processes and in the chart's Deployments.
    model_name: str = "bank-marketing"
    model_alias: str = "champion"
    http_host: str = "127.0.0.1"
    http_port: int = 3000
    grpc_port: int = 8001
    workers: int = 2
    prediction_store_url: str | None = None  # defaults to sqlite under `home`

    # Training and promotion.
    promotion_margin: float = Field(
        default=0.0,
        description="How much better (absolute, on the gate metric) a challenger must score "
        "than the champion on the same holdout to be promoted.",
    )
    seed: int = 42

    # Pipelines: the image every KFP component runs in (cluster or DockerRunner).
    component_image: str = "modelfactory-components:0.1.0"

    @property
    def mlflow_tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or self.embedded_mlflow_uri

    @property
    def embedded_mlflow_uri(self) -> str:
        return f"http://{self.mlflow_host}:{self.mlflow_port}"

    @property
    def resolved_prediction_store_url(self) -> str:
        return self.prediction_store_url or f"sqlite:///{self.home / 'predictions.db'}"


def _file_values() -> dict:
    path = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if not path:
        return {}
    text = Path(path).read_text()
    if path.endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_load(text) or {}
    return json.loads(text)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (environment over config file over defaults)."""
    file_values = _file_values()
    env_names = {k[len(ENV_PREFIX) :].lower() for k in os.environ if k.startswith(ENV_PREFIX)}
    # Environment variables win over the file: drop file values that the environment sets.
    return Settings(**{k: v for k, v in file_values.items() if k not in env_names})
