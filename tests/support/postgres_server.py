"""A PostgreSQL server of one's own, to stop and start again: the prediction store going away
and coming back, for the spool's tests and benchmarks/prediction_log.py.

Debian's server binaries, as ``postgres.py`` finds them, on 127.0.0.1 and a free port (a
stopped server refuses connections, as one in a cluster does), in a temporary directory that
:meth:`PostgresServer.remove` deletes. As root it runs as the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from modelfactory.local.ports import free_port
from tests.support.postgres import _postgres_bin


class PostgresServer:
    def __init__(self, fsync: bool = False):
        self.bin = _postgres_bin()
        self.root = Path(tempfile.mkdtemp(prefix="modelfactory-pg-"))
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = free_port()
        self.fsync = fsync
        self._run("initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres?connect_timeout=3"

    def _run(self, program: str, *args) -> None:
        result = subprocess.run(
            [*self.prefix, str(self.bin / program), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            server_log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(
                f"{program} {' '.join(map(str, args))} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}\n{server_log}"
            )

    def start(self) -> PostgresServer:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            f"-c fsync={'on' if self.fsync else 'off'}"
        )
        self._run(
            "pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "-t", "60", "start"
        )
        return self

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, as when a database fails over."""
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "60", "stop")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        if self.running:
            with contextlib.suppress(RuntimeError):
                self._run("pg_ctl", "-D", self.data, "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.remove()
