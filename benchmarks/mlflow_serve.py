"""`mlflow models serve` of a registered version, the named alternative every serving benchmark
measures against."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from modelfactory.local.ports import free_port


class MlflowModelServer:
    """Context manager: start `mlflow models serve --env-manager local`, wait for /ping, stop it."""

    def __init__(self, model_uri: str, tracking_uri: str, workers: int, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            model_uri,
            "--env-manager",
            "local",
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-w",
            str(workers),
        ]
        # mlflow execs `uvicorn` by name: put this interpreter's scripts first on PATH.
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        self.env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PATH": path}
        self.log = log

    def __enter__(self) -> MlflowModelServer:
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=open(self.log, "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ping", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow models serve exited; see {self.log}")
            time.sleep(1)
        self.__exit__()
        raise RuntimeError(f"mlflow models serve not up; see {self.log}")

    def __exit__(self, *exc) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
