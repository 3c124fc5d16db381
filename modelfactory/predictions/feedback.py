"""Ground truth for logged predictions, stored beside the prediction log by request id.

``POST /feedback`` on every served model and ``modelfactory feedback MODEL --data actuals.csv``
both come here. An item is ``{"request_id": "abc", "actual": "yes"}``; ``"record": 2`` names
the third record of a request that sent several (default 0, the first). A body is one item or
a list of them.

Nothing is stored unless every item is good, so a refused batch leaves the table as it was:

- items that cannot be read (a missing field, a value the use case does not accept, a record
  that is not a non-negative integer) raise :class:`InvalidFeedback` naming each one
  (``[3].actual: expected "yes" or "no" ...``): a 422;
- request ids this model's log does not hold as served predictions, or records beyond the
  request's, raise :class:`UnknownRequests` naming them: a 404;
- otherwise every item is written in one transaction. A repeated item (same request id and
  record) replaces the earlier value, so a corrected label is never counted twice.

A prediction reaches the log within about a second of its answer (the writer process batches
rows), so feedback sent at once may find its request id unknown: send it again later. Request
ids are looked up in the log's (model, request id) index (ADR 0002).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from modelfactory.errors import ModelFactoryError
from modelfactory.predictions.store import create_tables, feedback_table, predictions_table
from modelfactory.sql import engine as store_engine

MAX_REQUEST_ID = 64  # the prediction log's request_id column
_FIELDS = {"request_id", "actual", "record"}
_LOOKUP_CHUNK = 5000  # request ids per lookup query (sqlite binds at most 32766 parameters)


class InvalidFeedback(ModelFactoryError):
    """Items that cannot be read; ``problems`` name each one (``[3].actual: ...``)."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        shown = "; ".join(self.problems[:20])
        more = f" (and {len(self.problems) - 20} more)" if len(self.problems) > 20 else ""
        super().__init__(f"invalid feedback: {shown}{more}")


class UnknownRequests(ModelFactoryError):
    """Request ids (or records of them) the model's log does not hold; ``problems`` name each."""

    def __init__(self, model_name: str, problems: Sequence[str]):
        self.problems = list(problems)
        shown = "; ".join(self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"no logged prediction of {model_name} for {shown}{more}")


@dataclass(frozen=True)
class FeedbackItem:
    request_id: str
    record: int
    actual: Any


def parse_feedback(
    body: Any, check_actual: Callable[[Any], Any], max_items: int = 10_000
) -> list[FeedbackItem]:
    """The items of a feedback body (one object or a list), each ``actual`` as
    ``check_actual`` returns it; raises InvalidFeedback naming every item at fault.

    ``check_actual`` raises ValueError saying what is wrong; a message starting ``[3]: `` names
    a part of the value (``actual[3]: ...``)."""
    single = isinstance(body, Mapping)
    items = [body] if single else body
    if not isinstance(items, list) or not items:
        raise InvalidFeedback(
            ['body: expected {"request_id": ..., "actual": ...} or a non-empty list of them']
        )
    if len(items) > max_items:
        raise InvalidFeedback(
            [f"body: {len(items)} items; at most {max_items} per request, send the rest apart"]
        )
    parsed, problems = [], []
    for position, item in enumerate(items):
        where = "" if single else f"[{position}]."
        if not isinstance(item, Mapping):
            problems.append(
                f"{where.rstrip('.') or 'body'}: expected an object, got {_shown(item)}"
            )
            continue
        found = len(problems)
        for extra in sorted(set(item) - _FIELDS, key=str):
            problems.append(f"{where}{extra}: unknown field (expected request_id, actual, record)")
        request_id = item.get("request_id")
        if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID:
            problems.append(
                f"{where}request_id: expected the x-request-id of a prediction (1-{MAX_REQUEST_ID}"
                f" characters), got {_shown(request_id)}"
            )
        record = item.get("record", 0)
        if isinstance(record, bool) or not isinstance(record, int) or record < 0:
            problems.append(f"{where}record: expected an integer >= 0, got {_shown(record)}")
        if "actual" not in item:
            problems.append(f"{where}actual: missing")
            continue
        try:
            actual = check_actual(item["actual"])
        except ValueError as exc:  # "[3]: ..." names a part of the value: actual[3]
            text = str(exc)
            problems.append(f"{where}actual{text if text.startswith('[') else ': ' + text}")
            continue
        if len(problems) == found:
            parsed.append(FeedbackItem(request_id, record, actual))  # type: ignore[arg-type]
    if problems:
        raise InvalidFeedback(problems)
    return parsed


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 40 else text[:37] + "..."


