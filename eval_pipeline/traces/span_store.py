"""Span and event records kept small while the input streams in.

A span cannot be read until the input ends (an event record for it may come later), so each checked record is
kept in a compact form instead of as its parsed JSON: the few scalar fields a span needs, its attributes and span
events (and an event record's attributes and body) pickled to one ``bytes`` value, and the resource attributes,
which every span of a service repeats, kept once. Pickling is exact (a tuple stays a tuple, ``1`` stays an int);
a value that cannot be pickled is kept as it is. ``bytes`` are not containers, so the garbage collector never
walks them: holding a million records costs their size and nothing on every collection.
"""

from __future__ import annotations

import pickle
from typing import Any

from eval_pipeline.traces.scopes.record import EventRecord

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_NOTHING = pickle.dumps(None, protocol=_PROTOCOL)


def pack(value: Any) -> Any:
    """``value`` as pickle bytes (or itself, when it cannot be pickled); ``unpack`` gives it back."""
    if value is None:
        return _NOTHING
    try:
        return pickle.dumps(value, protocol=_PROTOCOL)
    except Exception:  # kept as it is
        return _Kept(value)


def unpack(packed: Any) -> Any:
    if isinstance(packed, _Kept):
        return packed.value
    return pickle.loads(packed)


class _Kept:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class PendingSpan:
    """A checked span record waiting for the end of the input: its scalar fields, its resource attributes (shared
    between spans with equal ones) and its attributes and span events packed."""

    __slots__ = ("end_ns", "line", "name", "packed", "parent_id", "resource", "scope", "source", "start_ns", "status",
                 "status_message")

    def __init__(self, *, name: str, scope: str | None, parent_id: str | None, start_ns: int | None,
                 end_ns: int | None, status: str, status_message: str | None, resource: dict[str, Any],
                 attributes: dict[str, Any], events: list[Any] | None, source: str | None,
                 line: int | None) -> None:
        self.name, self.scope, self.parent_id = name, scope, parent_id
        self.start_ns, self.end_ns, self.status, self.status_message = start_ns, end_ns, status, status_message
        self.resource, self.source, self.line = resource, source, line
        self.packed = pack((attributes, events) if attributes or events else None)

    def attributes_and_events(self) -> tuple[dict[str, Any], list[Any] | None]:
        """The span's attributes and its raw span events, as recorded."""
        value = unpack(self.packed)
        return value if value is not None else ({}, None)


PackedEvent = tuple[str | None, int | None, Any]
"""An event record kept small: its name, its time and its attributes and body packed."""


def pack_event(event: EventRecord) -> PackedEvent:
    return (event.name, event.time_ns, pack((event.attributes, event.body)))


def unpack_events(packed: list[PackedEvent]) -> tuple[EventRecord, ...]:
    """The event records, in the order they were packed."""
    records = []
    for name, time_ns, value in packed:
        attributes, body = unpack(value)
        records.append(EventRecord(name=name, time_ns=time_ns, attributes=attributes, body=body))
    return tuple(records)


class Resources:
    """Resource attribute maps, each distinct one kept once (keyed by its pickle)."""

    def __init__(self) -> None:
        self._known: dict[Any, dict[str, Any]] = {}

    def shared(self, attributes: dict[str, Any]) -> dict[str, Any]:
        if not attributes:
            return {}
        try:
            key = pickle.dumps(attributes, protocol=_PROTOCOL)
        except Exception:  # not shared
            return attributes
        return self._known.setdefault(key, attributes)
