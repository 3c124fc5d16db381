"""Stand-ins for what the operator's handlers talk to: the MLflow registry (an in-memory
MlflowClient behind the real :class:`~modelfactory.registry.Registry`), the Kubernetes API
calls of :mod:`modelfactory.operator.kube`, and kopf's events."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from mlflow.exceptions import MlflowException

from modelfactory.registry import Registry


class RegistryDown(ConnectionError):
    pass


class FakeMlflowClient:
    """The registered models, aliases and tags an MlflowClient would read and write; every call
    fails with :class:`RegistryDown` while ``down``."""

    def __init__(self) -> None:
        self.models: dict[str, dict[str, Any]] = {}
        self.version_tags: dict[tuple[str, str], dict[str, str]] = {}
        self.down = False

    def register(self, name: str, *versions: str, **aliases: str) -> None:
        self.models[name] = {"aliases": dict(aliases), "tags": {}}
        for version in versions:
            self.version_tags[(name, version)] = {}

    def _model(self, name: str) -> dict[str, Any]:
        if self.down:
            raise RegistryDown("Connection refused: http://mlflow:5000")
        if name not in self.models:
            raise MlflowException(f"Registered Model with name={name} not found")
        return self.models[name]

    def get_registered_model(self, name: str):
        model = self._model(name)
        return SimpleNamespace(name=name, aliases=dict(model["aliases"]), tags=dict(model["tags"]))

    def search_registered_models(self):
        if self.down:
            raise RegistryDown("Connection refused: http://mlflow:5000")
        return [SimpleNamespace(name=name) for name in self.models]

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        self._model(name)["tags"][key] = value

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self._model(name)["tags"].pop(key, None)

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self._model(name)["aliases"][alias] = str(version)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self._model(name)["aliases"].pop(alias, None)

    def get_model_version_by_alias(self, name: str, alias: str):
        version = self._model(name)["aliases"].get(alias)
        if version is None:
            raise MlflowException(f"Registered model alias {alias} not found.")
        return SimpleNamespace(name=name, version=version)

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self._model(name)
        self.version_tags[(name, str(version))][key] = value

    def get_model_version(self, name: str, version: str):
        self._model(name)
        tags = self.version_tags[(name, str(version))]
        return SimpleNamespace(name=name, version=str(version), tags=dict(tags))


def fake_registry(client: FakeMlflowClient) -> Registry:
    registry = Registry("http://mlflow.invalid:5000")  # makes no connection
    registry.client = client  # type: ignore[assignment]
    return registry


@dataclass
class FakeKube:
    """What the handlers asked of the Kubernetes API, and what it answers."""

    applied: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[tuple[str, str, str]] = field(default_factory=list)  # namespace, kind, name
    available: tuple[int, int] = (0, 0)  # the serving Deployment's ready and wanted replicas
    endpoints: dict[str, str] = field(default_factory=dict)  # ready serving pods: name -> URL

    def apply(self, objects) -> None:
        self.applied.extend(objects)

    def delete_if_present(self, namespace: str, kind_path: str, name: str) -> None:
        self.deleted.append((namespace, kind_path, name))

    def deployment_available(self, namespace: str, name: str) -> tuple[int, int]:
        return self.available

    def serving_endpoints(self, namespace: str, service: str) -> dict[str, str]:
        return dict(self.endpoints)

    def kinds(self) -> list[str]:
        return [obj["kind"] for obj in self.applied]

    def one(self, kind: str) -> dict[str, Any]:
        (found,) = [obj for obj in self.applied if obj["kind"] == kind]
        return found


@dataclass
class Events:
    """The Kubernetes events the handlers posted: (type, reason, message)."""

    posted: list[tuple[str, str, str]] = field(default_factory=list)

    def __call__(self, body, *, type: str, reason: str, message: str = "", **_: Any) -> None:
        self.posted.append((type, reason, message))

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.posted]
