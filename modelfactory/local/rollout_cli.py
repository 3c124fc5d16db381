"""``modelfactory rollout set|status|clear``: drive a model's rollout by hand through registry tags.

Serving processes poll the tags (see :mod:`modelfactory.inference.router`), so a change
reaches every worker within ``MODELFACTORY_ROLLOUT_POLL_SECONDS``. The operator
writes the same tags in the cluster. Mounted by the main CLI as
``app.add_typer(rollout_app, name="rollout")``.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

rollout_app = typer.Typer(
    help="Canary and shadow rollouts of a model's challenger, by hand.", no_args_is_help=True
)
console = Console()


def _registry():
    from modelfactory.registry import Registry, ensure_reachable

    return Registry(ensure_reachable())


def _run(action):
    from mlflow.exceptions import MlflowException

    from modelfactory.errors import ModelFactoryError

    try:
        state = action(_registry())
    except (ModelFactoryError, MlflowException) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    console.print(state.describe(), highlight=False)


@rollout_app.command("set")
def set_(
    model: Annotated[str, typer.Argument(help="Registered model name, e.g. bank-marketing.")],
    mode: Annotated[
        str,
        typer.Option(
            help="canary (the challenger answers a share) or shadow "
            "(it predicts beside the champion, never answering)."
        ),
    ] = "canary",
    weight: Annotated[float, typer.Option(help="Percent of requests, 0-100.")] = 10.0,
    step: Annotated[int | None, typer.Option(help="Step index to record (default: next).")] = None,
    budget_ms: Annotated[
        float | None,
        typer.Option(help="Challenger latency budget in ms; past it the champion answers."),
    ] = None,
):
    """Start or move the rollout of the model's challenger."""
    from modelfactory.rollout import set_rollout

    _run(lambda registry: set_rollout(registry, model, mode, weight, step, budget_ms))


@rollout_app.command()
def status(model: Annotated[str, typer.Argument(help="Registered model name.")]):
    """Show champion, challenger and the rollout the serving processes follow."""
    from modelfactory.rollout import read_rollout

    _run(lambda registry: read_rollout(registry, model))


@rollout_app.command()
def clear(model: Annotated[str, typer.Argument(help="Registered model name.")]):
    """Stop the rollout: the champion answers everything (the challenger alias stays)."""
    from modelfactory.rollout import clear_rollout

    _run(lambda registry: clear_rollout(registry, model))
