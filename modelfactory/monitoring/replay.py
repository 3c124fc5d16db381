"""A replay before live traffic: the challenger predicts the champion's most recent logged
requests offline, off the serving path, and is measured against what the champion answered.

:func:`replay` reads the champion's newest ``last_requests`` served records logged since
``since`` (one indexed range of the prediction log) and their ground truth where it arrived,
loads both versions as serving loads them (the compiled twin and its parity check included),
and measures the challenger: records it refuses or fails on, agreement with the champion's
logged answers (the use case's own ``agrees``, as shadow traffic is compared), the latency of one
record per call beside the champion's on the same records, and both versions' realized figures
on the labelled records (the use case's monitoring ``performance``, as a drift check computes
them). Nothing is written to the prediction log: these answers were never served.

The result is a :class:`~modelfactory.rollout.replay.ReplayResult`; the rollout judges it
(:func:`~modelfactory.rollout.replay.judge_replay`). A challenger that cannot be loaded or fails
on every record is a result with a ``problem`` (it fails the replay); a prediction log or a
registry that cannot be read raises (the rollout holds and says why).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa

from modelfactory.config import Settings
from modelfactory.inference.schema import InvalidInput
from modelfactory.inference.served import ServedModel
from modelfactory.monitoring.reference import version_figures
from modelfactory.monitoring.window import RowDecoder
from modelfactory.predictions.store import feedback_table, predictions_table
from modelfactory.registry import Registry
from modelfactory.rollout.replay import ReplayResult
from modelfactory.sql import engine as store_engine
from modelfactory.use_case import UseCase

CHUNK = 2_000  # records per predict call
LATENCY_SAMPLE = 200  # records timed one per call, for each version
_LOOKUP = 5_000  # request ids per ground-truth query


@dataclass
class Logged:
    """The champion's logged records, newest last: what it was asked and what it answered."""

    ids: list[int]
    request_ids: list[str | None]
    records: list[dict[str, Any]]  # the features
    answers: list[dict[str, Any]]  # the champion's outputs
    actual: list[Any]  # ground truth (None: none arrived)


def replay(
    case: UseCase,
    model: str,
    champion: str | None,
    challenger: str,
    last_requests: int,
    since: dt.datetime,
    *,
    store_url: str,
    tracking_uri: str,
    settings: Settings,
) -> ReplayResult:
    started = time.perf_counter()
    if case.serving is None or case.monitoring is None:
        raise ValueError(f"the {case.name} use case serves nothing to replay")
    logged = read_logged(store_url, model, champion, last_requests, since)
    result = ReplayResult(challenger, champion, last_requests, rows=len(logged.records))
    if not logged.records:
        return _done(result, started)
    registry = Registry(tracking_uri)
    try:
        ours = case.serving.load(model, challenger, tracking_uri, settings)
    except Exception as exc:  # the challenger itself: a replay it fails
        result.problem = f"v{challenger} cannot be loaded: {type(exc).__name__}: {exc}"
        return _done(result, started)
    answers, refused, errors = predict_all(ours, logged.records)
    result.refused, result.errors = refused, errors
    answered = [i for i, answer in enumerate(answers) if answer is not None]
    if not answered:
        result.problem = f"v{challenger} answered none of {len(logged.records)} records"
        return _done(result, started)
    given = [answer for answer in answers if answer is not None]
    agreed = ours.agrees(given, [logged.answers[i] for i in answered])
    result.compared, result.agreed = len(answered), int(sum(agreed))
    theirs = case.serving.load(model, champion, tracking_uri, settings) if champion else None
    result.latency_p99_ms, result.champion_latency_p99_ms = latencies(
        ours, theirs, [logged.records[i] for i in answered]
    )
    labelled = [i for i in answered if logged.actual[i] is not None]
    result.labelled = len(labelled)
    if labelled:
        _realized(result, case, registry, model, champion, challenger, logged, answers, labelled)
    return _done(result, started)


def read_logged(
    store_url: str, model: str, champion: str | None, last_requests: int, since: dt.datetime
) -> Logged:
    """The champion's newest ``last_requests`` served records logged since ``since``, oldest
    first, with the ground truth that arrived for them."""
    engine = store_engine(store_url)
    table, truth = predictions_table, feedback_table
    try:
        with engine.connect() as connection:
            if champion is None or not sa.inspect(connection).has_table(table.name):
                return Logged([], [], [], [], [])
            newest = (
                sa.select(
                    table.c.id,
                    table.c.request_id,
                    sa.cast(table.c.features, sa.Text).label("features"),
                    sa.cast(table.c.output, sa.Text).label("output"),
                )
                .where(
                    table.c.model_name == model,
                    table.c.model_version == champion,
                    table.c.created_at >= since,
                    table.c.role == "served",
                )
                .order_by(table.c.id.desc())
                .limit(last_requests)
            )
            rows = list(connection.execute(newest))[::-1]
            logged = Logged(
                [row.id for row in rows],
                [row.request_id for row in rows],
                [orjson.loads(row.features) for row in rows],
                [orjson.loads(row.output) for row in rows],
                [None] * len(rows),
            )
            _join_truth(connection, truth, model, logged)
            return logged
    finally:
        engine.dispose()


