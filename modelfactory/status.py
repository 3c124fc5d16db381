"""One way to write what a resource's status, a check's record or a step's result holds: plain
dataclasses in, the camelCase mappings the CRDs use out, and back.

A dataclass marked :func:`camel_case` is written by :func:`to_status` with its field names in
camelCase (``successful_in_a_row`` -> ``successfulInARow``), nested dataclasses, lists and
mappings as they are, times as RFC 3339 (:mod:`modelfactory.timestamps`): ``datetime`` fields,
and float fields typed :data:`EpochTime` (seconds since the epoch, which the rollout decision
computes with). :func:`from_status` reads such a mapping back, filling defaults for what it
lacks and refusing (ValueError naming the field) what does not fit. pydantic does the work
(``TypeAdapter`` over the dataclass), so the types the fields declare are the schema.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, ConfigDict, PlainSerializer, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from modelfactory.timestamps import epoch_seconds, parse, rfc3339

T = TypeVar("T")
_CAMEL = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def _seconds(value: Any) -> Any:
    return epoch_seconds(value) if isinstance(value, str) else value


def _moment(value: Any) -> Any:
    return parse(value) if isinstance(value, str) else value


# A time the code keeps as seconds since the epoch, written as RFC 3339.
EpochTime = Annotated[float, BeforeValidator(_seconds), PlainSerializer(rfc3339)]
# A datetime written as RFC 3339 in UTC (``Z``); read back aware, in UTC.
Moment = Annotated[dt.datetime, BeforeValidator(_moment), PlainSerializer(rfc3339)]


def camel_case(cls: type[T]) -> type[T]:
    """Mark a dataclass as written in camelCase by :func:`to_status`."""
    cls.__pydantic_config__ = _CAMEL  # type: ignore[attr-defined]
    return cls


_ADAPTERS: dict[type, TypeAdapter] = {}


def _adapter(cls: type) -> TypeAdapter:
    if cls not in _ADAPTERS:  # building one compiles the type's schema: once per type
        _ADAPTERS[cls] = TypeAdapter(cls)
    return _ADAPTERS[cls]


def to_status(value: Any, *, omit_none: bool = False) -> dict[str, Any]:
    """``value`` (a :func:`camel_case` dataclass) as a JSON-ready camelCase mapping;
    ``omit_none`` leaves out fields that hold None."""
    return _adapter(type(value)).dump_python(
        value, by_alias=True, mode="json", exclude_none=omit_none
    )


def from_status(cls: type[T], raw: Any) -> T:
    """A ``cls`` from the mapping :func:`to_status` wrote (None or {}: the defaults)."""
    try:
        return _adapter(cls).validate_python(raw or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or cls.__name__}: {error['msg']}"
            for error in exc.errors()
        )
        raise ValueError(f"{cls.__name__} cannot be read: {problems}") from None
