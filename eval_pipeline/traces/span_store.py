"""Span and event records kept small while the input streams in.

A span cannot be read until the input ends (an event record for it may come later), so each checked record is
kept in a compact form instead of as its parsed JSON: pickled (exact: a tuple stays a tuple, ``1`` stays an int)
into large blocks of bytes, with only an integer reference kept per record; resource attributes, which every span
of a service repeats, are kept once. A block is released as soon as every record in it has been read, so while
spans are read (in about the order they came) the store shrinks as the table grows. A value that cannot be pickled
is kept as it is. Blocks are not containers: the garbage collector never walks them.
"""

from __future__ import annotations

import pickle
from typing import Any

from eval_pipeline.traces.scopes.record import EventRecord

BLOCK_BYTES = 8 * 2**20
_PROTOCOL = pickle.HIGHEST_PROTOCOL
_OFFSET_BITS = 40


class _Kept:
    """A value that could not be pickled, kept as it is."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class RecordStore:
    """Values packed into blocks; ``put`` gives a reference, ``take`` the value back, once."""

    def __init__(self, block_bytes: int = BLOCK_BYTES) -> None:
        self.block_bytes = block_bytes
        self._blocks: list[bytearray | None] = []
        self._live: list[int] = []
        self._used = 0

    def put(self, value: Any) -> int | _Kept:
        try:
            data = pickle.dumps(value, protocol=_PROTOCOL)
        except Exception:  # kept as it is
            return _Kept(value)
        size = len(data)
        if not self._blocks or self._used + size > len(self._blocks[-1] or b""):
            self._blocks.append(bytearray(max(self.block_bytes, size)))
            self._live.append(0)
            self._used = 0
        index = len(self._blocks) - 1
        block = self._blocks[index]
        assert block is not None
        block[self._used:self._used + size] = data
        reference = (index << _OFFSET_BITS) | self._used
        self._used += size
        self._live[index] += 1
        return reference

    def take(self, reference: int | _Kept) -> Any:
        """The value put under ``reference``; its block is released when nothing in it is left to take."""
        if isinstance(reference, _Kept):
            return reference.value
        index, offset = reference >> _OFFSET_BITS, reference & ((1 << _OFFSET_BITS) - 1)
        block = self._blocks[index]
        assert block is not None
        value = pickle.loads(memoryview(block)[offset:])  # what follows the value's pickle is ignored
        self._live[index] -= 1
        if self._live[index] == 0 and index != len(self._blocks) - 1:
            self._blocks[index] = None
        return value

    @property
    def held_bytes(self) -> int:
        """The size of the blocks still held."""
        return sum(len(block) for block in self._blocks if block is not None)


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


def event_value(event: EventRecord) -> tuple[Any, ...]:
    """What is stored of an event record."""
    return (event.name, event.time_ns, event.attributes, event.body)


def event_of(value: tuple[Any, ...]) -> EventRecord:
    name, time_ns, attributes, body = value
    return EventRecord(name=name, time_ns=time_ns, attributes=attributes, body=body)
