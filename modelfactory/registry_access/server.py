"""``mlflow server --app-name basic-auth`` as the chart runs it: the auth app's configuration
file (written at start into a private file: it holds the auth database's URL with its
password), the static secret key its CSRF check needs, then MLflow's own server.

Settings of the auth app (MLflow's ``basic_auth.ini``): ``default_permission`` is
``NO_PERMISSIONS`` (an account holds only what its grants give it); the admin is the
reconciled ``admin`` account, never created here with a default password; a verified password
is cached per worker for ``auth_cache_ttl_seconds``, so a request does not pay MLflow's
password hash (docs/adr/0016 has the figures); a password changed in the database reaches every
worker within that time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_PERMISSION = "NO_PERMISSIONS"
CACHE_SECONDS = 60
APP_NAME = "basic-auth"


def auth_config_text(
    database_uri: str, admin_username: str = "admin", cache_seconds: int = CACHE_SECONDS
) -> str:
    """The auth app's ini file. ``%`` is doubled: configparser reads the file with
    interpolation, and a URL-encoded password may hold one."""
    return (
        "[mlflow]\n"
        f"default_permission = {DEFAULT_PERMISSION}\n"
        f"database_uri = {database_uri.replace('%', '%%')}\n"
        f"admin_username = {admin_username}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        f"auth_cache_ttl_seconds = {int(cache_seconds)}\n"
    )


def write_auth_config(path: Path, database_uri: str, **options) -> Path:
    """The ini at ``path``, readable by this user only (it holds a database password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(auth_config_text(database_uri, **options))
    os.chmod(path, 0o600)
    return path


def server_environment(config: Path, secret_key: str) -> dict[str, str]:
    """What ``mlflow server --app-name basic-auth`` reads besides its arguments."""
    return {"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": secret_key}


def read_secret_file(path: str, what: str) -> str:
    try:
        with open(path) as handle:
            value = handle.readline().rstrip("\r\n")
    except OSError as exc:
        raise SystemExit(f"{path}: cannot read {what} ({exc.strerror})") from None
    if not value:
        raise SystemExit(f"{path}: holds no {what}")
    return value


def serve(
    arguments: Sequence[str],
    config: Path,
    secret_key_file: str,
    admin_username: str,
    cache_seconds: int = CACHE_SECONDS,
) -> None:
    """Replace this process with ``mlflow server --app-name basic-auth <arguments>``; the
    tracking store is ``MLFLOW_BACKEND_STORE_URI`` (the chart's prefix puts it there)."""
    from modelfactory.registry_access.reconcile import auth_database_url

    backend = os.environ.get("MLFLOW_BACKEND_STORE_URI")
    if not backend:
        raise SystemExit("MLFLOW_BACKEND_STORE_URI is not set: no tracking store to serve")
    write_auth_config(
        config,
        auth_database_url(backend),
        admin_username=admin_username,
        cache_seconds=cache_seconds,
    )
    key = read_secret_file(secret_key_file, "Flask secret key")
    os.environ.update(server_environment(config, key))
    command = [sys.executable, "-m", "mlflow", "server", "--app-name", APP_NAME, *arguments]
    os.execv(sys.executable, command)
