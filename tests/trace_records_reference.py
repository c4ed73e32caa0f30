"""The span reader as it was before the streaming rewrite (a verbatim copy of ``traces.otel_records`` and
``traces.spans.spans_frame`` at that time): the reference the new implementation's output is compared with."""
from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from eval_pipeline.data.messages import messages_to_json
from eval_pipeline.data.schemas import TRACES
from eval_pipeline.errors import EvalInputError
from eval_pipeline.traces.records import RawRecord
from eval_pipeline.traces.scopes import DEFAULT_READER, reader_for
from eval_pipeline.traces.scopes.record import EventRecord, SpanEvent, SpanReading, SpanRecord
from eval_pipeline.traces.spans import INTEGER_COLUMNS, Span, SpanKind

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_STATUS = {"OK": "OK", "STATUS_CODE_OK": "OK", "1": "OK", "ERROR": "ERROR", "STATUS_CODE_ERROR": "ERROR",
           "2": "ERROR", "UNSET": "UNSET", "STATUS_CODE_UNSET": "UNSET", "0": "UNSET"}
_READ_ERRORS = (ValueError, TypeError, KeyError, AttributeError)


def spans_from_records(records: Iterable[RawRecord]) -> list[Span]:
    """The spans of span records, in record order, each with its event records; a span repeated (same trace and
    span id) is kept once."""
    span_records: dict[tuple[str, str], RawRecord] = {}
    events: dict[tuple[str, str], list[EventRecord]] = defaultdict(list)
    for record in records:
        _object(record)
        key = (_hex_id(record, "traceId", 32), _hex_id(record, "spanId", 16))
        if record.is_span:
            _check_span(record)
            span_records.setdefault(key, record)
        else:
            events[key].append(_event_record(record))
    spans = [read_span(record, key, events.get(key, [])) for key, record in span_records.items()]
    return _with_trace_sessions(spans)


def read_span(record: RawRecord, key: tuple[str, str], events: list[EventRecord]) -> Span:
    """One checked span record with its event records → a Span."""
    data = record.data
    scope = _scope_name(data)
    view = SpanRecord(name=str(data.get("name") or ""), scope=scope, attributes=_mapping(data.get("attributes")),
                      resource=_mapping(_mapping(data.get("resource")).get("attributes")),
                      parent_id=_parent_id(record), events=_span_events(record), records=tuple(events))
    reading = _read(view)
    status = _mapping(data.get("status"))
    kind = reading.kind or SpanKind.OTHER
    tool = kind == SpanKind.TOOL
    return Span(
        session_id=reading.session_id, trace_id=key[0], span_id=key[1], parent_id=view.parent_id, kind=str(kind),
        name=view.name, operation=reading.operation, scope=scope, service=_text(view.resource.get("service.name")),
        input=None if tool else _messages(reading.input),
        output=reading.tool_result if tool else _messages(reading.output),
        tool_name=reading.tool_name, tool_call_id=reading.tool_call_id, tool_args=reading.tool_args,
        available_tools=json.dumps(reading.available_tools) if reading.available_tools else None,
        model=reading.model, tokens_in=reading.tokens_in, tokens_out=reading.tokens_out,
        start_ns=_nanos(data.get("startTimeUnixNano")), end_ns=_nanos(data.get("endTimeUnixNano")),
        status=_STATUS.get(str(status.get("code", "UNSET")).upper(), "UNSET"),
        status_message=_text(status.get("message")), has_body=reading.has_body,
        attributes=json.dumps(dict(view.attributes), ensure_ascii=False, default=str),
        source=record.source, line=record.line, error="; ".join(view.problems) or None)


def _read(view: SpanRecord) -> SpanReading:
    reader = reader_for(view.scope)
    try:
        return reader.read(view)
    except _READ_ERRORS as error:
        if reader is DEFAULT_READER:
            raise
        view.note(f"scope reader for {view.scope!r} failed ({type(error).__name__}: {error}); "
                             "read by the GenAI conventions")
        return DEFAULT_READER.read(view)


def _with_trace_sessions(spans: list[Span]) -> list[Span]:
    sessions: dict[str, set[str]] = defaultdict(set)
    for span in spans:
        if span.session_id:
            sessions[span.trace_id].add(span.session_id)
    out = []
    for span in spans:
        known = sessions.get(span.trace_id, set())
        if span.session_id is None and len(known) == 1:
            span = Span(**{**span.as_row(), "session_id": next(iter(known))})
        out.append(span)
    return out


# -- checking records ------------------------------------------------------------------------------------------

