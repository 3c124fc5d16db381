"""Durations as people write them in a spec or on the command line: ``90s``, ``30m``, ``1h30m``,
``7d``, ``2w``, ``1.5h``.

One grammar for every field that takes a duration (a ModelDeployment's intervals and pauses, a
DriftMonitor's windows and cooldown, the CLI's ``--since``): one or more ``<number><unit>``
parts, the units ``w`` (weeks), ``d``, ``h``, ``m`` (minutes) and ``s``, summed. :data:`PATTERN`
is the regular expression both CRDs carry (``_helpers.tpl`` writes it once; a test compares
them), so the API server refuses exactly what :func:`parse_duration` refuses.
"""

from __future__ import annotations

import datetime as dt
import re

PATTERN = r"^([0-9]+([.][0-9]+)?(w|d|h|m|s))+$"
_WHOLE = re.compile(PATTERN)
_PART = re.compile(r"([0-9]+(?:[.][0-9]+)?)(w|d|h|m|s)")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
EXAMPLES = "90s, 30m, 1h30m, 24h, 7d"


def parse_duration(text: str) -> dt.timedelta:
    """``text`` as a timedelta; ValueError naming the text and the grammar otherwise."""
    if not isinstance(text, str) or not _WHOLE.match(text):
        raise ValueError(
            f"{text!r} is not a duration: write numbers with units w, d, h, m or s, e.g. {EXAMPLES}"
        )
    span = dt.timedelta()
    for number, unit in _PART.findall(text):
        span += dt.timedelta(**{_UNITS[unit]: float(number)})
    return span


def seconds(value: str | int | float) -> float:
    """A duration field that may also be a plain number of seconds (``progressDeadlineSeconds``,
    a pause of ``120``); ValueError for a negative number or text outside the grammar."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value:g} is negative")
        return float(value)
    return parse_duration(value).total_seconds()


def describe(span: dt.timedelta) -> str:
    """45m, 3h, 2.5h, 3d: minutes under an hour, hours under two days, then days."""
    total = max(int(span.total_seconds()), 0)
    if total < 3600:
        return f"{total // 60}m"
    if total < 2 * 86400:
        return f"{total / 3600:.1f}".removesuffix(".0") + "h"
    return f"{total / 86400:.1f}".removesuffix(".0") + "d"
