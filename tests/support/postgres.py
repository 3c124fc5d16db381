"""A throwaway PostgreSQL server for the tests that write SQL stores (staging table, prediction
log).

``postgres_url`` starts a real PostgreSQL cluster from the Debian server binaries
(``apt-get install -y postgresql``; found under /usr/lib/postgresql/*/bin) in a
temporary directory, listening only on a unix socket there, and removes it afterwards.
It FAILS, not skips, when the binaries are missing: CI installs them (.ci/run), so their
absence is a broken environment, not an optional feature. PostgreSQL refuses to run as
root, so as root the server runs as the ``postgres`` user (created by the Debian package).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from modelfactory.local.ports import free_port


def _postgres_bin() -> Path:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name.split(".")[0])
    )
    for directory in reversed(candidates):
        if (Path(directory) / "initdb").exists() and (Path(directory) / "pg_ctl").exists():
            return Path(directory)
    found = shutil.which("initdb") and shutil.which("pg_ctl")
    if found:
        return Path(shutil.which("initdb")).parent
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin "
        "or on PATH. Install them with `apt-get install -y postgresql` (CI does this in .ci/run); "
        "the staging-table tests need a real PostgreSQL server.",
        pytrace=False,
    )


@contextmanager
def postgres_server(password: str | None = None):
    """A PostgreSQL server on a unix socket in a temporary directory, yielding its URL (user
    postgres, no password in it). With ``password`` the server asks every connection for it
    (scram-sha-256); without, it trusts them."""
    bin_dir = _postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="modelfactory-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail(
                "running as root but there is no 'postgres' user to run the server as "
                "(the Debian postgresql package creates it)",
                pytrace=False,
            )
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "server.log"
    port = free_port()

    def run(*args):
        result = subprocess.run(
            [*prefix, *map(str, args)], capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            pytest.fail(
                f"{' '.join(map(str, args))} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}\n{server_log}",
                pytrace=False,
            )

    authentication = ["-A", "trust"]
    if password is not None:
        password_file = root / "password"
        password_file.write_text(password + "\n")
        if prefix:
            os.chown(password_file, pwd.getpwnam("postgres").pw_uid, -1)
        authentication = ["-A", "scram-sha-256", "--pwfile", password_file]
    run(
        bin_dir / "initdb", "-D", data, "-U", "postgres", *authentication, "--no-sync", "-E", "UTF8"
    )
    options = f"-p {port} -k {root} -c listen_addresses='' -c fsync=off"
    run(bin_dir / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "-t", "60", "start")
    try:
        yield f"postgresql+psycopg://postgres@/postgres?host={root}&port={port}"
    finally:
        subprocess.run(
            [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url():
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def prediction_store_url(request, tmp_path):
    """An empty prediction store (predictions and feedback tables): a sqlite file, then the
    session's PostgreSQL server with those tables dropped first."""
    from modelfactory.predictions.store import metadata
    from modelfactory.sql import engine

    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'predictions.db'}"
    url = request.getfixturevalue("postgres_url")
    created = engine(url)
    metadata.drop_all(created)
    created.dispose()
    return url
