"""``python -m modelfactory.registry_access reconcile|serve``: the chart's MLflow pod runs both.

- ``reconcile --passwords DIR [--username ACCOUNT=NAME ...] [--model NAME ...]``: the accounts
  of :mod:`.accounts` with the passwords in ``DIR/<account>`` (files of the credentials
  Secret), into the auth database beside ``MLFLOW_BACKEND_STORE_URI``; also creates the named
  served models. The init container of MLflow and the pre-upgrade hook Job run it.
- ``serve --secret-key-file FILE [--config PATH] [--admin-username NAME] -- ARGS``: ``mlflow
  server --app-name basic-auth ARGS`` over the same databases.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from modelfactory.registry_access.accounts import ADMIN, with_usernames
from modelfactory.registry_access.reconcile import (
    AccessError,
    auth_database_url,
    check_password,
    reconcile,
)
from modelfactory.registry_access.server import CACHE_SECONDS, read_secret_file, serve

ATTEMPTS = 3
DATABASE_WAIT_SECONDS = 300


def wait_for_database(url: str, timeout: float = DATABASE_WAIT_SECONDS) -> None:
    """Until the tracking database accepts connections (PostgreSQL may still be starting)."""
    import sqlalchemy as sa

    from modelfactory.sql import shown_url

    deadline = time.monotonic() + timeout
    while True:
        engine = sa.create_engine(url)
        try:
            engine.connect().close()
            return
        except sa.exc.OperationalError as exc:
            if time.monotonic() > deadline:
                raise AccessError(
                    f"{shown_url(url)}: not reachable after {timeout:.0f} s ({exc.orig})"
                ) from None
            print(f"registry access: waiting for the database ({type(exc.orig).__name__})")
            time.sleep(3)
        finally:
            engine.dispose()


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise SystemExit(f"{flag} {item!r}: expected ACCOUNT=USERNAME")
        pairs[name] = value
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelfactory.registry_access")
    commands = parser.add_subparsers(dest="command", required=True)
    apply = commands.add_parser("reconcile", help="accounts, passwords and grants into MLflow")
    apply.add_argument("--passwords", required=True, help="a folder with one file per account")
    apply.add_argument("--username", action="append", default=[], metavar="ACCOUNT=NAME")
    apply.add_argument("--model", action="append", default=[], help="a served model's name")
    run = commands.add_parser("serve", help="mlflow server --app-name basic-auth ARGS")
    run.add_argument("--secret-key-file", required=True)
    run.add_argument("--config", default="/tmp/mlflow-auth/basic_auth.ini")
    run.add_argument("--admin-username", default=ADMIN.username)
    run.add_argument("--cache-seconds", type=int, default=CACHE_SECONDS)
    run.add_argument("server_arguments", nargs=argparse.REMAINDER)
    arguments = parser.parse_args(argv)

    if arguments.command == "serve":
        rest = [a for a in arguments.server_arguments if a != "--"]
        serve(
            rest,
            Path(arguments.config),
            arguments.secret_key_file,
            arguments.admin_username,
            arguments.cache_seconds,
        )
        return 0  # not reached: serve execs mlflow

    backend = os.environ.get("MLFLOW_BACKEND_STORE_URI")
    if not backend:
        raise SystemExit("MLFLOW_BACKEND_STORE_URI is not set: no tracking database to reconcile")
    try:
        accounts = with_usernames(_pairs(arguments.username, "--username"))
        folder = Path(arguments.passwords)
        passwords = {}
        for account in accounts:
            path = folder / account.name
            if not path.is_file():
                raise AccessError(f"{path}: no such file (the {account.name!r} account's password)")
            passwords[account.name] = check_password(
                account, read_secret_file(str(path), "password"), str(path)
            )
        wait_for_database(backend)
        for attempt in range(ATTEMPTS):
            try:
                done = reconcile(
                    auth_database_url(backend),
                    passwords,
                    accounts,
                    tracking_url=backend,
                    served_models=arguments.model,
                )
                break
            except (AccessError, ValueError):
                raise
            except Exception as exc:  # another reconcile at once (an upgrade's pod and hook)
                if attempt == ATTEMPTS - 1:
                    raise
                print(f"registry access: retrying after {type(exc).__name__}: {exc}", flush=True)
                time.sleep(5)
    except (AccessError, ValueError) as exc:
        print(f"registry access: {exc}", file=sys.stderr)
        return 1
    print(f"registry access: {done.summary()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
