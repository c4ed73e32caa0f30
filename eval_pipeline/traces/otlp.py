"""OTLP exports (JSON and protobuf) flattened into the ADOT/CloudWatch record shape of ``traces.records``.

OTLP nests spans as ``resourceSpans[].scopeSpans[].spans[]`` and log records as
``resourceLogs[].scopeLogs[].logRecords[]``, with attributes as lists of ``{key, value: AnyValue}``. Each span or
log record becomes one flat ``RawRecord``: attributes a plain dict, ``resource`` ``{"attributes": {...}}``,
``scope`` ``{"name", "version"}``, ids lowercase hex, times integers, ``kind`` and ``status.code`` as names
(``INTERNAL``, ``OK``), span events kept under ``events`` and a log record's body decoded to plain JSON (a string
body holding a JSON object is parsed, as the CloudWatch records carry it as an object).

The JSON encoding is the OTLP/JSON one (hex ids, 64-bit integers as strings, enums as integers or their names);
base64 ids, as protobuf's generic JSON printer writes them, are accepted too. Protobuf input is an
``ExportTraceServiceRequest``/``TracesData`` or ``ExportLogsServiceRequest``/``LogsData`` message (the pairs have
the same wire format), or a stream of them each preceded by its length as a 4-byte big-endian integer (the
OpenTelemetry Collector file exporter's ``proto`` format).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from typing import Any

from eval_pipeline.errors import EvalInputError
from eval_pipeline.traces.records import RawRecord

SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
"""OTLP span kinds by number (``SPAN_KIND_`` + name in the protocol)."""
STATUS_CODES = ("UNSET", "OK", "ERROR")
"""OTLP status codes by number (``STATUS_CODE_`` + name in the protocol)."""

_TRACE_ID_BYTES, _SPAN_ID_BYTES = 16, 8


class _Where:
    """Where in the document a value is, for errors: the source, the line, and a field path."""

    def __init__(self, source: str | None, line: int | None) -> None:
        self.source, self.line = source, line

    def error(self, message: str, field: str) -> EvalInputError:
        return EvalInputError(message, file=self.source, line=self.line, field=field)


def otlp_json_records(document: dict[str, Any], source: str | None = None, *,
                      line: int | None = None) -> Iterator[RawRecord]:
    """The span and log records of one OTLP/JSON document (``resourceSpans`` and/or ``resourceLogs``), flat.

    ``line`` is the document's line when it is one line of a JSONL file (the Collector's file exporter)."""
    where = _Where(source, line)
    if not isinstance(document, dict):
        raise where.error(f"an OTLP document is a JSON object, not {type(document).__name__}", "resourceSpans")
    for r_index, resource_spans in enumerate(_list(document, "resourceSpans", "", where)):
        path = f"resourceSpans[{r_index}]"
        resource = _resource(_object(resource_spans, path, where).get("resource"), f"{path}.resource", where)
        for s_index, scope_spans in enumerate(_list(resource_spans, "scopeSpans", path, where)):
            scope_path = f"{path}.scopeSpans[{s_index}]"
            scope = _scope(_object(scope_spans, scope_path, where).get("scope"), f"{scope_path}.scope", where)
            for index, span in enumerate(_list(scope_spans, "spans", scope_path, where)):
                record = _json_span(_object(span, f"{scope_path}.spans[{index}]", where), resource, scope,
                                    f"{scope_path}.spans[{index}]", where)
                yield RawRecord(record, source, line)
    for r_index, resource_logs in enumerate(_list(document, "resourceLogs", "", where)):
        path = f"resourceLogs[{r_index}]"
        resource = _resource(_object(resource_logs, path, where).get("resource"), f"{path}.resource", where)
        for s_index, scope_logs in enumerate(_list(resource_logs, "scopeLogs", path, where)):
            scope_path = f"{path}.scopeLogs[{s_index}]"
            scope = _scope(_object(scope_logs, scope_path, where).get("scope"), f"{scope_path}.scope", where)
            for index, log in enumerate(_list(scope_logs, "logRecords", scope_path, where)):
                record = _json_log(_object(log, f"{scope_path}.logRecords[{index}]", where), resource, scope,
                                   f"{scope_path}.logRecords[{index}]", where)
                yield RawRecord(record, source, line)


def is_otlp_document(value: object) -> bool:
    """Whether a JSON value is an OTLP export document (traces, logs, metrics or profiles)."""
    return isinstance(value, dict) and any(key in value for key in
                                           ("resourceSpans", "resourceLogs", "resourceMetrics", "resourceProfiles"))


# --- OTLP/JSON ----------------------------------------------------------------------------------------------------


def _json_span(span: dict[str, Any], resource: dict[str, Any], scope: dict[str, Any], path: str,
               where: _Where) -> dict[str, Any]:
    record: dict[str, Any] = {"resource": resource, "scope": scope,
                              "traceId": _json_id(span.get("traceId"), _TRACE_ID_BYTES, f"{path}.traceId", where),
                              "spanId": _json_id(span.get("spanId"), _SPAN_ID_BYTES, f"{path}.spanId", where)}
    parent = span.get("parentSpanId")
    if parent:
        record["parentSpanId"] = _json_id(parent, _SPAN_ID_BYTES, f"{path}.parentSpanId", where)
    if span.get("traceState"):
        record["traceState"] = span["traceState"]
    if span.get("flags") is not None:
        record["flags"] = _integer(span["flags"], f"{path}.flags", where)
    record["name"] = span.get("name", "")
    record["kind"] = _enum_name(span.get("kind", 0), SPAN_KINDS, "SPAN_KIND_", f"{path}.kind", where)
    _times(record, span, ("startTimeUnixNano", "endTimeUnixNano"), path, where)
    if "startTimeUnixNano" in record and "endTimeUnixNano" in record:
        record["durationNano"] = record["endTimeUnixNano"] - record["startTimeUnixNano"]
    record["attributes"] = _json_attributes(span.get("attributes"), f"{path}.attributes", where)
    status = span.get("status")
    if status is not None:
        status_path = f"{path}.status"
        status = _object(status, status_path, where)
        record["status"] = {"code": _enum_name(status.get("code", 0), STATUS_CODES, "STATUS_CODE_",
                                               f"{status_path}.code", where)}
        if status.get("message"):
            record["status"]["message"] = status["message"]
    else:
        record["status"] = {"code": "UNSET"}
    events = []
    for index, event in enumerate(_list(span, "events", path, where)):
        event_path = f"{path}.events[{index}]"
        event = _object(event, event_path, where)
        flat: dict[str, Any] = {"name": event.get("name", "")}
        _times(flat, event, ("timeUnixNano",), event_path, where)
        flat["attributes"] = _json_attributes(event.get("attributes"), f"{event_path}.attributes", where)
        events.append(flat)
    if events:
        record["events"] = events
    links = []
    for index, link in enumerate(_list(span, "links", path, where)):
        link_path = f"{path}.links[{index}]"
        link = _object(link, link_path, where)
        links.append({"traceId": _json_id(link.get("traceId"), _TRACE_ID_BYTES, f"{link_path}.traceId", where),
                      "spanId": _json_id(link.get("spanId"), _SPAN_ID_BYTES, f"{link_path}.spanId", where),
                      "attributes": _json_attributes(link.get("attributes"), f"{link_path}.attributes", where)})
    if links:
        record["links"] = links
    return record


def _json_log(log: dict[str, Any], resource: dict[str, Any], scope: dict[str, Any], path: str,
              where: _Where) -> dict[str, Any]:
    record: dict[str, Any] = {"resource": resource, "scope": scope}
    _times(record, log, ("timeUnixNano", "observedTimeUnixNano"), path, where)
    if log.get("severityNumber") is not None:
        record["severityNumber"] = _severity(log["severityNumber"], f"{path}.severityNumber", where)
    if log.get("severityText"):
        record["severityText"] = log["severityText"]
    if log.get("traceId"):
        record["traceId"] = _json_id(log["traceId"], _TRACE_ID_BYTES, f"{path}.traceId", where)
    if log.get("spanId"):
        record["spanId"] = _json_id(log["spanId"], _SPAN_ID_BYTES, f"{path}.spanId", where)
    if log.get("flags") is not None:
        record["flags"] = _integer(log["flags"], f"{path}.flags", where)
    attributes = _json_attributes(log.get("attributes"), f"{path}.attributes", where)
    if log.get("eventName") and "event.name" not in attributes:
        attributes["event.name"] = log["eventName"]
    record["attributes"] = attributes
    body = log.get("body")
    record["body"] = _plain_body(_json_any(body, f"{path}.body", where)) if body is not None else None
    return record


def _json_attributes(value: object, path: str, where: _Where) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):  # already flat (a hand-written export): keep it
        return dict(value)
    if not isinstance(value, list):
        raise where.error(f"attributes are a list of {{key, value}} objects, not {type(value).__name__}", path)
    attributes: dict[str, Any] = {}
    for index, item in enumerate(value):
        item_path = f"{path}[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise where.error("an attribute is an object with a string 'key'", item_path)
        attributes[item["key"]] = _json_any(item.get("value"), f"{item_path}.value", where)
    return attributes


def _json_any(value: object, path: str, where: _Where) -> Any:
    """An OTLP/JSON AnyValue as plain JSON (bytes as their base64 text, as OTLP/JSON writes them)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise where.error(f"an AnyValue is an object such as {{\"stringValue\": ...}}, not {type(value).__name__}",
                          path)
    if not value:
        return None
    kind, inner = next(iter(value.items()))
    if kind == "stringValue":
        return inner
    if kind == "boolValue":
        if not isinstance(inner, bool):
            raise where.error(f"boolValue is true or false, not {inner!r}", f"{path}.boolValue")
        return inner
    if kind == "intValue":
        return _integer(inner, f"{path}.intValue", where)
    if kind == "doubleValue":
        return _double(inner, f"{path}.doubleValue", where)
    if kind == "bytesValue":
        return inner
    if kind == "arrayValue":
        values = _object(inner, f"{path}.arrayValue", where).get("values") or []
        return [_json_any(item, f"{path}.arrayValue.values[{i}]", where) for i, item in enumerate(values)]
    if kind == "kvlistValue":
        values = _object(inner, f"{path}.kvlistValue", where).get("values") or []
        return _json_attributes(values, f"{path}.kvlistValue.values", where)
    raise where.error(f"unknown AnyValue kind {kind!r} (stringValue, intValue, doubleValue, boolValue, "
                      "arrayValue, kvlistValue or bytesValue)", path)