def _object(record: RawRecord) -> dict[str, Any]:
    if not isinstance(record.data, dict):
        raise EvalInputError(f"a span or event record is a JSON object, not {type(record.data).__name__}",
                             file=record.source, line=record.line)
    return record.data


def _hex_id(record: RawRecord, field: str, digits: int) -> str:
    value = record.data.get(field)
    if value is None or value == "":
        raise EvalInputError("missing (every span and event record has traceId and spanId)",
                             file=record.source, line=record.line, field=field)
    if not isinstance(value, str) or len(value) != digits or not _HEX.match(value):
        raise EvalInputError(f"{value!r} is not {digits} hex digits", file=record.source, line=record.line,
                             field=field)
    return value.lower()


def _parent_id(record: RawRecord) -> str | None:
    """The parent span's id; None for a root (no id, an empty one, or all zeros as some exporters write)."""
    value = record.data.get("parentSpanId")
    if value is None or value == "" or (isinstance(value, str) and set(value) == {"0"}):
        return None
    if not isinstance(value, str) or len(value) != 16 or not _HEX.match(value):
        raise EvalInputError(f"{value!r} is not 16 hex digits", file=record.source, line=record.line,
                             field="parentSpanId")
    return value.lower()


def _check_span(record: RawRecord) -> None:
    _parent_id(record)
    for field in ("startTimeUnixNano", "endTimeUnixNano"):
        _checked_nanos(record, record.data.get(field), field)
    for name in ("attributes", "status"):
        if record.data.get(name) is not None and not isinstance(record.data[name], dict):
            raise EvalInputError(f"is a JSON object, not {type(record.data[name]).__name__}",
                                 file=record.source, line=record.line, field=name)
    events = record.data.get("events")
    if events is not None and not isinstance(events, list):
        raise EvalInputError("is a list of span events", file=record.source, line=record.line, field="events")
    for index, event in enumerate(events or []):
        if not isinstance(event, dict):
            raise EvalInputError("a span event is a JSON object", file=record.source, line=record.line,
                                 field=f"events[{index}]")
        _checked_nanos(record, event.get("timeUnixNano"), f"events[{index}].timeUnixNano")
        if event.get("attributes") is not None and not isinstance(event["attributes"], dict):
            raise EvalInputError("is a JSON object", file=record.source, line=record.line,
                                 field=f"events[{index}].attributes")


def _checked_nanos(record: RawRecord, value: Any, field: str) -> int | None:
    """Epoch nanoseconds: an integer, or a string of digits (OTLP JSON writes 64-bit integers as strings)."""
    if value is None:
        return None
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
        raise EvalInputError(f"{value!r} is not an integer (epoch nanoseconds)", file=record.source,
                             line=record.line, field=field)
    return int(value)


def _event_record(record: RawRecord) -> EventRecord:
    data = record.data
    time_ns = _checked_nanos(record, data.get("timeUnixNano"), "timeUnixNano")
    if data.get("attributes") is not None and not isinstance(data["attributes"], dict):
        raise EvalInputError("is a JSON object", file=record.source, line=record.line, field="attributes")
    attributes = _mapping(data.get("attributes"))
    name = attributes.get("event.name") or data.get("eventName")
    return EventRecord(name=str(name) if name is not None else None, time_ns=time_ns, attributes=attributes,
                       body=data.get("body"))


def _span_events(record: RawRecord) -> tuple[SpanEvent, ...]:
    return tuple(SpanEvent(name=str(event.get("name") or ""), time_ns=_nanos(event.get("timeUnixNano")),
                           attributes=_mapping(event.get("attributes")))
                 for event in record.data.get("events") or [])


# -- small readers ---------------------------------------------------------------------------------------------

def _scope_name(data: Mapping[str, Any]) -> str | None:
    scope = data.get("scope")
    if isinstance(scope, dict):
        return _text(scope.get("name"))
    return _text(scope)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _nanos(value: Any) -> int | None:
    return int(value) if value is not None else None


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _messages(messages: list | None) -> str | None:
    return messages_to_json(messages) if messages else None


def spans_frame(spans: list[Span]) -> pd.DataFrame:
    """Spans as a ``traces`` table (its columns in TRACES order; integer columns nullable ``Int64``)."""
    rows = [span.as_row() for span in spans]
    columns = {name: [row[name] for row in rows] for name in TRACES.names}
    return pd.DataFrame({name: pd.array(values, dtype="Int64") if name in INTEGER_COLUMNS else values
                         for name, values in columns.items()}, columns=TRACES.names)
