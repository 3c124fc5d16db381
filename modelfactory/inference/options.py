"""Serving knobs beyond the shared Settings, read from the same ``MODELFACTORY_*`` environment.

Kept here (not in :mod:`modelfactory.config`) because only serving processes
read them; the names are what the Helm chart sets on a serving Deployment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ServingOptions:
    max_request_bytes: int = (
        1 << 20
    )  # MODELFACTORY_MAX_REQUEST_BYTES: larger bodies get 413 / RESOURCE_EXHAUSTED
    auth_token: str | None = (
        None  # MODELFACTORY_AUTH_TOKEN: when set, HTTP and gRPC need "Bearer <token>"
    )
    rollout_poll_seconds: float = 5.0  # MODELFACTORY_ROLLOUT_POLL_SECONDS
    prediction_log: bool = True  # MODELFACTORY_PREDICTION_LOG: write every prediction to the store
    prediction_queue_size: int = (
        10_000  # MODELFACTORY_PREDICTION_QUEUE_SIZE: rows beyond it are dropped
    )
    max_records: int = 1000  # MODELFACTORY_MAX_RECORDS: rows per request
    grpc_enabled: bool = True  # MODELFACTORY_GRPC_ENABLED
    access_log: bool = False  # MODELFACTORY_ACCESS_LOG: BentoML's per-request INFO line

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ServingOptions:
        def get(name: str, default, cast):
            raw = environ.get(f"MODELFACTORY_{name}")
            if raw is None or raw == "":
                return default
            try:
                return cast(raw)
            except ValueError as exc:
                raise ValueError(f"MODELFACTORY_{name}={raw!r}: {exc}") from None

        return cls(
            max_request_bytes=get("MAX_REQUEST_BYTES", cls.max_request_bytes, int),
            auth_token=environ.get("MODELFACTORY_AUTH_TOKEN") or None,
            rollout_poll_seconds=get("ROLLOUT_POLL_SECONDS", cls.rollout_poll_seconds, float),
            prediction_log=get("PREDICTION_LOG", cls.prediction_log, _flag),
            prediction_queue_size=get("PREDICTION_QUEUE_SIZE", cls.prediction_queue_size, int),
            max_records=get("MAX_RECORDS", cls.max_records, int),
            grpc_enabled=get("GRPC_ENABLED", cls.grpc_enabled, _flag),
            access_log=get("ACCESS_LOG", cls.access_log, _flag),
        )


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")
