"""A window of the prediction log, read in chunks and never the whole table.

A :class:`Window` says which logged predictions a check reads: one model's (optionally one
version's) ``served`` rows in a time range, or its newest N rows. :func:`read_window` reads
them through SQLAlchemy a chunk at a time and keeps only the values monitoring compares, each
column typed as it is read (numbers as float64, categories as codes), so memory follows the
rows kept, not the rows scanned.

A window holding more than ``max_rows`` rows is sampled: the ids of its rows are scanned first
(8 bytes a row), ``max_rows`` of them are drawn uniformly without replacement (seeded, so a
check can be repeated), and only those rows are fetched and decoded. The drift methods compare
distributions, so a uniform sample of 200,000 rows answers as the full window does except where
a score sits at its threshold; docs/adr/0008-drift-checks.md measures how often.

The window is pinned to the rows that existed when it was scanned (``id <=`` the largest id
seen): rows that serving logs while a check runs wait for the next check.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from pandas.api.types import union_categoricals

from modelfactory.durations import parse_duration
from modelfactory.predictions.store import predictions_table
from modelfactory.sql import engine as store_engine
from modelfactory.timestamps import utc
from modelfactory.use_case import LoggedColumn

_FETCH_BY_ID = 5000  # sampled ids per query (sqlite binds at most 32766 parameters)


@dataclass(frozen=True)
class Window:
    """Which logged predictions a check reads: ``model_name``'s ``role`` rows (of ``version``
    when given) logged in [``since``, ``until``), or the newest ``last_rows`` of them."""

    model_name: str
    version: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    last_rows: int | None = None
    role: str = "served"

    def __post_init__(self):
        if self.last_rows is not None and self.last_rows < 1:
            raise ValueError(f"last_rows must be at least 1, got {self.last_rows}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, utc(value))
        if self.since and self.until and self.since >= self.until:
            raise ValueError(f"the window is empty: since {self.since} is not before {self.until}")

    @classmethod
    def recent(
        cls,
        model_name: str,
        since: str | dt.timedelta,
        now: dt.datetime,
        version: str | None = None,
    ) -> Window:
        """The last ``since`` (a duration such as '24h') before ``now``."""
        span = parse_duration(since) if isinstance(since, str) else since
        return cls(model_name, version, since=utc(now) - span, until=utc(now))

    def describe(self) -> str:
        who = f"{self.model_name}" + (f" v{self.version}" if self.version else "")
        if self.last_rows:
            what = f"newest {self.last_rows} {self.role} rows"
        else:
            what = f"{self.role} rows"
        when = ""
        if self.since or self.until:
            start = self.since.strftime("%Y-%m-%dT%H:%MZ") if self.since else "start"
            end = self.until.strftime("%Y-%m-%dT%H:%MZ") if self.until else "now"
            when = f" logged {start}..{end}"
        return f"{who}: {what}{when}"

    def conditions(self) -> list:
        table = predictions_table
        where = [table.c.model_name == self.model_name, table.c.role == self.role]
        if self.version:
            where.append(table.c.model_version == self.version)
        if self.since:
            where.append(table.c.created_at >= self.since)
        if self.until:
            where.append(table.c.created_at < self.until)
        return where


@dataclass
class LoggedWindow:
    """What a check read: ``frame`` holds one row per prediction read (``id``,
    ``model_version``, optionally ``request_id``, then the logged columns), ``rows`` how many
    the window holds (``read`` < ``rows`` when it was sampled)."""

    window: Window
    frame: pd.DataFrame
    rows: int
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    columns: tuple[LoggedColumn, ...] = field(default_factory=tuple)

    @property
    def read(self) -> int:
        return len(self.frame)

    @property
    def sampled(self) -> bool:
        return self.read < self.rows


def read_window(
    url_or_engine: str | sa.Engine,
    window: Window,
    columns: Sequence[LoggedColumn],
    max_rows: int | None = 200_000,
    chunk_rows: int = 20_000,
    seed: int = 0,
    request_ids: bool = False,
) -> LoggedWindow:
    """Read ``columns`` of the rows ``window`` holds (a uniform sample of ``max_rows`` of them
    when it holds more; ``None``: every row)."""
    engine = store_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    table = predictions_table
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(table.name):
                return _empty(window, columns, request_ids)
            where = window.conditions()
            if (
                window.last_rows
            ):  # ids grow with time: the newest N start at the Nth id from the end
                boundary = connection.execute(
                    sa.select(table.c.id)
                    .where(*where)
                    .order_by(table.c.id.desc())
                    .offset(window.last_rows - 1)
                    .limit(1)
                ).scalar()
                if boundary is not None:
                    where.append(table.c.id >= boundary)
            ids = _scan_ids(connection, where, chunk_rows)
            if not len(ids):
                return _empty(window, columns, request_ids)
            where.append(table.c.id <= int(ids.max()))  # the rows that existed when scanned
            selected = [
                table.c.id,
                table.c.model_version,
                table.c.created_at,
                sa.cast(table.c.features, sa.Text),
                sa.cast(table.c.output, sa.Text),
            ]
            if request_ids:
                selected.append(table.c.request_id)
            if max_rows is not None and len(ids) > max_rows:
                chosen = np.sort(np.random.default_rng(seed).choice(ids, max_rows, replace=False))
                batches: Iterable = (
                    connection.execute(
                        sa.select(*selected).where(
                            table.c.id.in_(chosen[start : start + _FETCH_BY_ID].tolist())
                        )
                    ).all()
                    for start in range(0, len(chosen), _FETCH_BY_ID)
                )
            else:
                result = connection.execution_options(yield_per=chunk_rows).execute(
                    sa.select(*selected).where(*where)
                )
                batches = result.partitions()
            decoded = RowDecoder(columns, request_ids)
            for batch in batches:
                decoded.add(batch)
            frame, first, last = decoded.frame()
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()
    return LoggedWindow(window, frame, int(len(ids)), first, last, tuple(columns))


def _scan_ids(connection: sa.Connection, where: list, chunk_rows: int) -> np.ndarray:
    result = connection.execution_options(yield_per=max(chunk_rows, 50_000)).execute(
        sa.select(predictions_table.c.id).where(*where)
    )
    parts = [np.fromiter((row[0] for row in part), dtype=np.int64) for part in result.partitions()]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def _empty(window: Window, columns: Sequence[LoggedColumn], request_ids: bool) -> LoggedWindow:
    frame, _, _ = RowDecoder(columns, request_ids).frame()
    return LoggedWindow(window, frame, 0, None, None, tuple(columns))


class RowDecoder:
    """Chunks of (id, version, created_at, features JSON, output JSON[, request_id[, actual
    JSON]]) rows into typed columns: float64 numbers, categoricals, or decoded JSON objects
    (``actual``, the ground truth, is decoded JSON)."""

    def __init__(self, columns: Sequence[LoggedColumn], request_ids: bool, actual: bool = False):
        self.columns = list(columns)
        self.request_ids = request_ids
        self.actual = actual
        self.parts: dict[str, list] = {
            name: [] for name in ("id", "model_version", "request_id", *(c.name for c in columns))
        }
        if actual:
            self.parts["actual"] = []
        self.first: dt.datetime | None = None
        self.last: dt.datetime | None = None

    def add(self, rows: Sequence) -> None:
        if not rows:
            return
        features = [orjson.loads(row[3]) for row in rows]
        outputs = [orjson.loads(row[4]) for row in rows]
        self.parts["id"].append(np.fromiter((row[0] for row in rows), dtype=np.int64))
        self.parts["model_version"].append(pd.Categorical([row[1] for row in rows]))
        if self.request_ids:
            self.parts["request_id"].append(np.array([row[5] for row in rows], dtype=object))
        if self.actual:
            actuals = [orjson.loads(row[6]) for row in rows]
            self.parts["actual"].append(np.array(actuals + [None], dtype=object)[:-1])
        times = [row[2] for row in rows]
        first, last = utc(min(times)), utc(max(times))
        self.first = first if self.first is None else min(self.first, first)
        self.last = last if self.last is None else max(self.last, last)
        for column in self.columns:
            source = features if column.source == "features" else outputs
            values = [_get(item, column.name) for item in source]
            if column.kind == "number":
                self.parts[column.name].append(_numbers(values))
            elif column.kind == "category":
                self.parts[column.name].append(
                    pd.Categorical([None if v is None else str(v) for v in values])
                )
            else:
                self.parts[column.name].append(np.array(values + [None], dtype=object)[:-1])

    def frame(self) -> tuple[pd.DataFrame, dt.datetime | None, dt.datetime | None]:
        data: dict[str, object] = {}
        for name, parts in self.parts.items():
            if name == "request_id" and not self.request_ids:
                continue
            if not parts:
                kind = next((c.kind for c in self.columns if c.name == name), "json")
                dtype = {"number": "float64", "category": "category"}.get(kind, "object")
                data[name] = pd.Series([], dtype="int64" if name == "id" else dtype)
            elif isinstance(parts[0], pd.Categorical):
                data[name] = union_categoricals(parts) if len(parts) > 1 else parts[0]
            else:
                data[name] = np.concatenate(parts)
        return pd.DataFrame(data), self.first, self.last


def _get(item, name: str):
    return item.get(name) if isinstance(item, dict) else None


def _numbers(values: list) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError):  # a string or a list where a number was expected
        return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