def _json_id(value: object, size: int, path: str, where: _Where) -> str:
    """A trace or span id as lowercase hex: OTLP/JSON writes hex; protobuf's JSON printer writes base64."""
    if not isinstance(value, str) or not value:
        raise where.error(f"expected a {size * 2}-digit hex id, got {value!r}", path)
    if len(value) == size * 2:
        try:
            bytes.fromhex(value)
            return value.lower()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == size:
        return raw.hex()
    raise where.error(f"expected a {size * 2}-digit hex id, got {value!r}", path)


def _resource(value: object, path: str, where: _Where) -> dict[str, Any]:
    resource = _object(value, path, where) if value is not None else {}
    return {"attributes": _json_attributes(resource.get("attributes"), f"{path}.attributes", where)}


def _scope(value: object, path: str, where: _Where) -> dict[str, Any]:
    scope = _object(value, path, where) if value is not None else {}
    flat: dict[str, Any] = {"name": scope.get("name", ""), "version": scope.get("version", "")}
    if scope.get("attributes"):
        flat["attributes"] = _json_attributes(scope["attributes"], f"{path}.attributes", where)
    return flat


def _times(record: dict[str, Any], source: dict[str, Any], names: tuple[str, ...], path: str, where: _Where) -> None:
    for name in names:
        value = source.get(name)
        if value not in (None, "", 0, "0"):
            record[name] = _integer(value, f"{path}.{name}", where)