def _join_truth(connection: sa.Connection, truth: sa.Table, model: str, logged: Logged) -> None:
    """Each record's ground truth: by its request id and its position within the request (the
    records of one request are logged in order, as /feedback numbers them)."""
    if not sa.inspect(connection).has_table(truth.name):
        return
    position: dict[tuple[str, int], int] = {}
    seen: dict[str, int] = {}
    for index, request_id in enumerate(logged.request_ids):
        if request_id is None:
            continue
        record = seen.get(request_id, 0)
        seen[request_id] = record + 1
        position[(request_id, record)] = index
    ids = sorted(seen)
    for start in range(0, len(ids), _LOOKUP):
        query = sa.select(truth.c.request_id, truth.c.record, truth.c.actual).where(
            truth.c.model_name == model, truth.c.request_id.in_(ids[start : start + _LOOKUP])
        )
        for request_id, record, actual in connection.execute(query):
            at = position.get((request_id, record))
            if at is not None:
                logged.actual[at] = actual


def predict_all(
    model: ServedModel, records: Sequence[Mapping[str, Any]]
) -> tuple[list[dict | None], int, int]:
    """Every record's answer (None where refused or failed), and how many were refused and
    failed; a chunk that raises is answered record by record, so one bad record costs one."""
    answers: list[dict | None] = []
    refused = errors = 0
    for start in range(0, len(records), CHUNK):
        chunk = records[start : start + CHUNK]
        try:
            answers.extend(model.predict(list(chunk)))
            continue
        except Exception:  # which records: one at a time
            pass
        for record in chunk:
            try:
                answers.extend(model.predict([record]))
            except InvalidInput:
                refused += 1
                answers.append(None)
            except Exception:
                errors += 1
                answers.append(None)
    return answers, refused, errors


def latencies(
    ours: ServedModel, theirs: ServedModel | None, records: Sequence[Mapping[str, Any]]
) -> tuple[float | None, float | None]:
    """The p99 of one record per call, in ms, for both versions on the same records (taken in
    turn, so both meet the same machine)."""
    sample = list(records[-LATENCY_SAMPLE:])
    if not sample:
        return None, None
    timed: dict[str, list[float]] = {"ours": [], "theirs": []}
    for record in sample:
        for who, model in (("ours", ours), ("theirs", theirs)):
            if model is None:
                continue
            started = time.perf_counter()
            try:
                model.predict([record])
            except Exception:
                continue
            timed[who].append((time.perf_counter() - started) * 1000)

    def p99(values: list[float]) -> float | None:
        return float(np.percentile(values, 99)) if values else None

    return p99(timed["ours"]), p99(timed["theirs"])


def _realized(
    result: ReplayResult,
    case: UseCase,
    registry: Registry,
    model: str,
    champion: str | None,
    challenger: str,
    logged: Logged,
    answers: Sequence[dict | None],
    labelled: Sequence[int],
) -> None:
    """Both versions' realized figures on the labelled records: the champion's from what it
    answered, the challenger's from what it would have answered."""
    spec = case.monitoring
    assert spec is not None

    def frame(version: str, outputs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        decoder = RowDecoder(spec.logged, request_ids=True, actual=True)
        moment = dt.datetime.now(dt.UTC)
        decoder.add(
            [
                (
                    logged.ids[i],
                    version,
                    moment,
                    orjson.dumps(logged.records[i]),
                    orjson.dumps(outputs[n]),
                    logged.request_ids[i],
                    orjson.dumps(logged.actual[i]),
                )
                for n, i in enumerate(labelled)
            ]
        )
        return decoder.frame()[0]

    ours = [answers[i] for i in labelled]
    mine = frame(challenger, [a for a in ours if a is not None])
    figures, _ = spec.performance(mine, version_figures(registry, model, challenger), 0.0)
    result.realized = _finite(figures)
    if "accuracy" in figures and figures["accuracy"] == figures["accuracy"]:
        result.correct = round(figures["accuracy"] * len(labelled))
    if champion is not None:
        theirs = frame(champion, [logged.answers[i] for i in labelled])
        figures, _ = spec.performance(theirs, version_figures(registry, model, champion), 0.0)
        result.champion_realized = _finite(figures)


def _finite(figures: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in figures.items() if v == v and not k.startswith("store_")}


def _done(result: ReplayResult, started: float) -> ReplayResult:
    result.seconds = time.perf_counter() - started
    result.finished_at = time.time()
    return result
