"""What every ``modelfactory`` command shares: the console it prints on, the one way an error
reaches the user, and where the registry is.

:func:`friendly_errors` turns what a user can act on (bad input, a missing model, a registry or
data problem) into one ``error:`` line and exit status 1, never a traceback;
:func:`tracking_uri` is ``MLFLOW_TRACKING_URI`` when set (checked to answer), else the
embedded MLflow server, started when none runs.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from modelfactory.config import get_settings
from modelfactory.errors import ModelFactoryError

console = Console()
F = TypeVar("F", bound=Callable[..., Any])
# The argument most commands take first.
ModelArgument = Annotated[str, typer.Argument(help="Registered model name, e.g. bank-marketing.")]


def friendly_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return command(*args, **kwargs)
        except (ModelFactoryError, LookupError, ValueError, MlflowException) as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def embedded_mlflow():
    from modelfactory.local.mlflow_server import EmbeddedMlflow

    settings = get_settings()
    return EmbeddedMlflow(settings.home, settings.mlflow_host, settings.mlflow_port)


def tracking_uri(start: bool = True) -> str:
    """The registry the commands use: MLFLOW_TRACKING_URI if set (an error naming it when it
    does not answer); otherwise the embedded server, started if need be (``start``)."""
    from modelfactory.registry import ensure_reachable

    # MLflow's artifact progress bars would break the tables the commands print.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings = get_settings()
    if settings.tracking_uri_from_env:
        return ensure_reachable(settings.tracking_uri_from_env)
    server = embedded_mlflow()
    if server.is_healthy() or not start:
        return server.url
    with console.status(f"Starting MLflow at {server.url} (first start creates the database)..."):
        server.start()
    console.print(f"[green]✓[/] MLflow at {server.url} (data in {settings.home / 'mlflow'})")
    return server.url