class FeedbackStore:
    """Writes one model's ground truth into the prediction store at ``url`` (tables created
    when missing)."""

    def __init__(self, url: str, model_name: str):
        self.url = url
        self.model_name = model_name
        self._engine: sa.Engine | None = None

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            created = store_engine(self.url)
            create_tables(created, [predictions_table, feedback_table])
            self._engine = created
        return self._engine

    def record(self, items: Sequence[FeedbackItem], now: dt.datetime | None = None) -> dict:
        """Store ``items`` (all or none): ``{"stored": n, "replaced": m}``; raises UnknownRequests
        naming what the log does not hold."""
        latest = {(item.request_id, item.record): item for item in items}  # repeated: last wins
        with self.engine.begin() as connection:
            records = self._records_per_request(connection, {key[0] for key in latest})
            unknown = [
                f"request_id '{request_id}'"
                if request_id not in records
                else f"request_id '{request_id}' record {record} (it has {records[request_id]})"
                for request_id, record in latest
                if records.get(request_id, 0) <= record
            ]
            if unknown:
                raise UnknownRequests(self.model_name, unknown)
            replaced = self._existing(connection, list(latest))
            received = now or dt.datetime.now(dt.UTC)
            connection.execute(
                _upsert(connection.dialect.name),
                [
                    {
                        "model_name": self.model_name,
                        "request_id": request_id,
                        "record": record,
                        "actual": item.actual,
                        "received_at": received,
                    }
                    for (request_id, record), item in latest.items()
                ],
            )
        return {"stored": len(latest), "replaced": replaced}

    def _records_per_request(self, connection: sa.Connection, ids: set[str]) -> dict[str, int]:
        """Served rows logged per request id, for the ids the log holds."""
        table, found = predictions_table, {}
        ordered = sorted(ids)
        for start in range(0, len(ordered), _LOOKUP_CHUNK):
            query = (
                sa.select(table.c.request_id, sa.func.count())
                .where(
                    table.c.model_name == self.model_name,
                    table.c.role == "served",
                    table.c.request_id.in_(ordered[start : start + _LOOKUP_CHUNK]),
                )
                .group_by(table.c.request_id)
            )
            found.update({request_id: int(n) for request_id, n in connection.execute(query)})
        return found

    def _existing(self, connection: sa.Connection, keys: list[tuple[str, int]]) -> int:
        table, existing = feedback_table, 0
        ids = sorted({request_id for request_id, _ in keys})
        wanted = set(keys)
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            query = sa.select(table.c.request_id, table.c.record).where(
                table.c.model_name == self.model_name,
                table.c.request_id.in_(ids[start : start + _LOOKUP_CHUNK]),
            )
            existing += sum(1 for row in connection.execute(query) if tuple(row) in wanted)
        return existing

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _upsert(dialect: str):
    """INSERT ... ON CONFLICT (model, request, record) DO UPDATE, in the store's dialect."""
    from sqlalchemy.dialects import postgresql, sqlite

    inserts = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
    if dialect not in inserts:
        raise ModelFactoryError(
            f"feedback needs a sqlite or PostgreSQL prediction store, not {dialect}"
        )
    statement: Any = inserts[dialect](feedback_table)
    return statement.on_conflict_do_update(
        index_elements=[
            feedback_table.c.model_name,
            feedback_table.c.request_id,
            feedback_table.c.record,
        ],
        set_={
            "actual": statement.excluded.actual,
            "received_at": statement.excluded.received_at,
        },
    )
