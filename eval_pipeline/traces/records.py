"""A raw telemetry record before it is read into a ``Span``: one span or one event (log) record, in the flat JSON
shape ADOT writes to CloudWatch Logs, with where it came from.

Span record: ``{"resource": {"attributes": {...}}, "scope": {"name": ...}, "traceId", "spanId", "parentSpanId",
"name", "kind", "startTimeUnixNano", "endTimeUnixNano", "attributes": {...}, "status": {"code": ...},
"events": [...]}``. Event record: ``{"resource", "scope", "timeUnixNano", "traceId", "spanId", "attributes":
{"event.name": ...}, "body": {"input": {"messages": [...]}, "output": {"messages": [...]}}}``. OTLP exports are
flattened into these shapes (attribute lists become plain dicts) by ``traces.otlp``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RawRecord:
    data: dict[str, Any]
    source: str | None = None
    """The file or log group it was read from (named in errors and kept on the span)."""
    line: int | None = None
    """Its line in the file (1-based) when the file has one record per line."""

    @property
    def is_span(self) -> bool:
        """A span record (it has a span id and a start time); otherwise an event record."""
        return "spanId" in self.data and ("startTimeUnixNano" in self.data or "name" in self.data) \
            and "body" not in self.data
