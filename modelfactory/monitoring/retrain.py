"""Retraining when the policy says so: a run of the use case's compiled pipeline.

A :class:`Retrainer` starts a run for a :class:`RetrainRequest` and returns a
:class:`RetrainRun`. On a cluster, :class:`KfpRetrainer` submits the compiled pipeline YAML
(the file users upload to the KFP UI) with ``kfp.Client`` to the endpoint in
``MODELFACTORY_MONITORING_KFP_HOST``; on one machine the CLI's retrainer
(``modelfactory.local.retraining``) runs that same YAML with the kfp local runner. Either way
the new version meets the promotion gate as always and becomes ``challenger``; the rollout
takes it from there.

What a run trains on (``RetrainSettings.source``): a path or URL the pipeline ingests, or
``feedback``: the champion's training data with the recent prediction log's labelled rows
(features and ground truth) appended (:func:`training_from_feedback`), so a model learns from
what it served.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from modelfactory.errors import ModelFactoryError
from modelfactory.monitoring.performance import read_labelled
from modelfactory.monitoring.recording import CheckRun
from modelfactory.monitoring.reference import champion_figures, training_data
from modelfactory.monitoring.window import Window
from modelfactory.pipeline_spec import pipeline_parameters
from modelfactory.registry import Registry
from modelfactory.status import camel_case
from modelfactory.use_case import UseCase

if TYPE_CHECKING:
    from modelfactory.config import Settings

FEEDBACK_SOURCE = "feedback"


class RetrainSettings(BaseModel):
    """``source``: what a retraining run ingests (a path or URL, or ``feedback``);
    ``parameters``: further pipeline arguments (e.g. ``n_estimators``, ``promotion_margin``);
    ``cooldown``: the least time between two retrains; ``labelled_since``: how far back the
    prediction log's labelled rows are taken for a ``feedback`` source."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    enabled: bool = True
    source: str = FEEDBACK_SOURCE
    parameters: dict[str, Any] = Field(default_factory=dict)
    cooldown: str = "24h"
    labelled_since: str = Field(default="30d", alias="labelledSince")


class RetrainRefused(ModelFactoryError):
    """A retrain the policy asked for cannot start (no new data, no way to run the pipeline)."""


@dataclass(frozen=True)
class RetrainRequest:
    use_case: str
    model_name: str
    reason: str
    source: str  # the path or URL the pipeline's ingest step reads
    arguments: dict[str, Any] = field(default_factory=dict)  # the other pipeline arguments

    def pipeline_arguments(self) -> dict[str, Any]:
        return {"source": self.source, "model_name": self.model_name, **self.arguments}


@camel_case
@dataclass(frozen=True)
class RetrainRun:
    """A started run: ``run_id`` is KFP's run id (cluster) or the MLflow training run's (local,
    where the run has finished and registered ``version``, with the alias the gate gave it:
    ``champion``, ``challenger`` waiting for its rollout, or none)."""

    run_id: str
    where: str  # kfp | local
    url: str | None = None
    version: str | None = None
    promoted: bool | None = None
    alias: str | None = None  # the alias the gate gave the version (None: rejected)
    detail: str = ""


class Retrainer(Protocol):
    def submit(self, request: RetrainRequest) -> RetrainRun: ...


class KfpRetrainer:
    """Submits the use case's compiled pipeline to Kubeflow Pipelines.

    ``client`` is a ``kfp.Client`` (made for ``host`` when not given). The arguments are
    checked against the pipeline's declared parameters before anything is submitted. No secret
    is an argument: the compiled pipeline's tasks read the MLflow account from the Secret
    ``mlflow_secret`` names (the compiled default when None).
    """

    def __init__(
        self,
        host: str,
        experiment: str = "modelfactory-retraining",
        client=None,
        mlflow_secret: str | None = None,
    ):
        self.host = host.rstrip("/")
        self.experiment = experiment
        self.mlflow_secret = mlflow_secret
        self._client = client

    @property
    def client(self):
        if self._client is None:
            import kfp

            self._client = kfp.Client(host=self.host)
        return self._client

    def submit(self, request: RetrainRequest) -> RetrainRun:
        from modelfactory.pipeline_spec import check_arguments, compiled_pipeline_file

        package = compiled_pipeline_file(request.use_case)
        arguments = request.pipeline_arguments()
        if self.mlflow_secret:
            arguments["mlflow_credentials_secret"] = self.mlflow_secret
        check_arguments(package.read_text(), arguments)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
        run = self.client.create_run_from_pipeline_package(
            str(package),
            arguments=arguments,
            run_name=f"retrain-{request.model_name}-{stamp}",
            experiment_name=self.experiment,
            enable_caching=False,  # new data under the same source name must be read again
        )
        run_id = str(run.run_id)
        return RetrainRun(
            run_id,
            "kfp",
            url=f"{self.host}/#/runs/details/{run_id}",
            detail=f"submitted to {self.host} (experiment {self.experiment})",
        )


