"""OTLP exports flattened into the ADOT record shape: OTLP/JSON (every AnyValue kind, span kinds and status codes
as numbers and names, events, log bodies) and protobuf built here with the ``opentelemetry.proto`` classes."""

from __future__ import annotations

import base64
import json

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogsData
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status, TracesData

from eval_pipeline.errors import EvalInputError
from eval_pipeline.traces.otlp import otlp_json_records, otlp_protobuf_records

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"
PARENT = "eee19b7ec3c1b173"
RESOURCE = {"attributes": [{"key": "service.name", "value": {"stringValue": "travel_agent.DEFAULT"}}]}
SCOPE = {"name": "strands.telemetry.tracer", "version": "1.2"}

EVERY_KIND = [
    {"key": "s", "value": {"stringValue": "text"}},
    {"key": "i", "value": {"intValue": "9007199254740993"}},
    {"key": "i_number", "value": {"intValue": 42}},
    {"key": "d", "value": {"doubleValue": 0.25}},
    {"key": "b", "value": {"boolValue": True}},
    {"key": "a", "value": {"arrayValue": {"values": [{"stringValue": "x"}, {"intValue": "2"}]}}},
    {"key": "kv", "value": {"kvlistValue": {"values": [{"key": "inner", "value": {"boolValue": False}},
                                                      {"key": "n", "value": {"doubleValue": 1.5}}]}}},
    {"key": "bytes", "value": {"bytesValue": "AAEC"}},
    {"key": "empty", "value": {}},
]
EVERY_KIND_FLAT = {"s": "text", "i": 9007199254740993, "i_number": 42, "d": 0.25, "b": True, "a": ["x", 2],
                   "kv": {"inner": False, "n": 1.5}, "bytes": "AAEC", "empty": None}


def _span(**fields: object) -> dict[str, object]:
    return {"traceId": TRACE, "spanId": SPAN, "parentSpanId": PARENT, "name": "execute_tool search_flights",
            "kind": 1, "startTimeUnixNano": "1795165200000000000", "endTimeUnixNano": "1795165200240000000",
            "attributes": [{"key": "gen_ai.tool.name", "value": {"stringValue": "search_flights"}}],
            "status": {"code": 1}} | fields


def _document(*spans: dict[str, object]) -> dict[str, object]:
    return {"resourceSpans": [{"resource": RESOURCE, "scopeSpans": [{"scope": SCOPE, "spans": list(spans)}]}]}


def flat_tool_span() -> dict[str, object]:
    """The flat record the test's tool span reads as, from OTLP/JSON and from protobuf alike."""
    return {
        "resource": {"attributes": {"service.name": "travel_agent.DEFAULT"}},
        "scope": {"name": "strands.telemetry.tracer", "version": "1.2"},
        "traceId": TRACE, "spanId": SPAN, "parentSpanId": PARENT, "flags": 256,
        "name": "execute_tool search_flights", "kind": "INTERNAL",
        "startTimeUnixNano": 1795165200000000000, "endTimeUnixNano": 1795165200240000000,
        "durationNano": 240000000, "attributes": EVERY_KIND_FLAT, "status": {"code": "OK"},
        "events": [{"name": "gen_ai.tool.message", "timeUnixNano": 1795165200100000000,
                    "attributes": {"id": "tooluse_1"}}]}


def test_a_span_is_flattened_into_the_adot_shape() -> None:
    span = _span(attributes=EVERY_KIND, flags=256,
                 events=[{"timeUnixNano": "1795165200100000000", "name": "gen_ai.tool.message",
                          "attributes": [{"key": "id", "value": {"stringValue": "tooluse_1"}}]}])
    [record] = otlp_json_records(_document(span), "export.json")
    assert record.source == "export.json" and record.line is None and record.is_span
    assert record.data == flat_tool_span()


@pytest.mark.parametrize(("kind", "name"), [(0, "UNSPECIFIED"), (1, "INTERNAL"), (2, "SERVER"), (3, "CLIENT"),
                                            (4, "PRODUCER"), (5, "CONSUMER"), ("SPAN_KIND_CLIENT", "CLIENT"),
                                            ("SPAN_KIND_INTERNAL", "INTERNAL"), ("SERVER", "SERVER"),
                                            ("3", "CLIENT")])
