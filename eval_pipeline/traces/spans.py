"""One span of a recorded agent session, as a row of the ``traces`` table (``data.schemas.TRACES``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from operator import attrgetter

import pandas as pd

from eval_pipeline.data.schemas import TRACES


class SpanKind(StrEnum):
    """What a span records: the agent's handling of one turn, a model call, a tool call, or anything else."""

    AGENT = "agent"
    LLM = "llm"
    TOOL = "tool"
    OTHER = "other"


@dataclass(frozen=True)
class Span:
    """The canonical span: every instrumentation scope's span is read into this shape (``traces.scopes``).

    ``input``/``output`` of agent and llm spans are JSON lists of chat messages (``data.messages``); a tool span's
    ``tool_args`` is its arguments as JSON text and ``output`` its result as text. ``has_body`` says whether the
    messages were found (in the span's event records or its attributes): the service refuses a session whose
    spans have no bodies, and so do we (``traces.sessions``)."""

    session_id: str | None
    trace_id: str
    span_id: str
    parent_id: str | None = None
    kind: str = SpanKind.OTHER
    name: str = ""
    operation: str | None = None
    scope: str | None = None
    service: str | None = None
    input: str | None = None
    output: str | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None
    tool_args: str | None = None
    available_tools: str | None = None
    model: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    status: str = "UNSET"
    status_message: str | None = None
    has_body: bool = False
    attributes: str | None = None
    source: str | None = None
    line: int | None = None
    error: str | None = None

    def as_row(self) -> dict[str, object]:
        return asdict(self)


INTEGER_COLUMNS = tuple(field.name for field in TRACES if field.type == "int64")
"""Nullable integers (``Int64``): nanosecond times lose digits as float64."""


def spans_frame(spans: Iterable[Span]) -> pd.DataFrame:
    """Spans as a ``traces`` table (its columns in TRACES order; integer columns nullable ``Int64``). Each column
    is read off the spans in one pass, with no per-row dict."""
    spans = spans if isinstance(spans, list) else list(spans)
    columns = {name: list(map(attrgetter(name), spans)) for name in TRACES.names}
    return pd.DataFrame({name: pd.array(values, dtype="Int64") if name in INTEGER_COLUMNS else values
                         for name, values in columns.items()}, columns=TRACES.names)


def span_from_row(row: dict[str, object]) -> Span:
    """A row of a ``traces`` table (pandas missing values read as None) back as a Span."""
    return Span(**{name: (None if _missing(row.get(name)) else row.get(name)) for name in TRACES.names
                   if name in row} | {"kind": row.get("kind") or SpanKind.OTHER,
                                      "status": row.get("status") or "UNSET",
                                      "has_body": bool(row.get("has_body")) if not _missing(row.get("has_body"))
                                      else False})


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value is pd.NA
