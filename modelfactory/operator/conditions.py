"""Status conditions as Kubernetes tools read them (``kubectl wait --for=condition=...``)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any


def set_conditions(
    previous: Iterable[Mapping[str, Any]] | None,
    wanted: Iterable[tuple[str, bool, str, str]],
) -> list[dict[str, Any]]:
    """``previous`` with each ``(type, status, reason, message)`` of ``wanted`` set; a
    condition's ``lastTransitionTime`` moves only when its status changes, and conditions
    ``wanted`` does not name (another writer's) stay as they were."""
    before = [dict(c) for c in previous or ()]
    by_type = {c.get("type"): c for c in before}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    written: dict[str, dict[str, Any]] = {}
    for kind, value, reason, message in wanted:
        status = "True" if value else "False"
        old = by_type.get(kind, {})
        written[kind] = {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message[:1000],
            "lastTransitionTime": (
                old.get("lastTransitionTime", now) if old.get("status") == status else now
            ),
        }
    return [*written.values(), *(c for c in before if c.get("type") not in written)]