def training_from_feedback(
    previous: pd.DataFrame, new_rows: pd.DataFrame, columns: list[str] | tuple[str, ...]
) -> pd.DataFrame:
    """The previous training data with the labelled rows appended, in the raw format's
    ``columns``; refuses when there is nothing new to learn from.

    A labelled row equal in every column to a row of the previous training data is not
    appended again: a champion that learned from the log already holds the rows it was given
    (and the window they come from may reach back before it was trained).
    """
    missing = [c for c in columns if c not in previous.columns]
    if missing:
        raise RetrainRefused(f"the previous training data lacks column(s) {', '.join(missing)}")
    old, new = previous[list(columns)], new_rows[list(columns)]
    if not new.empty:
        known = new.merge(old.drop_duplicates(), how="left", on=list(columns), indicator=True)
        new = new[(known["_merge"] == "left_only").to_numpy()]
    if new.empty:
        raise RetrainRefused(
            "no new labelled predictions to retrain on: send ground truth (POST /feedback, "
            "`modelfactory feedback`) or set the monitor's retrain source to a data file"
        )
    return pd.concat([old, new], ignore_index=True)


def write_training_file(frame: pd.DataFrame, write, folder: Path, file_name: str) -> Path:
    """``frame`` written by the use case's ``write`` under ``folder`` (a new file each time, so
    the run's ingest step keeps exactly what it trained on)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return Path(write(frame, folder / f"retrain-{stamp}-{file_name}"))


def retrainer_for(settings: Settings) -> Retrainer | None:
    """The retrainer a cluster's checks use: KFP at ``MODELFACTORY_MONITORING_KFP_HOST``; None
    when none is configured (the CLI then runs the pipeline on this machine)."""
    monitoring = settings.monitoring
    if monitoring.kfp_host:
        return KfpRetrainer(
            monitoring.kfp_host,
            monitoring.kfp_experiment,
            mlflow_secret=monitoring.kfp_mlflow_secret,
        )
    return None


@dataclass(frozen=True)
class RetrainContext:
    """What a retrain a check asks for needs: the model and its use case, where the prediction
    log and the registry are, the check's time, MLflow run and folder (a ``feedback`` training
    file is written there and logged on the run)."""

    model: str
    case: UseCase
    settings: RetrainSettings
    registry: Registry
    store_url: str
    now: dt.datetime
    run: CheckRun
    folder: Path


def start_retrain(
    context: RetrainContext,
    reason: str,
    retrainer: Retrainer | None,
    on_event: Callable[[str, Any], None] = lambda kind, value: None,
) -> RetrainRun:
    """Start the retraining run the policy asked for, recording it on the check's run; raises
    (after recording why on the run) when it cannot start."""
    run, stamp = context.run, int(context.now.timestamp() * 1000)
    try:
        if retrainer is None:
            raise RetrainRefused(
                "no way to run the pipeline: set MODELFACTORY_MONITORING_KFP_HOST on a cluster, "
                "or run `modelfactory drift run` on this machine"
            )
        source, split = _training_source(context)
        request = RetrainRequest(
            context.case.name,
            context.model,
            reason,
            source,
            {**split, **context.settings.parameters},
        )
        on_event("retrain", request)
        started = retrainer.submit(request)
    except Exception as exc:
        run.log(
            {"retrain.error": f"{type(exc).__name__}: {exc}", "retrain.reason": reason}, {}, stamp
        )
        raise
    run.log(
        {
            "retrain.run_id": started.run_id,
            "retrain.reason": reason,
            "retrain.where": started.where,
            "retrain.url": started.url,
            "retrain.version": started.version,
            "retrain.promoted": None if started.promoted is None else str(started.promoted).lower(),
            "retrain.alias": started.alias,
            "retrain.source": request.source,
        },
        {},
        stamp,
    )
    return started


def _training_source(context: RetrainContext) -> tuple[str, dict[str, Any]]:
    """The path or URL the retraining run ingests, and the split arguments it needs.

    The configured source as it is; or (``feedback``) the champion's training data followed by
    the recently labelled predictions in the order they were logged, written under the check's
    folder and logged on its MLflow run (whose artifact URL a cluster's pipeline can download).
    Such a file is split in file order so that the holdout is the newest half of the labelled
    predictions: rows the champion never saw, so the gate compares both versions fairly (a
    random holdout would hold the champion's own training rows), while the new version learns
    from the older half.
    """
    source = context.settings.source
    if source != FEEDBACK_SOURCE:
        return source, {}
    case, run = context.case, context.run
    spec = case.monitoring
    if spec is None or spec.training_rows is None:
        raise RetrainRefused(
            f"the {case.name} use case cannot learn from its prediction log: set the monitor's "
            "retrain source to a data file"
        )
    champion = champion_figures(context.registry, context.model)
    window = Window.recent(context.model, context.settings.labelled_since, context.now)
    labelled = read_labelled(context.store_url, window, spec.logged).sort_values("id")
    previous = training_data(champion)
    new_rows = spec.training_rows(labelled)
    combined = training_from_feedback(previous, new_rows, list(new_rows.columns))
    path = write_training_file(combined, case.data.write, context.folder, case.data.file_name)
    name = "retrain_" + case.data.file_name
    run.log_files({name: path})
    remote = run.tracking_uri.startswith(("http://", "https://")) and not _on_this_machine(run)
    where = run.artifact_url(name) if remote else str(path.resolve())
    holdout = max(1, (len(combined) - len(previous)) // 2)
    split = {"split_strategy": "sequential", "holdout_fraction": holdout / len(combined)}
    return where, {k: v for k, v in split.items() if k in pipeline_parameters(case.name)}


def _on_this_machine(run: CheckRun) -> bool:
    """Whether the tracking server runs on this machine (then the file itself is readable)."""
    host = run.tracking_uri.split("://", 1)[1].split("/", 1)[0].split(":")[0]
    return host in ("127.0.0.1", "localhost", "::1")
