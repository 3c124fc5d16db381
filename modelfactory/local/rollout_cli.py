"""``modelfactory rollout ...``: automated rollouts, and the traffic tags by hand.

- ``run MODEL``: the rollout controller on this machine (what the operator does on a cluster),
  printing a timeline of its decisions with the measured values;
- ``replay MODEL``: the challenger replays the champion's most recent logged requests, judged as
  a rollout's replay step judges it (nothing reaches the serving path or the prediction log);
- ``promote|abort|retry NAME`` and ``status NAME [--watch]``: the local rollout, or with
  ``--namespace`` the ModelDeployment ``NAME`` on a cluster (the kubectl plugin,
  ``kubectl modelfactory``, acts on the cluster by default);
- ``set|traffic|clear MODEL``: the registry's traffic tags by hand (serving processes poll them,
  see :mod:`modelfactory.inference.router`; the operator writes the same tags).

Mounted by the main CLI as ``app.add_typer(rollout_app, name="rollout")``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from modelfactory.local.console import ModelArgument, console, friendly_errors, tracking_uri

rollout_app = typer.Typer(
    help="Rollouts of a model's challenger: automated (run, promote, abort, retry, status) and "
    "its traffic tags by hand (set, traffic, clear).",
    no_args_is_help=True,
)


def _show(action):
    """Apply ``action`` to the registry and print the rollout state it leaves."""
    from modelfactory.registry import Registry

    console.print(action(Registry(tracking_uri())).describe(), highlight=False)


@rollout_app.command("set")
@friendly_errors
def set_(
    model: ModelArgument,
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

    _show(lambda registry: set_rollout(registry, model, mode, weight, step, budget_ms))


@rollout_app.command()
@friendly_errors
def traffic(model: ModelArgument):
    """Show champion, challenger and the traffic tags the serving processes follow."""
    from modelfactory.rollout import read_rollout

    _show(lambda registry: read_rollout(registry, model))


@rollout_app.command()
@friendly_errors
def clear(model: ModelArgument):
    """Stop the rollout: the champion answers everything (the challenger alias stays)."""
    from modelfactory.rollout import clear_rollout

    _show(lambda registry: clear_rollout(registry, model))


# --- automated rollouts ------------------------------------------------------------------------
Namespace = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        help="Act on the ModelDeployment in this namespace of the current kubeconfig's cluster, "
        "instead of the local rollout.",
    ),
]


def _store(namespace: str | None):
    from modelfactory.config import get_settings
    from modelfactory.local.rollouts import ClusterRollouts, LocalRollouts

    if namespace or CLUSTER_DEFAULT["on"]:
        return ClusterRollouts(namespace or "default")
    return LocalRollouts(get_settings().home / "rollouts")


CLUSTER_DEFAULT = {"on": False}  # the kubectl plugin turns it on


def kubectl_plugin() -> None:
    """``kubectl modelfactory ...`` (an executable named kubectl-modelfactory on the PATH): the
    rollout commands acting on ModelDeployments of the current kubeconfig's cluster."""
    CLUSTER_DEFAULT["on"] = True
    rollout_app(prog_name="kubectl modelfactory")


@rollout_app.command()
@friendly_errors
def run(
    model: ModelArgument,
    spec_file: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            help="A ModelDeployment manifest whose spec (steps, analysis) to "
            "follow; the defaults when omitted.",
        ),
    ] = None,
    interval: Annotated[str | None, typer.Option(help="Analysis interval, e.g. 30s.")] = None,
    min_requests: Annotated[
        int | None, typer.Option(help="Challenger requests an interval needs.")
    ] = None,
    metrics_url: Annotated[
        list[str] | None,
        typer.Option(
            help="A serving process's metrics address (repeatable); default the local "
            "service's MODELFACTORY_METRICS_PORT."
        ),
    ] = None,
    tick: Annotated[float, typer.Option(help="Seconds between reconciles.")] = 5.0,
    timeout: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
):
    """Drive MODEL's rollout here until it is promoted or rolled back, printing each decision."""
    from modelfactory.config import get_settings
    from modelfactory.local.rollout_view import tick_printer
    from modelfactory.local.rollouts import LocalRollouts, load_spec, run_local

    settings = get_settings()
    rollout, raw = load_spec(model, spec_file, interval=interval, minRequests=min_requests)
    urls = metrics_url or [f"http://{settings.serving.http_host}:{settings.serving.metrics_port}"]
    store = LocalRollouts(settings.home / "rollouts")
    steps = ", ".join(s.describe() for s in rollout.steps)
    console.print(
        f"rollout of {model}: {steps}; metrics from {', '.join(urls)}; Ctrl-C stops (the status "
        "is kept)"
    )
    final = run_local(
        rollout,
        raw,
        store,
        tracking_uri(),
        urls,
        tick,
        timeout=timeout,
        on_tick=tick_printer(console),
    )
    raise typer.Exit(0 if final.phase == "Healthy" else 3)