def _enum_name(value: object, names: tuple[str, ...], prefix: str, path: str, where: _Where) -> str:
    """An OTLP enum as its short name: ``1``, ``"1"``, ``"SPAN_KIND_INTERNAL"`` and ``"INTERNAL"`` all read as
    ``INTERNAL``."""
    if isinstance(value, str) and not value.isdigit():
        name = value.removeprefix(prefix)
        if name in names:
            return name
    elif isinstance(value, int | str) and not isinstance(value, bool) and 0 <= int(value) < len(names):
        return names[int(value)]
    allowed = ", ".join(f"{i} ({prefix}{n})" for i, n in enumerate(names))
    raise where.error(f"unknown value {value!r}; expected one of {allowed}", path)


def _severity(value: object, path: str, where: _Where) -> int:
    if isinstance(value, str) and not value.lstrip("-").isdigit():
        from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber

        try:
            return SeverityNumber.Value(value)
        except ValueError:
            raise where.error(f"unknown severity {value!r}", path) from None
    return _integer(value, path, where)


def _integer(value: object, path: str, where: _Where) -> int:
    """A 64-bit integer: OTLP/JSON writes them as decimal strings; numbers are accepted too."""
    if isinstance(value, bool):
        raise where.error(f"expected an integer, got {value!r}", path)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise where.error(f"expected an integer, got {value!r}", path)


