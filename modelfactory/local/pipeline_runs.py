"""Running a pipeline on one machine with the kfp local runner, with progress and readable failures.

What runs is the compiled pipeline spec under ``pipelines/`` (:func:`compiled_pipeline`),
the very file a user uploads to the KFP UI: one machine and the cluster run the same
graph, and the core needs none of the pipeline code to run it (ADR 0005,
docs/adr/0005-local-runs-run-the-compiled-pipeline.md).

kfp prints every task's full executor input and output; we send that to a log
file under the run's folder, and show the user one line per step instead. When a
step fails we dig the user-facing error (a ``modelfactory.errors`` exception,
e.g. which column and rows failed validation) out of that log, so the user reads
the reason, not a wall of subprocess output.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelfactory.errors import ModelFactoryError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK_START = re.compile(r"Executing task '([^']+)'")
_TASK_END = re.compile(r"Task '([^']+)' finished with status (\w+)")
# Any exception class defined in modelfactory is one whose message was written for users.
_USER_ERROR = re.compile(r"modelfactory(?:\.\w+)+\.(\w*Error): (.*)")


class PipelineFailed(ModelFactoryError):
    def __init__(self, pipeline: str, task: str | None, reason: str, log_path: Path):
        self.task, self.reason, self.log_path = task, reason, log_path
        where = f" at step '{task}'" if task else ""
        super().__init__(f"pipeline {pipeline} failed{where}: {reason}\n(full log: {log_path})")


@dataclass
class StepEvent:
    task: str
    status: str  # "running", "SUCCESS", "FAILURE"
    seconds: float = 0.0


class _ProgressLog(io.TextIOBase):
    """A text stream that keeps everything kfp prints and reports step starts and ends."""

    def __init__(self, path: Path, on_event: Callable[[StepEvent], None]):
        self.file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.on_event = on_event
        self.buffer = ""
        # A ParallelFor runs one task name several times at once: their starts queue per name.
        self.started: dict[str, list[float]] = {}
        self.failed_task: str | None = None
        self.lines: list[str] = []
        # ParallelFor iterations run in threads, and all of them print here.
        self.lock = threading.Lock()

    def write(self, text: str) -> int:
        with self.lock:
            self.file.write(text)
            self.buffer += text
            *complete, self.buffer = self.buffer.split("\n")
            for line in complete:
                self._scan(_ANSI.sub("", line))
        return len(text)

    def _scan(self, line: str) -> None:
        self.lines.append(line)
        if match := _TASK_START.search(line):
            self.started.setdefault(match[1], []).append(time.monotonic())
            self.on_event(StepEvent(match[1], "running"))
        elif match := _TASK_END.search(line):
            starts = self.started.get(match[1]) or [time.monotonic()]
            seconds = time.monotonic() - starts.pop(0)
            if match[2] != "SUCCESS":
                self.failed_task = match[1]
            self.on_event(StepEvent(match[1], match[2], seconds))

    def user_error(self) -> str | None:
        """The last modelfactory error raised in a step, with its indented detail lines."""
        for i in range(len(self.lines) - 1, -1, -1):
            if match := _USER_ERROR.search(self.lines[i]):
                detail = [match[2]]
                for following in self.lines[i + 1 :]:
                    stripped = following.strip()
                    if not stripped.startswith("- "):
                        break
                    detail.append("  " + stripped)
                return "\n".join(detail)
        return None

    def close(self) -> None:
        self.file.close()
        super().close()


def compiled_pipeline(use_case: str, path: Path | None = None):
    """The compiled pipeline of ``use_case`` (``pipelines/<use_case>.yaml``) as a runnable
    component.

    Every component runs in ``MODELFACTORY_COMPONENT_IMAGE`` under a DockerRunner (the
    SubprocessRunner runs them in this Python environment whatever the image).
    """
    from kfp import components

    from modelfactory.config import get_settings
    from modelfactory.pipeline_spec import compiled_pipeline_file

    text = Path(path or compiled_pipeline_file(use_case)).read_text()
    pipeline = components.load_component_from_text(text)
    image = get_settings().component_image
    for executor in pipeline.component_spec.implementation.graph.deployment_spec[
        "executors"
    ].values():
        executor["container"]["image"] = image
    return pipeline


def run_locally(
    pipeline_func: Callable,
    arguments: dict,
    pipeline_root: Path,
    on_event: Callable[[StepEvent], None] = lambda event: None,
    runner=None,
) -> dict:
    """Run ``pipeline_func`` locally and return its JSON output.

    The default runner is the SubprocessRunner in this Python environment; pass
    ``kfp.local.DockerRunner(...)`` to run every step in the component image.
    """
    import kfp.local

    pipeline_root.mkdir(parents=True, exist_ok=True)
    kfp.local.init(
        runner=runner or kfp.local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
    )
    name = getattr(pipeline_func, "name", pipeline_func.__class__.__name__)
    log_path = pipeline_root / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    stream = _ProgressLog(log_path, on_event)
    # kfp swaps the root logger's handlers and builtins.print per task; its ParallelFor runs
    # tasks in threads whose swaps interleave and can leave a handler writing to this run's
    # stream after the run. Whatever kfp leaves, the process gets its own back.
    root = logging.getLogger()
    saved = root.handlers[:], root.level, builtins.print
    try:
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            task = pipeline_func(**arguments)
    except RuntimeError as exc:
        raise PipelineFailed(
            name, stream.failed_task, stream.user_error() or str(exc), log_path
        ) from None
    finally:
        root.handlers[:], builtins.print = saved[0], saved[2]
        root.setLevel(saved[1])
        stream.close()
    output = task.output
    return json.loads(output) if isinstance(output, str) else {"output": output}