def test_span_kinds_as_numbers_or_names(kind: object, name: str) -> None:
    [record] = otlp_json_records(_document(_span(kind=kind)), None)
    assert record.data["kind"] == name


@pytest.mark.parametrize(("status", "expected"), [
    ({"code": 0}, {"code": "UNSET"}), ({"code": 2, "message": "boom"}, {"code": "ERROR", "message": "boom"}),
    ({"code": "STATUS_CODE_OK"}, {"code": "OK"}), ({"code": "STATUS_CODE_ERROR"}, {"code": "ERROR"}),
    ({}, {"code": "UNSET"}), (None, {"code": "UNSET"})])
def test_status_codes_as_numbers_or_names(status: object, expected: dict[str, str]) -> None:
    span = _span(status=status) if status is not None else {k: v for k, v in _span().items() if k != "status"}
    [record] = otlp_json_records(_document(span), None)
    assert record.data["status"] == expected


def test_a_root_span_has_no_parent_and_base64_ids_read_as_hex() -> None:
    span = _span(parentSpanId="", traceId=base64.b64encode(bytes.fromhex(TRACE)).decode(),
                 spanId=base64.b64encode(bytes.fromhex(SPAN)).decode())
    [record] = otlp_json_records(_document(span), None)
    assert "parentSpanId" not in record.data
    assert (record.data["traceId"], record.data["spanId"]) == (TRACE, SPAN)


def test_a_log_record_becomes_an_event_record_with_a_plain_body() -> None:
    body = {"kvlistValue": {"values": [
        {"key": "input", "value": {"kvlistValue": {"values": [{"key": "messages", "value": {"arrayValue": {
            "values": [{"kvlistValue": {"values": [
                {"key": "role", "value": {"stringValue": "user"}},
                {"key": "content", "value": {"kvlistValue": {"values": [
                    {"key": "content", "value": {"stringValue": "[{\"text\": \"hi\"}]"}}]}}}]}}]}}}]}}},
        {"key": "output", "value": {"kvlistValue": {"values": [{"key": "messages", "value": {"arrayValue": {
            "values": []}}}]}}}]}}
    document = {"resourceLogs": [{"resource": RESOURCE, "scopeLogs": [{"scope": SCOPE, "logRecords": [
        {"timeUnixNano": "1795165200300000000", "observedTimeUnixNano": "1795165200400000000",
         "severityNumber": 9, "severityText": "INFO", "traceId": TRACE, "spanId": SPAN,
         "attributes": [{"key": "event.name", "value": {"stringValue": "strands.telemetry.tracer"}}],
         "body": body},
        {"timeUnixNano": "1795165200500000000", "severityNumber": "SEVERITY_NUMBER_WARN", "traceId": TRACE,
         "spanId": SPAN, "eventName": "gen_ai.choice", "body": {"stringValue": "{\"message\": \"done\"}"}},
        {"timeUnixNano": "1795165200600000000", "body": {"stringValue": "plain text"}}]}]}]}
    first, second, third = otlp_json_records(document, "logs.json")
    assert first.data == {
        "resource": {"attributes": {"service.name": "travel_agent.DEFAULT"}}, "scope": SCOPE,
        "timeUnixNano": 1795165200300000000, "observedTimeUnixNano": 1795165200400000000, "severityNumber": 9,
        "severityText": "INFO", "traceId": TRACE, "spanId": SPAN,
        "attributes": {"event.name": "strands.telemetry.tracer"},
        "body": {"input": {"messages": [{"role": "user", "content": {"content": "[{\"text\": \"hi\"}]"}}]},
                 "output": {"messages": []}}}
    assert not first.is_span
    assert second.data["severityNumber"] == 13
    assert second.data["attributes"] == {"event.name": "gen_ai.choice"}
    assert second.data["body"] == {"message": "done"}
    assert third.data["body"] == "plain text" and "traceId" not in third.data


def test_spans_and_logs_of_one_document_are_both_read_and_metrics_are_ignored() -> None:
    document = _document(_span(), _span(spanId="eee19b7ec3c1b175")) | {
        "resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": TRACE, "spanId": SPAN, "body": {}}]}]}],
        "resourceMetrics": [{"scopeMetrics": []}]}
    records = list(otlp_json_records(document, None, line=7))
    assert [r.is_span for r in records] == [True, True, False]
    assert {r.line for r in records} == {7}
    assert records[2].data["resource"] == {"attributes": {}} and records[2].data["scope"] == {"name": "",
                                                                                              "version": ""}
    assert records[2].data["body"] is None


