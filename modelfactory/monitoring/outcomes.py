"""Outcomes during a rollout: the ground truth of the answers each version gave since the
rollout began, as the rollout's ``realized-*`` metrics and ``awaitOutcomes`` steps read them.

:func:`rollout_outcomes` joins the prediction log's rows of the rollout's period (the champion's
answers, the challenger's canary answers and its shadow predictions) with the ``feedback``
table, in SQL and a chunk at a time (:func:`~modelfactory.monitoring.performance.read_labelled`:
the period is one range of the log's (model, version, time) index, and each label is found by
its request id in the log's (model, request id) index), and hands each version's labelled rows
to the use case's ``performance``, as a drift check does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd

from modelfactory.monitoring.performance import read_labelled
from modelfactory.monitoring.reference import VersionFigures, version_figures
from modelfactory.monitoring.window import Window
from modelfactory.registry import Registry
from modelfactory.rollout.actions import VersionOutcome
from modelfactory.use_case import UseCase


def rollout_outcomes(
    case: UseCase,
    model: str,
    versions: Sequence[str],
    since: dt.datetime,
    *,
    store_url: str,
    registry: Registry,
) -> dict[str, VersionOutcome]:
    """Per version (of ``versions``), its labelled answers since ``since`` and their realized
    figures; a version with no labelled answer is absent."""
    spec = case.monitoring
    if spec is None:
        raise ValueError(f"the {case.name} use case logs no predictions to judge")
    now = dt.datetime.now(dt.UTC)
    parts = [
        read_labelled(
            store_url, Window(model, version, since=since, until=now, role=role), spec.logged
        )
        for version in versions
        for role in ("served", "shadow")
    ]
    labelled = (
        pd.concat([p for p in parts if not p.empty], ignore_index=True)
        if any(not p.empty for p in parts)
        else None
    )
    found: dict[str, VersionOutcome] = {}
    if labelled is None:
        return found
    for version, rows in labelled.groupby("model_version", observed=True, sort=True):
        figures: VersionFigures = version_figures(registry, model, str(version))
        realized, _ = spec.performance(rows.reset_index(drop=True), figures, 0.0)
        accuracy = realized.get("accuracy")
        correct = (
            round(accuracy * len(rows)) if accuracy is not None and accuracy == accuracy else None
        )
        found[str(version)] = VersionOutcome(
            labelled=len(rows),
            correct=correct,
            realized={k: float(v) for k, v in realized.items() if v == v},
        )
    return found
