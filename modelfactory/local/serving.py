"""Starting and stopping the serving process of a registered model on this machine.

The CLI (serve, up, demo), the integration tests and the benchmarks all start
serving the same way as the serving image does (``python -m modelfactory_serving``,
which runs ``bentoml serve``), with the same environment variables the Helm chart
sets in a Deployment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from modelfactory.errors import ModelFactoryError
from modelfactory.inference.protocol.port_claims import REFUSED

# The serving adapter's entry point, run as a module: the core never imports it.
SERVING_MODULE = "modelfactory_serving"


class ServingError(ModelFactoryError):
    pass


@dataclass
class ServingProcess:
    model_name: str
    tracking_uri: str
    port: int = 3000
    host: str = "127.0.0.1"
    workers: int = 2
    alias: str = "champion"
    log_file: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    # Which use case serves the model; by default the one the registry records for it.
    use_case: str | None = None
    # 0: a free one, picked when the ServingProcess is made. Each port serves one service: a
    # second service on a port refuses to start (modelfactory.inference.protocol.port_claims).
    metrics_port: int = 0
    grpc_port: int = 0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        """Where its Prometheus ``/metrics`` are (a port of their own)."""
        return f"http://{self.host}:{self.metrics_port}"

    @property
    def grpc_target(self) -> str:
        """Where its v2 gRPC service answers (``host:port``, as gRPC clients take it)."""
        return f"{self.host}:{self.grpc_port}"

    def environment(self) -> dict[str, str]:
        from modelfactory.config import get_settings

        home = Path(self.extra_env.get("MODELFACTORY_HOME") or get_settings().home)
        return {
            **os.environ,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MODELFACTORY_MODEL_NAME": self.model_name,
            "MODELFACTORY_MODEL_ALIAS": self.alias,
            "MODELFACTORY_WORKERS": str(self.workers),
            "MODELFACTORY_HTTP_HOST": self.host,
            "MODELFACTORY_HTTP_PORT": str(self.port),
            "MODELFACTORY_METRICS_PORT": str(self.metrics_port),
            "MODELFACTORY_GRPC_PORT": str(self.grpc_port),
            **({"MODELFACTORY_USE_CASE": self.use_case} if self.use_case else {}),
            # BentoML keeps its workers' Prometheus files in $BENTOML_HOME and empties that
            # directory when a server starts: services sharing it would lose each other's /metrics.
            "BENTOML_HOME": str(home / "bentoml" / f"{self.model_name}-{self.port}"),
            **self.extra_env,
        }

    def command(self) -> list[str]:
        return [sys.executable, "-m", SERVING_MODULE]

    def resolve_use_case(self) -> ServingProcess:
        """Take the use case from the registry's record of the model, when it has one."""
        if self.use_case is None:
            from modelfactory.registry import Registry

            try:
                self.use_case = Registry(self.tracking_uri).use_case_of(self.model_name)
            except Exception:  # unreachable or unknown: the service decides by the model's name
                pass
        return self

    def __post_init__(self) -> None:
        from modelfactory.local.ports import free_port

        self.metrics_port = self.metrics_port or free_port()
        self.grpc_port = self.grpc_port or free_port()

    def start(self, timeout: float = 120.0) -> ServingProcess:
        """Start serving and wait until ``/readyz`` says the model is loaded."""
        self.resolve_use_case()
        output = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command(),
            env=self.environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServingError(
                    f"bentoml serve exited with code {self.process.returncode}"
                    + (f"; see {self.log_file}" if self.log_file else "")
                    + self._refusal()
                )
            if self.is_ready():
                return self
            time.sleep(0.5)
        self.stop()
        raise ServingError(f"{self.model_name} was not ready at {self.url} within {timeout:.0f}s")

    def _refusal(self) -> str:
        """The line the serving entry point stops with (a port taken, a setting unread)."""
        if self.log_file is None or not self.log_file.exists():
            return ""
        tail = self.log_file.read_text(errors="replace").splitlines()[-20:]
        said = [line for line in tail if line.startswith(REFUSED)]
        return f": {said[-1].removeprefix(REFUSED)}" if said else ""

    def is_ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait(self) -> int:
        return self.process.wait() if self.process else 0

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> ServingProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
