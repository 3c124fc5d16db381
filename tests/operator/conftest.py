"""The operator's handlers called as kopf calls them, with fake objects: a kopf Body and Patch, an
in-memory registry, a recording Kubernetes API, recorded events. No API server, no MLflow.

This folder has no ``__init__.py``: as a package it would be imported as ``operator``, which is
the standard library's; its helpers are imported as ``tests.operator.*``."""

from __future__ import annotations

import copy
from typing import Any

import kopf
import pytest

from modelfactory.config import get_settings
from modelfactory.operator import handlers, kube
from modelfactory.registry import FAIL_FAST
from tests.operator.fakes import Events, FakeKube, FakeMlflowClient, fake_registry

MODEL = "bank-marketing"


@pytest.fixture
def mlflow(monkeypatch) -> FakeMlflowClient:
    """The registry the handlers reach: MODEL with versions 1 (champion) and 2."""
    for key, value in FAIL_FAST.items():  # what MlflowRegistry sets, undone after the test
        monkeypatch.setenv(key, value)
    client = FakeMlflowClient()
    client.register(MODEL, "1", "2", champion="1")
    monkeypatch.setattr(handlers, "Registry", lambda tracking_uri=None: fake_registry(client))
    return client


@pytest.fixture
def cluster(monkeypatch) -> FakeKube:
    fake = FakeKube()
    for name in ("apply", "delete_if_present", "deployment_available", "serving_endpoints"):
        monkeypatch.setattr(kube, name, getattr(fake, name))
    return fake


@pytest.fixture(autouse=True)
def events(monkeypatch) -> Events:
    """Every test's: kopf posts events only inside a running operator."""
    recorded = Events()
    monkeypatch.setattr(kopf, "event", recorded)
    return recorded


@pytest.fixture
def environment(monkeypatch):
    """Settings by environment variables, as the chart passes them (the cached settings are read
    again, and again after the test)."""

    def configure(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield configure
    get_settings.cache_clear()


def resource(kind: str, name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelfactory.io/v1alpha1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": "models",
            "uid": f"uid-{name}",
            "generation": 1,
            **metadata,
        },
        "spec": spec,
    }


def model_deployment(name: str = "bank", **spec: Any) -> dict[str, Any]:
    return resource("ModelDeployment", name, {"model": MODEL, **spec})


def drift_monitor(name: str = "bank-drift", **spec: Any) -> dict[str, Any]:
    return resource("DriftMonitor", name, {"model": MODEL, **spec})


def patched(obj: dict[str, Any], patch: kopf.Patch) -> dict[str, Any]:
    """``obj`` after a JSON merge patch (what the API server makes of kopf's patch)."""

    def merge(target: dict[str, Any], changes: dict[str, Any]) -> None:  # RFC 7386
        for key, value in changes.items():
            if value is None:
                target.pop(key, None)
            elif isinstance(value, dict):
                if not isinstance(target.get(key), dict):
                    target[key] = {}
                merge(target[key], value)
            else:
                target[key] = copy.deepcopy(value)

    after = copy.deepcopy(obj)
    merge(after, dict(patch))
    return after


def reconcile(obj: dict[str, Any]) -> tuple[dict[str, Any], kopf.Patch]:
    """One tick of the rollout timer on ``obj``: the object as the API server then holds it, and
    the patch the handler wrote."""
    body = kopf.Body(copy.deepcopy(obj))
    patch = kopf.Patch()
    handlers.reconcile_rollout(body=body, spec=body.spec, status=body.status, patch=patch)
    return patched(obj, patch), patch