def _double(value: object, path: str, where: _Where) -> float:
    """A double: a number, or the strings ``NaN``, ``Infinity``, ``-Infinity`` (protobuf's JSON mapping)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise where.error(f"expected a number, got {value!r}", path)


def _object(value: object, path: str, where: _Where) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise where.error(f"expected a JSON object, got {type(value).__name__}", path)
    return value


def _list(container: dict[str, Any], key: str, path: str, where: _Where) -> list[Any]:
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise where.error(f"expected a list, got {type(value).__name__}", f"{path}.{key}" if path else key)
    return value


def _plain_body(value: Any) -> Any:
    """A log body: a string holding a JSON object or list is read as that JSON."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# --- OTLP protobuf ------------------------------------------------------------------------------------------------


def otlp_protobuf_records(data: bytes, source: str | None = None) -> Iterator[RawRecord]:
    """The span and log records of OTLP protobuf bytes (one traces or logs message, or a length-prefixed stream of
    them), flat, in the same shape as ``otlp_json_records``."""
    for message in _messages(data, source):
        yield from _protobuf_message_records(message, source)


def _messages(data: bytes, source: str | None) -> Iterator[bytes]:
    """One message, or each message of a stream of 4-byte big-endian length prefixes and messages (a protobuf
    message never starts with a zero byte: field number 0 does not exist)."""
    if not data:
        return
    if data[0] != 0:
        yield data
        return
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise EvalInputError(f"truncated length prefix at byte {offset}", file=source)
        size = int.from_bytes(data[offset:offset + 4], "big")
        if offset + 4 + size > len(data):
            raise EvalInputError(f"message at byte {offset} claims {size} bytes; only {len(data) - offset - 4} "
                                 "remain", file=source)
        yield data[offset + 4:offset + 4 + size]
        offset += 4 + size


def _protobuf_message_records(data: bytes, source: str | None) -> Iterator[RawRecord]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
    from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

    try:
        traces = TracesData.FromString(data)
    except DecodeError:
        traces = None
    if traces is not None and _plausible_spans(traces):
        yield from _protobuf_spans(traces, source)
        return
    try:
        logs = LogsData.FromString(data)
    except DecodeError as exc:
        raise EvalInputError(f"not an OTLP traces or logs protobuf message ({exc})", file=source) from None
    yield from _protobuf_logs(logs, source)


def _plausible_spans(traces: Any) -> bool:
    """Whether a message read as traces really is traces: every span has a 16-byte trace id and an 8-byte span id
    (a logs message can parse as traces, but then its records have no such ids)."""
    return all(len(span.trace_id) == _TRACE_ID_BYTES and len(span.span_id) == _SPAN_ID_BYTES
               for resource in traces.resource_spans for scope in resource.scope_spans for span in scope.spans)