@pytest.mark.parametrize(("span", "field", "words"), [
    (_span(traceId="xyz"), "resourceSpans[0].scopeSpans[0].spans[1].traceId", "32-digit hex id"),
    (_span(spanId=None), "resourceSpans[0].scopeSpans[0].spans[1].spanId", "16-digit hex id"),
    (_span(kind=9), "resourceSpans[0].scopeSpans[0].spans[1].kind", "unknown value 9"),
    (_span(kind="SPAN_KIND_SIDEWAYS"), "resourceSpans[0].scopeSpans[0].spans[1].kind", "SIDEWAYS"),
    (_span(startTimeUnixNano="soon"), "resourceSpans[0].scopeSpans[0].spans[1].startTimeUnixNano", "integer"),
    (_span(attributes=[{"key": "x", "value": {"floatValue": 1}}]),
     "resourceSpans[0].scopeSpans[0].spans[1].attributes[0].value", "floatValue"),
    (_span(attributes=[{"value": {"stringValue": "x"}}]),
     "resourceSpans[0].scopeSpans[0].spans[1].attributes[0]", "key"),
    (_span(attributes=[{"key": "x", "value": {"intValue": "1.5"}}]),
     "resourceSpans[0].scopeSpans[0].spans[1].attributes[0].value.intValue", "integer"),
    (_span(status={"code": 7}), "resourceSpans[0].scopeSpans[0].spans[1].status.code", "STATUS_CODE_ERROR"),
    ("not a span", "resourceSpans[0].scopeSpans[0].spans[1]", "JSON object"),
])
def test_a_bad_field_is_named_with_its_path(span: object, field: str, words: str) -> None:
    with pytest.raises(EvalInputError) as caught:
        list(otlp_json_records(_document(_span(), span), "export.jsonl", line=3))
    error = caught.value
    assert (error.file, error.line, error.field) == ("export.jsonl", 3, field)
    assert words in str(error)


# --- protobuf -----------------------------------------------------------------------------------------------------


def _kv(key: str, **value: object) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))


def _pb_attributes() -> list[KeyValue]:
    from opentelemetry.proto.common.v1.common_pb2 import ArrayValue, KeyValueList

    return [_kv("s", string_value="text"), _kv("i", int_value=9007199254740993), _kv("i_number", int_value=42),
            _kv("d", double_value=0.25), _kv("b", bool_value=True),
            _kv("a", array_value=ArrayValue(values=[AnyValue(string_value="x"), AnyValue(int_value=2)])),
            _kv("kv", kvlist_value=KeyValueList(values=[_kv("inner", bool_value=False),
                                                        _kv("n", double_value=1.5)])),
            _kv("bytes", bytes_value=b"\x00\x01\x02"), KeyValue(key="empty", value=AnyValue())]


def _traces_request() -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(_kv("service.name", string_value="travel_agent.DEFAULT"))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name, scope_spans.scope.version = "strands.telemetry.tracer", "1.2"
    span = scope_spans.spans.add(trace_id=bytes.fromhex(TRACE), span_id=bytes.fromhex(SPAN),
                                 parent_span_id=bytes.fromhex(PARENT), name="execute_tool search_flights",
                                 kind=PbSpan.SPAN_KIND_INTERNAL, start_time_unix_nano=1795165200000000000,
                                 end_time_unix_nano=1795165200240000000, flags=256,
                                 status=Status(code=Status.STATUS_CODE_OK))
    span.attributes.extend(_pb_attributes())
    event = span.events.add(time_unix_nano=1795165200100000000, name="gen_ai.tool.message")
    event.attributes.append(_kv("id", string_value="tooluse_1"))
    scope_spans.spans.add(trace_id=bytes.fromhex(TRACE), span_id=bytes.fromhex(PARENT), name="chat",
                          kind=PbSpan.SPAN_KIND_CLIENT, start_time_unix_nano=1795165200000000000,
                          end_time_unix_nano=1795165200500000000,
                          status=Status(code=Status.STATUS_CODE_ERROR, message="throttled"))
    return request


