"""Span and event records (the flat ADOT/CloudWatch shape, ``traces.records``) → canonical ``Span``s.

Each record is checked (a JSON object with hex ``traceId``/``spanId`` of the right length and integer times; bad
input is an ``EvalInputError`` naming file, line and field). Event records are joined to their span by (traceId,
spanId); each span is read by its instrumentation scope's reader (``traces.scopes``). A span whose parts could not
be read (an event body of an unknown shape) keeps what was read and says why in ``error``. A span without a session
id takes the one its trace's other spans carry (a trace is one turn of one session).

Records stream: each is checked as it comes and kept only in the compact form of ``traces.span_store`` (an event
record for a span may come before or after it, so spans are read when the input ends); a span is read as soon as
that point is reached and its packed record is dropped, so the parsed records are never all held at once.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pandas as pd

from eval_pipeline.errors import EvalInputError
from eval_pipeline.traces.records import RawRecord
from eval_pipeline.traces.scopes import DEFAULT_READER, memo, reader_for
from eval_pipeline.traces.scopes.memo import messages_json
from eval_pipeline.traces.scopes.record import EventRecord, SpanEvent, SpanReading, SpanRecord
from eval_pipeline.traces.span_store import RecordStore, Resources, event_of, event_value
from eval_pipeline.traces.spans import Span, SpanKind
from eval_pipeline.traces.traces_table import CHUNK_ROWS, TracesTable

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_STATUS = {"OK": "OK", "STATUS_CODE_OK": "OK", "1": "OK", "ERROR": "ERROR", "STATUS_CODE_ERROR": "ERROR",
           "2": "ERROR", "UNSET": "UNSET", "STATUS_CODE_UNSET": "UNSET", "0": "UNSET"}
_READ_ERRORS = (ValueError, TypeError, KeyError, AttributeError)
Key = tuple[str, str]


def spans_from_records(records: Iterable[RawRecord]) -> list[Span]:
    """The spans of span records, in record order, each with its event records; a span repeated (same trace and
    span id) is kept once."""
    return _with_trace_sessions(list(_read_spans(records)))


def traces_frame(records: Iterable[RawRecord], *, chunk_rows: int = CHUNK_ROWS) -> pd.DataFrame:
    """``spans_frame(spans_from_records(records))``, built ``chunk_rows`` spans at a time (``traces_table``): the
    spans are never all held beside the table."""
    table = TracesTable(chunk_rows)
    for span in _read_spans(records):
        table.add(span)
    return table.frame()


def _read_spans(records: Iterable[RawRecord]) -> Iterator[Span]:
    """The spans, in the order their records first came, before trace sessions are filled in."""
    store = RecordStore()
    pending: dict[Key, tuple[Any, dict[str, Any], str | None]] = {}
    events: dict[Key, list[Any]] = {}
    resources = Resources()
    for record in records:
        _object(record)
        key = (sys.intern(_hex_id(record, "traceId", 32)), _hex_id(record, "spanId", 16))
        if record.is_span:
            parent_id = _check_span(record)
            if key not in pending:
                pending[key] = _pending(record, parent_id, store, resources)
        else:
            reference = store.put(event_value(_event_record(record)))
            found = events.get(key)
            if found is None:
                events[key] = [reference]
            else:
                found.append(reference)
    order = deque(pending.items())
    pending.clear()
    try:
        while order:
            key, (reference, resource, source) = order.popleft()
            found = events.pop(key, None)
            records_of_span = tuple(event_of(store.take(event)) for event in found) if found else ()
            yield _read_pending(key, store.take(reference), resource, source, records_of_span)
    finally:
        memo.clear()


def read_span(record: RawRecord, key: tuple[str, str], events: list[EventRecord]) -> Span:
    """One checked span record with its event records → a Span."""
    data = record.data
    view = SpanRecord(name=str(data.get("name") or ""), scope=_scope_name(data),
                      attributes=_mapping(data.get("attributes")),
                      resource=_mapping(_mapping(data.get("resource")).get("attributes")),
                      parent_id=_parent_id(record), events=_span_events(data.get("events")), records=tuple(events))
    status = _mapping(data.get("status"))
    return _span(key, view, start_ns=_nanos(data.get("startTimeUnixNano")),
                 end_ns=_nanos(data.get("endTimeUnixNano")), status=_status(status),
                 status_message=_text(status.get("message")), source=record.source, line=record.line)


def _pending(record: RawRecord, parent_id: str | None, store: RecordStore, resources: Resources
             ) -> tuple[Any, dict[str, Any], str | None]:
    """A checked span record in its compact form: (its stored fields, its shared resource attributes, its
    source)."""
    data = record.data
    status = _mapping(data.get("status"))
    fields = (str(data.get("name") or ""), _scope_name(data), parent_id,
              _nanos(data.get("startTimeUnixNano")), _nanos(data.get("endTimeUnixNano")), _status(status),
              _text(status.get("message")), record.line, _mapping(data.get("attributes")), data.get("events"))
    return (store.put(fields), resources.shared(_mapping(_mapping(data.get("resource")).get("attributes"))),
            record.source)


def _read_pending(key: Key, fields: tuple[Any, ...], resource: dict[str, Any], source: str | None,
                  events: tuple[EventRecord, ...]) -> Span:
    name, scope, parent_id, start_ns, end_ns, status, status_message, line, attributes, span_events = fields
    view = SpanRecord(name=name, scope=scope, attributes=attributes, resource=dict(resource), parent_id=parent_id,
                      events=_span_events(span_events), records=events)
    return _span(key, view, start_ns=start_ns, end_ns=end_ns, status=status, status_message=status_message,
                 source=source, line=line)


def _span(key: Key, view: SpanRecord, *, start_ns: int | None, end_ns: int | None, status: str,
          status_message: str | None, source: str | None, line: int | None) -> Span:
    """A span record as its scope's reader reads it."""
    reading = _read(view)
    kind = reading.kind or SpanKind.OTHER
    tool = kind == SpanKind.TOOL
    return Span(
        session_id=reading.session_id, trace_id=key[0], span_id=key[1], parent_id=view.parent_id, kind=str(kind),
        name=view.name, operation=reading.operation, scope=view.scope,
        service=_text(view.resource.get("service.name")),
        input=None if tool else _messages(reading.input),
        output=reading.tool_result if tool else _messages(reading.output),
        tool_name=reading.tool_name, tool_call_id=reading.tool_call_id, tool_args=reading.tool_args,
        available_tools=json.dumps(reading.available_tools) if reading.available_tools else None,
        model=reading.model, tokens_in=reading.tokens_in, tokens_out=reading.tokens_out,
        start_ns=start_ns, end_ns=end_ns, status=status, status_message=status_message, has_body=reading.has_body,
        attributes=json.dumps(view.attributes, ensure_ascii=False, default=str),
        source=source, line=line, error="; ".join(view.problems) or None)


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
    sessions: dict[str, set[str]] = {}
    for span in spans:
        if span.session_id:
            sessions.setdefault(span.trace_id, set()).add(span.session_id)
    for index, span in enumerate(spans):
        known = sessions.get(span.trace_id)
        if span.session_id is None and known is not None and len(known) == 1:
            spans[index] = dataclasses.replace(span, session_id=next(iter(known)))
    return spans


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
    if value is None or value == "" or (isinstance(value, str) and not value.strip("0")):
        return None
    if not isinstance(value, str) or len(value) != 16 or not _HEX.match(value):
        raise EvalInputError(f"{value!r} is not 16 hex digits", file=record.source, line=record.line,
                             field="parentSpanId")
    return value.lower()


def _check_span(record: RawRecord) -> str | None:
    """The checked record's parent span id."""
    parent_id = _parent_id(record)
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
    return parent_id


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


def _span_events(events: list[Any] | None) -> tuple[SpanEvent, ...]:
    return tuple(SpanEvent(name=str(event.get("name") or ""), time_ns=_nanos(event.get("timeUnixNano")),
                           attributes=_mapping(event.get("attributes")))
                 for event in events or [])


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


def _status(status: Mapping[str, Any]) -> str:
    return _STATUS.get(str(status.get("code", "UNSET")).upper(), "UNSET")


def _messages(messages: list | None) -> str | None:
    return messages_json(messages) if messages else None
