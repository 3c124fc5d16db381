"""A rollout as a person reads it: steps, weight, each metric against its threshold, history."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from modelfactory.rollout.controller import Tick
from modelfactory.rollout.replay import ReplayJudgement, ReplayResult
from modelfactory.rollout.spec import RolloutSpec
from modelfactory.rollout.status import MetricStatus, Status
from modelfactory.status import from_status
from modelfactory.timestamps import rfc3339

PHASE_STYLE = {"Healthy": "green", "Progressing": "cyan", "Paused": "yellow", "Degraded": "red"}


def render(name: str, raw: dict[str, Any], spec: RolloutSpec | None = None) -> Group:
    status = from_status(Status, raw)
    phase = Text(status.phase, style=PHASE_STYLE.get(status.phase, ""))
    head = Text.assemble(
        (f"{name}", "bold"),
        "  ",
        phase,
        "  champion ",
        (f"v{status.champion or '-'}", "bold"),
        "  challenger ",
        (f"v{status.challenger}" if status.challenger else "-", "bold"),
        f"  weight {status.weight:g}% ({status.mode or 'no traffic'})",
    )
    parts: list[Any] = [head, Text(status.message or "", style="dim")]
    if spec is not None and status.challenger:
        steps = Table("", "step", box=None, show_header=False, pad_edge=False)
        for i, step in enumerate(spec.steps):
            mark = "▶" if i == status.step else ("✓" if i < status.step else " ")
            steps.add_row(mark, f"{i + 1}. {step.describe()}")
        parts.append(steps)
    replay = status.replay
    if replay is not None and replay.version == (status.challenger or status.last_finished):
        verdict = replay.verdict or "running"
        style = {"Passed": "green", "Failed": "red", "running": "cyan"}.get(verdict, "yellow")
        parts.append(
            Text.assemble(
                "replay of v", replay.version, ": ", (verdict, style), f" ({replay.rows:,} records)"
            )
        )
        if replay.metrics:
            parts.append(_metrics_table("replay", replay.metrics))
    if status.analysis.metrics:
        labelled = ", ".join(f"v{v} {n:,}" for v, n in status.analysis.labelled.items())
        title = (
            f"analysis: {status.analysis.intervals} intervals"
            + (f"; labelled answers {labelled}" if labelled else "")
            + f"; {status.analysis.last_reason}"
        )
        parts.append(_metrics_table(title, status.analysis.metrics))
    if status.history:
        history = Table(
            "version", "outcome", "finished", "reason", title="history", title_justify="left"
        )
        for entry in status.history[:5]:
            finished = rfc3339(entry.finished_at)[:19] if entry.finished_at else ""
            history.add_row(f"v{entry.version}", entry.outcome, finished, entry.reason[:90])
        parts.append(history)
    return Group(*parts)


def _metrics_table(title: str, metrics: dict[str, MetricStatus]) -> Table:
    """Each metric: its value, its bounds (a rate's, over all seen), threshold, tallies."""
    table = Table(
        "metric",
        "value",
        "bounds",
        "threshold",
        "ok",
        "failed",
        "inconclusive",
        "last",
        title=title,
        title_justify="left",
    )
    for metric_name, m in metrics.items():
        value = "-" if m.value is None else f"{m.value:.4g}"
        bounds = f"[{m.lower:.3g}, {m.upper:.3g}] n={m.samples:g}" if m.lower is not None else ""
        label = f"{metric_name} (dry run)" if m.dry_run else metric_name
        style = {"Failed": "red", "Successful": "green", "Inconclusive": "yellow"}.get(m.last)
        table.add_row(
            label,
            value,
            bounds,
            m.threshold,
            str(m.successful),
            str(m.failed),
            str(m.inconclusive),
            Text(m.last or "-", style=style or ""),
        )
    return table


def timeline_line(status: Status) -> str:
    """One line per change, for ``modelfactory rollout run``'s timeline."""
    measured = ", ".join(
        f"{name} {m.value:.3g} ({m.last.lower()})"
        for name, m in status.analysis.metrics.items()
        if m.value is not None
    )
    where = (
        f"step {status.step + 1} weight {status.weight:g}% {status.mode or ''}".strip()
        if status.challenger
        else ""
    )
    return " | ".join(p for p in (status.phase, where, measured, status.message) if p)


def tick_printer(console) -> Callable[[Tick], None]:
    """Prints each reconcile's decisions (events) and each change of the timeline line."""
    last = {"line": ""}

    def show(done: Tick) -> None:
        stamp = time.strftime("%H:%M:%S")
        for event in done.events:
            colour = "red" if event.type == "Warning" else "green"
            console.print(
                f"[dim]{stamp}[/] [{colour}]{event.reason}[/] {event.message}", highlight=False
            )
        line = timeline_line(done.status)
        if line != last["line"]:
            console.print(f"[dim]{stamp}[/] {line}", highlight=False)
            last["line"] = line

    return show


def print_replay(result: ReplayResult, judged: ReplayJudgement, console) -> None:
    """The replay's figures, each metric against its threshold, and the verdict."""
    style = {"Passed": "green", "Failed": "red"}.get(judged.verdict, "yellow")
    console.print(
        f"v{result.version} replayed {result.rows:,} of champion v{result.champion}'s logged "
        f"records in {result.seconds:.1f} s: {result.refused} refused, {result.errors} failed, "
        f"{result.agreed:,} of {result.compared:,} agree; {result.labelled:,} with ground truth",
        highlight=False,
    )
    if judged.metrics:
        table = Table("metric", "value", "bounds", "threshold", "verdict")
        for name, m in judged.metrics.items():
            bounds = (
                f"[{m.lower:.3g}, {m.upper:.3g}] of {m.samples:g}" if m.lower is not None else ""
            )
            value = "-" if m.value is None else f"{m.value:.4g}"
            table.add_row(
                name, value, bounds, m.threshold, m.last + (" (dry run)" if m.dry_run else "")
            )
        console.print(table)
    if result.realized:
        figures = ", ".join(
            f"{k} {v:.4f} (champion {result.champion_realized.get(k, float('nan')):.4f})"
            for k, v in sorted(result.realized.items())
        )
        console.print(f"realized on the labelled records: {figures}", highlight=False)
    console.print(f"[bold {style}]{judged.verdict}[/]: {judged.reason}", highlight=False)
