"""Moments in time as the statuses, tags and logs write them: RFC 3339 in UTC (``...Z``).

Every status field, MLflow tag and JSON file that holds a time goes through :func:`rfc3339`
and comes back through :func:`parse`; the prediction log stores naive UTC, which :func:`utc`
reads as UTC.
"""

from __future__ import annotations

import datetime as dt


def utc(moment: dt.datetime) -> dt.datetime:
    """An aware UTC datetime (a naive one is taken as UTC, as the prediction log stores it)."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def rfc3339(moment: dt.datetime | float) -> str:
    """``2026-12-07T01:25:47Z`` (fractions of a second only when there are any); a float is
    seconds since the epoch."""
    if isinstance(moment, int | float):
        moment = dt.datetime.fromtimestamp(moment, dt.UTC)
    return utc(moment).isoformat().replace("+00:00", "Z")


def parse(text: str) -> dt.datetime:
    """An RFC 3339 time (``Z`` or an offset) as an aware UTC datetime; ValueError otherwise."""
    return utc(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))


def epoch_seconds(text: str) -> float:
    return parse(text).timestamp()
