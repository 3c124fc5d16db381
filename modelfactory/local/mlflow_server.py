"""The embedded MLflow server: sqlite backend and local artifacts under the modelfactory home.

Started on demand by the CLI and reused by later commands (a pid file and the
``/health`` route tell whether ours is running). ``--serve-artifacts`` makes
clients upload and download artifacts through the server, so a component or a
serving process needs nothing but the tracking URI — as in the cluster.

The server is open, on 127.0.0.1 by default. With ``auth_config`` (an auth app ini,
:func:`modelfactory.registry_access.server.write_auth_config`, over a database the accounts
were reconciled into) it runs MLflow's basic-auth app as the chart's does (docs/adr/0016).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from modelfactory.errors import RegistryError
from modelfactory.local.ports import port_in_use

# MLflow 3 starts a job runner and five huey consumer processes unless told not to; nothing of
# modelfactory submits MLflow jobs (docs/adr/0011-embedded-mlflow-without-job-runner.md).
SERVER_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@dataclass
class EmbeddedMlflow:
    home: Path
    host: str = "127.0.0.1"
    port: int = 5000
    auth_config: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def directory(self) -> Path:
        return self.home / "mlflow"

    @property
    def pid_file(self) -> Path:
        return self.directory / "server.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "mlflow.log"

    def is_healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=2).text.strip() == "OK"
        except httpx.HTTPError:
            return False

    def start(self, timeout: float = 120.0) -> str:
        """Start the server unless one already answers at this address; return its URL."""
        if self.is_healthy():
            return self.url
        if port_in_use(self.port, self.host):
            raise RegistryError(
                f"port {self.port} on {self.host} is taken by something that is not an MLflow "
                "server; set MODELFACTORY_MLFLOW_PORT to a free port"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.directory / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.directory / "artifacts"),
            "--serve-artifacts",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            "2",
        ]
        environment = {**os.environ, **SERVER_ENVIRONMENT}
        if self.auth_config is not None:
            from modelfactory.registry_access.server import APP_NAME, server_environment

            command += ["--app-name", APP_NAME]
            # The CSRF key only has to be the same in this server's workers.
            environment.update(server_environment(self.auth_config, secrets.token_urlsafe(32)))
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                command,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RegistryError(
                    f"the MLflow server exited with code {process.returncode}; see {self.log_file}"
                )
            if self.is_healthy():
                return self.url
            time.sleep(0.5)
        self.stop()
        raise RegistryError(
            f"the MLflow server did not become healthy in {timeout:.0f}s; see {self.log_file}"
        )

    def stop(self) -> bool:
        """Stop the server this home started; True if one was running."""
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return False
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            self.pid_file.unlink(missing_ok=True)
            return False
        for _ in range(50):
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True