def _protobuf_spans(traces: Any, source: str | None) -> Iterator[RawRecord]:
    for resource_spans in traces.resource_spans:
        resource = {"attributes": _pb_attributes(resource_spans.resource.attributes)}
        for scope_spans in resource_spans.scope_spans:
            scope = _pb_scope(scope_spans.scope)
            for span in scope_spans.spans:
                record: dict[str, Any] = {"resource": resource, "scope": scope,
                                          "traceId": span.trace_id.hex(), "spanId": span.span_id.hex()}
                if span.parent_span_id:
                    record["parentSpanId"] = span.parent_span_id.hex()
                if span.trace_state:
                    record["traceState"] = span.trace_state
                if span.flags:
                    record["flags"] = span.flags
                record["name"] = span.name
                record["kind"] = SPAN_KINDS[span.kind] if 0 <= span.kind < len(SPAN_KINDS) else "UNSPECIFIED"
                if span.start_time_unix_nano:
                    record["startTimeUnixNano"] = span.start_time_unix_nano
                if span.end_time_unix_nano:
                    record["endTimeUnixNano"] = span.end_time_unix_nano
                if span.start_time_unix_nano and span.end_time_unix_nano:
                    record["durationNano"] = span.end_time_unix_nano - span.start_time_unix_nano
                record["attributes"] = _pb_attributes(span.attributes)
                code = span.status.code
                record["status"] = {"code": STATUS_CODES[code] if 0 <= code < len(STATUS_CODES) else "UNSET"}
                if span.status.message:
                    record["status"]["message"] = span.status.message
                if span.events:
                    record["events"] = [{"name": event.name,
                                         **({"timeUnixNano": event.time_unix_nano} if event.time_unix_nano else {}),
                                         "attributes": _pb_attributes(event.attributes)} for event in span.events]
                if span.links:
                    record["links"] = [{"traceId": link.trace_id.hex(), "spanId": link.span_id.hex(),
                                        "attributes": _pb_attributes(link.attributes)} for link in span.links]
                yield RawRecord(record, source)


def _protobuf_logs(logs: Any, source: str | None) -> Iterator[RawRecord]:
    for resource_logs in logs.resource_logs:
        resource = {"attributes": _pb_attributes(resource_logs.resource.attributes)}
        for scope_logs in resource_logs.scope_logs:
            scope = _pb_scope(scope_logs.scope)
            for log in scope_logs.log_records:
                record: dict[str, Any] = {"resource": resource, "scope": scope}
                if log.time_unix_nano:
                    record["timeUnixNano"] = log.time_unix_nano
                if log.observed_time_unix_nano:
                    record["observedTimeUnixNano"] = log.observed_time_unix_nano
                if log.severity_number:
                    record["severityNumber"] = log.severity_number
                if log.severity_text:
                    record["severityText"] = log.severity_text
                if log.trace_id:
                    record["traceId"] = log.trace_id.hex()
                if log.span_id:
                    record["spanId"] = log.span_id.hex()
                if log.flags:
                    record["flags"] = log.flags
                attributes = _pb_attributes(log.attributes)
                event_name = getattr(log, "event_name", "")
                if event_name and "event.name" not in attributes:
                    attributes["event.name"] = event_name
                record["attributes"] = attributes
                record["body"] = _plain_body(_pb_any(log.body)) if log.HasField("body") else None
                yield RawRecord(record, source)


def _pb_scope(scope: Any) -> dict[str, Any]:
    flat: dict[str, Any] = {"name": scope.name, "version": scope.version}
    if scope.attributes:
        flat["attributes"] = _pb_attributes(scope.attributes)
    return flat


def _pb_attributes(items: Any) -> dict[str, Any]:
    return {item.key: _pb_any(item.value) for item in items}


def _pb_any(value: Any) -> Any:
    """A protobuf AnyValue as plain JSON (bytes as base64 text, as OTLP/JSON writes them)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_pb_any(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _pb_attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return getattr(value, kind)