@rollout_app.command()
@friendly_errors
def replay(
    model: ModelArgument,
    last: Annotated[
        int, typer.Option(help="Replay the champion's newest N logged records.")
    ] = 10_000,
    since: Annotated[
        str, typer.Option(help="Only records logged in the last 24h, 7d, ...")
    ] = "24h",
    version: Annotated[
        str | None, typer.Option(help="The version to replay (default: the challenger).")
    ] = None,
    spec_file: Annotated[
        Path | None,
        typer.Option("--spec", help="A ModelDeployment manifest whose analysis judges the replay."),
    ] = None,
):
    """Replay the champion's logged requests with the challenger, before it gets any traffic."""
    from modelfactory.local.rollout_view import print_replay
    from modelfactory.local.rollouts import load_spec, local_evidence
    from modelfactory.registry import CHALLENGER, CHAMPION, Registry
    from modelfactory.rollout.actions import RunReplay
    from modelfactory.rollout.replay import judge_replay
    from modelfactory.rollout.spec import parse_step

    uri = tracking_uri()
    registry = Registry(uri)
    champion = registry.version_by_alias(model, CHAMPION)
    challenger = registry.version_by_alias(model, CHALLENGER)
    chosen = version or (str(challenger.version) if challenger else None)
    if champion is None or chosen is None or chosen == str(champion.version):
        raise LookupError(f"{model} needs a champion and another version to replay (--version)")
    rollout, _ = load_spec(model, spec_file)  # its analysis judges the replay
    step = parse_step({"replay": {"lastRequests": last, "since": since}}, "--last/--since")
    asked = RunReplay(chosen, str(champion.version), last, time.time() - step.since)
    with console.status(f"v{chosen} replays champion v{champion.version}'s logged requests..."):
        result = local_evidence(model, uri).replay(model, asked)
    print_replay(result, judge_replay(rollout, step, result), console)


@rollout_app.command()
@friendly_errors
def promote(
    name: Annotated[str, typer.Argument(help="Model (local) or ModelDeployment (cluster).")],
    full: Annotated[bool, typer.Option("--full", help="Skip every remaining step.")] = False,
    namespace: Namespace = None,
):
    """Go on past a pause (or start a manual rollout); --full promotes the challenger now."""
    store = _store(namespace)
    console.print(store.request(name, "promote-full" if full else "promote"))


def _action_command(action: str, doc: str):
    """A command that asks NAME's rollout for ``action`` (the operator or ``rollout run`` acts on
    it at its next reconcile)."""

    @friendly_errors
    def command(
        name: Annotated[str, typer.Argument(help="Model or ModelDeployment.")],
        namespace: Namespace = None,
    ):
        console.print(_store(namespace).request(name, action))

    command.__doc__ = doc
    return command


rollout_app.command("abort")(
    _action_command("abort", "Roll the challenger back now, recording that a person aborted it.")
)
rollout_app.command("retry")(
    _action_command("retry", "Roll out again the version whose rollout was rolled back or aborted.")
)


@rollout_app.command()
@friendly_errors
def status(
    name: Annotated[str, typer.Argument(help="Model or ModelDeployment.")],
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Keep it on screen, live.")] = False,
    namespace: Namespace = None,
):
    """The rollout: phase, steps, weight, each metric against its threshold, history."""
    from rich.live import Live

    from modelfactory.local.rollout_view import render
    from modelfactory.rollout.spec import SpecError, parse_spec

    store = _store(namespace)

    def view():
        raw = store.status(name)
        try:
            spec = parse_spec(raw["spec"]) if raw.get("spec") else None
        except SpecError:
            spec = None
        return render(name, raw, spec)

    if not watch:
        console.print(view())
        return
    with Live(view(), console=console, refresh_per_second=1) as live:
        try:
            while True:
                time.sleep(2)
                live.update(view())
        except KeyboardInterrupt:
            pass
