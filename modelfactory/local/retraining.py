"""Retraining on this machine: the use case's compiled pipeline, run with the kfp local runner.

A check (:mod:`modelfactory.monitoring.check`) asks a retrainer to start a run; on a
cluster that is :class:`~modelfactory.monitoring.retrain.KfpRetrainer`, here it is
:class:`LocalRetrainer`, which runs the same compiled YAML to its end, so the run id it answers
is the MLflow training run's, and the version it registered (and the gate's verdict) are known.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from modelfactory.config import Settings
from modelfactory.local.pipeline_runs import StepEvent, compiled_pipeline, run_locally
from modelfactory.monitoring.retrain import Retrainer, RetrainRequest, RetrainRun, retrainer_for
from modelfactory.pipeline_spec import check_arguments, compiled_pipeline_file


class LocalRetrainer:
    def __init__(
        self,
        tracking_uri: str,
        pipeline_root: Path,
        on_step: Callable[[StepEvent], None] = lambda event: None,
        runner=None,
    ):
        self.tracking_uri = tracking_uri
        self.pipeline_root = Path(pipeline_root)
        self.on_step = on_step
        self.runner = runner

    def submit(self, request: RetrainRequest) -> RetrainRun:
        arguments = {"mlflow_tracking_uri": self.tracking_uri, **request.pipeline_arguments()}
        check_arguments(compiled_pipeline_file(request.use_case).read_text(), arguments)
        summary = run_locally(
            compiled_pipeline(request.use_case),
            arguments,
            self.pipeline_root,
            self.on_step,
            self.runner,
        )
        return RetrainRun(
            run_id=summary["run_id"],
            where="local",
            url=f"{self.tracking_uri}/#/models/{request.model_name}/versions/{summary['version']}",
            version=str(summary["version"]),
            promoted=bool(summary["promoted"]),
            alias=summary.get("alias"),
            detail=summary["reason"],
        )


def cli_retrainer(settings: Settings, tracking_uri: str, console: Console) -> Retrainer:
    """The retrainer of a check started from the CLI: KFP when a KFP endpoint is configured
    (:func:`~modelfactory.monitoring.retrain.retrainer_for`), else a kfp local run here, its
    steps printed on ``console`` as they finish."""
    chosen = retrainer_for(settings)
    if chosen is not None:
        return chosen
    # The local runner sends kfp's own output to the run's log by redirecting stdout: the step
    # lines go to the stream the terminal has now.
    steps = Console(file=console.file, force_terminal=console.is_terminal, width=console.width)

    def show(event: StepEvent) -> None:
        if event.status == "SUCCESS":
            steps.print(f"  [green]✓[/] {event.task} [dim]({event.seconds:.1f}s)[/]")
        elif event.status != "running":
            steps.print(f"  [red]✗[/] {event.task} [dim]({event.seconds:.1f}s)[/]")

    return LocalRetrainer(tracking_uri, settings.home / "pipeline_runs", show)
