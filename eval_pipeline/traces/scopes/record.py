"""What a scope reader reads (a span record with its span events and joined event records) and what it returns
(the span's fields in our names)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from eval_pipeline.data.messages import ChatMessage


@dataclass(frozen=True)
class SpanEvent:
    """One entry of a span record's ``events`` (``{name, timeUnixNano, attributes}``)."""

    name: str
    time_ns: int | None
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class EventRecord:
    """One event (log) record joined to the span by (traceId, spanId): ``attributes["event.name"]`` and a
    ``body`` (ADOT's ``{input: {messages}, output: {messages}}`` or a GenAI event's own body)."""

    name: str | None
    time_ns: int | None
    attributes: Mapping[str, Any]
    body: Any


@dataclass
class SpanRecord:
    """A span record as a reader sees it. Readers note what they could not read in ``problems`` (it becomes the
    span's ``error``) instead of raising."""

    name: str
    scope: str | None
    attributes: Mapping[str, Any]
    resource: Mapping[str, Any]
    parent_id: str | None
    events: tuple[SpanEvent, ...] = ()
    records: tuple[EventRecord, ...] = ()
    problems: list[str] = field(default_factory=list)

    def note(self, problem: str) -> None:
        """Record something that could not be read (once)."""
        if problem not in self.problems:
            self.problems.append(problem)

    def attr(self, *keys: str) -> Any:
        """The first of ``keys`` present (not None, not empty text) in the span's attributes."""
        for key in keys:
            value = self.attributes.get(key)
            if value is not None and value != "":
                return value
        return None


@dataclass(frozen=True)
class Payload:
    """A message payload found somewhere on the span, before it is decoded: the value as recorded and the role
    it has when it does not say (``user`` on the input side, ``assistant`` on the output side)."""

    value: Any
    role: str
    origin: str
    """Where it was found (an attribute name, ``event gen_ai.choice``, ``event record``): named in problems."""


Side = Literal["input", "output"]


@dataclass
class SpanReading:
    """A span's fields as a scope reader reads them; None where the reader does not know."""

    kind: str | None = None
    session_id: str | None = None
    operation: str | None = None
    input: list[ChatMessage] | None = None
    output: list[ChatMessage] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None
    tool_args: str | None = None
    tool_result: str | None = None
    available_tools: list[str] | None = None
    model: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    has_body: bool = False
