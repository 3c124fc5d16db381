"""Where a monitor's state lives between checks: a DriftMonitor's status on a cluster
(``modelfactory.operator.monitor_job``), a JSON file under ``MODELFACTORY_HOME`` on one machine.

Both hold the same fields, written by :mod:`modelfactory.status`: the
:class:`~modelfactory.monitoring.policy.MonitorState` (consecutive drifted checks, the last
check, the last retrain) and the last check's summary as ``lastResult``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from modelfactory.errors import ModelFactoryError
from modelfactory.monitoring.policy import MonitorState
from modelfactory.status import from_status, to_status

if TYPE_CHECKING:
    from modelfactory.monitoring.check import CheckSummary


class StateStore(Protocol):
    """Keeps one monitor's state between checks; ``save`` also gets the check's summary, the
    status's ``lastResult``."""

    def load(self) -> MonitorState: ...

    def save(self, state: MonitorState, summary: CheckSummary | None = None) -> None: ...


def status_of(state: MonitorState, summary: CheckSummary | None = None) -> dict[str, Any]:
    """The status fields a monitor writes: its state, and the last check's summary."""
    status = to_status(state)
    if summary is not None:
        status["lastResult"] = to_status(summary)
    return status


class JsonStateStore:
    """A monitor's state in a JSON file (the DriftMonitor status's fields), replaced atomically:
    a crash while saving leaves the previous state, never half a file."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def for_model(cls, home: Path, model: str) -> JsonStateStore:
        return cls(Path(home) / "monitoring" / model / "state.json")

    def load(self) -> MonitorState:
        if not self.path.exists():
            return MonitorState()
        try:
            return from_status(MonitorState, json.loads(self.path.read_text()))
        except ValueError as exc:
            raise ModelFactoryError(
                f"{self.path}: the monitor's state cannot be read ({exc}); fix or delete it "
                "(a deleted state starts the consecutive count and the cooldown afresh)"
            ) from None

    def save(self, state: MonitorState, summary: CheckSummary | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".state-")
        try:
            with os.fdopen(handle, "w") as file:
                json.dump(status_of(state, summary), file, indent=2)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
