"""A drift check as a person reads it: each column's method, score and flag, realized
performance, the decision and what it started; the anomaly batch's days."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.table import Table

from modelfactory.anomaly.monitoring import BatchDrift
from modelfactory.monitoring.check import CheckResult


def print_check(result: CheckResult, out: Console) -> None:
    """The check as a person reads it: columns, methods, scores, flags; performance; decision."""
    read = (
        f"{result.read_rows:,} sampled of {result.rows:,} rows"
        if result.sampled
        else f"{result.rows:,} rows"
    )
    champion = f", champion v{result.champion_version}" if result.champion_version else ""
    out.print(f"\n[bold]{result.window}[/]: {read}{champion}", highlight=False)
    drift = result.drift
    if drift is not None:
        table = Table("column", "role", "method", "threshold", "score", "drifted")
        for column in sorted(drift.columns, key=lambda c: (c.role != "output", -c.score)):
            table.add_row(
                column.column,
                column.role,
                column.method,
                f"{column.threshold:g}",
                f"{column.score:.4f}",
                "[red]DRIFT[/]" if column.drifted else "-",
            )
        out.print(table)
        out.print(
            f"drifted: {len(drift.drifted_inputs)} of {len(drift.inputs)} inputs "
            f"({drift.drifted_share:.0%})"
            + (f"; outputs: {', '.join(drift.drifted_outputs)}" if drift.drifted_outputs else "")
            + f"; reference {drift.reference_rows:,} rows",
            highlight=False,
        )
        for skipped, why in drift.skipped.items():
            out.print(f"  not compared: {skipped} ({why})", highlight=False)
    for version in result.performance:
        figures = ", ".join(
            f"{name} {value:.4f}"
            + (f" (holdout {version.holdout[name]:.4f})" if name in version.holdout else "")
            for name, value in version.realized.items()
            if not name.startswith("store_")
        )
        out.print(
            f"realized v{version.version} on {version.labelled_rows:,} labelled rows: {figures}",
            highlight=False,
        )
        for who, why in version.flagged.items():
            out.print(f"  [yellow]{who}[/]: {why}", highlight=False)
    decision = result.decision
    verb = decision.action if result.acted else f"{decision.action} (a check only: nothing started)"
    out.print(f"[bold]decision[/]: {verb}\n  {decision.reason}", highlight=False)
    if result.retrain is not None:
        started = result.retrain
        out.print(
            f"[bold]retraining run[/] {started.run_id} ({started.where})"
            + (f": registered v{started.version}" if started.version else "")
            + (f", {started.detail}" if started.detail else ""),
            highlight=False,
        )
    if result.retrain_error:
        out.print(f"[red]retraining failed[/]: {result.retrain_error}", highlight=False)
    if result.report_path is not None:
        out.print(f"report: {result.report_path}", highlight=False)
    if result.report_url:
        out.print(f"        {result.report_url}", highlight=False)
    if result.run_url:
        out.print(f"MLflow run: {result.run_url}", highlight=False)


def print_batches(results: Iterable[BatchDrift], out: Console) -> None:
    """One row per batch date: rides, outlier rates, drifted share, verdict."""
    table = Table("batch date", "rides", "outlier rate", "days before", "drifted share", "verdict")
    for result in results:
        table.add_row(
            result.batch_date.isoformat(),
            f"{result.rides:,}",
            f"{result.outlier_rate:.2%}",
            "-"
            if result.reference_outlier_rate is None
            else f"{result.reference_outlier_rate:.2%}",
            "-" if result.drifted_share is None else f"{result.drifted_share:.0%}",
            result.verdict,
        )
    out.print(table)