def _logs_request() -> ExportLogsServiceRequest:
    from opentelemetry.proto.common.v1.common_pb2 import ArrayValue, KeyValueList

    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(_kv("service.name", string_value="travel_agent.DEFAULT"))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "strands.telemetry.tracer"
    body = AnyValue(kvlist_value=KeyValueList(values=[
        _kv("output", kvlist_value=KeyValueList(values=[
            _kv("messages", array_value=ArrayValue(values=[AnyValue(kvlist_value=KeyValueList(values=[
                _kv("role", string_value="assistant"), _kv("content", string_value="Booked.")]))]))]))]))
    log = scope_logs.log_records.add(time_unix_nano=1795165200300000000, observed_time_unix_nano=1795165200400000000,
                                     severity_number=9, trace_id=bytes.fromhex(TRACE), span_id=bytes.fromhex(SPAN),
                                     body=body)
    log.attributes.append(_kv("event.name", string_value="strands.telemetry.tracer"))
    return request


def test_protobuf_traces_read_as_the_same_flat_records() -> None:
    first, second = otlp_protobuf_records(_traces_request().SerializeToString(), "spans.pb")
    assert first.source == "spans.pb" and first.is_span
    assert first.data == flat_tool_span()
    assert second.data["kind"] == "CLIENT" and "parentSpanId" not in second.data
    assert second.data["status"] == {"code": "ERROR", "message": "throttled"}


def test_protobuf_and_its_json_printing_give_the_same_records() -> None:
    """protobuf's own JSON printer (base64 ids, camelCase, enum names) read as OTLP/JSON agrees with the bytes."""
    request = _traces_request()
    printed = json.loads(json_format.MessageToJson(request))
    assert printed["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["kind"] == "SPAN_KIND_INTERNAL"
    from_json = [r.data for r in otlp_json_records(printed, None)]
    from_bytes = [r.data for r in otlp_protobuf_records(request.SerializeToString(), None)]
    assert from_json == from_bytes
    logs = _logs_request()
    assert [r.data for r in otlp_json_records(json.loads(json_format.MessageToJson(logs)), None)] == \
        [r.data for r in otlp_protobuf_records(logs.SerializeToString(), None)]


def test_protobuf_logs_read_as_event_records() -> None:
    [record] = otlp_protobuf_records(_logs_request().SerializeToString(), None)
    assert not record.is_span
    assert record.data == {
        "resource": {"attributes": {"service.name": "travel_agent.DEFAULT"}},
        "scope": {"name": "strands.telemetry.tracer", "version": ""},
        "timeUnixNano": 1795165200300000000, "observedTimeUnixNano": 1795165200400000000, "severityNumber": 9,
        "traceId": TRACE, "spanId": SPAN, "attributes": {"event.name": "strands.telemetry.tracer"},
        "body": {"output": {"messages": [{"role": "assistant", "content": "Booked."}]}}}


def test_traces_data_and_logs_data_messages_and_a_length_prefixed_stream() -> None:
    traces = TracesData.FromString(_traces_request().SerializeToString())
    logs = LogsData.FromString(_logs_request().SerializeToString())
    assert len(list(otlp_protobuf_records(traces.SerializeToString(), None))) == 2
    assert len(list(otlp_protobuf_records(logs.SerializeToString(), None))) == 1
    stream = b"".join(len(data).to_bytes(4, "big") + data
                      for data in (traces.SerializeToString(), logs.SerializeToString()))
    assert [r.is_span for r in otlp_protobuf_records(stream, None)] == [True, True, False]
    assert list(otlp_protobuf_records(b"", None)) == []


def test_a_log_with_only_a_body_is_not_mistaken_for_a_span() -> None:
    request = ExportLogsServiceRequest()
    request.resource_logs.add().scope_logs.add().log_records.add(body=AnyValue(string_value="hello"))
    [record] = otlp_protobuf_records(request.SerializeToString(), None)
    assert record.data["body"] == "hello" and not record.is_span


@pytest.mark.parametrize("data", [b"\x0a\xff\xff\xff", b"\x00\x00\x00\x09abc", b"garbage that is not protobuf"])
def test_bytes_that_are_not_otlp_are_an_input_error(data: bytes) -> None:
    with pytest.raises(EvalInputError) as caught:
        list(otlp_protobuf_records(data, "bad.pb"))
    assert caught.value.file == "bad.pb"
