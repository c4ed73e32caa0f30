"""Span and event records → Spans: joining events to spans, bodies, sessions across a trace, status, and bad
records named by file, line and field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from eval_pipeline.data.messages import ChatMessage, messages_to_json
from eval_pipeline.data.schemas import TRACES, conform
from eval_pipeline.errors import EvalInputError
from eval_pipeline.traces.otel_records import spans_from_records
from eval_pipeline.traces.records import RawRecord
from eval_pipeline.traces.spans import span_from_row, spans_frame

TRACE = "0123456789abcdef0123456789abcdef"
AGENT, CHAT, TOOL = "a" * 16, "b" * 16, "c" * 16
SCOPE = {"name": "strands.telemetry.tracer"}


def span_record(span_id: str, parent: str | None, name: str, attributes: dict[str, Any], **extra: Any
                ) -> dict[str, Any]:
    return {"resource": {"attributes": {"service.name": "svc.DEFAULT"}}, "scope": SCOPE, "traceId": TRACE,
            "spanId": span_id, "parentSpanId": parent or "", "name": name, "kind": "INTERNAL",
            "startTimeUnixNano": 1_000, "endTimeUnixNano": 2_000, "attributes": attributes,
            "status": {"code": "OK"}, **extra}


def event_record(span_id: str, at: int, body: Any, trace: str = TRACE) -> dict[str, Any]:
    return {"scope": SCOPE, "traceId": trace, "spanId": span_id, "timeUnixNano": at,
            "attributes": {"event.name": SCOPE["name"]}, "body": body}


def turn() -> list[dict[str, Any]]:
    """One Strands turn without bodies; the session id only on the agent span."""
    return [
        span_record(AGENT, None, "invoke_agent a", {"gen_ai.operation.name": "invoke_agent", "session.id": "s-1"}),
        span_record(CHAT, AGENT, "chat", {"gen_ai.operation.name": "chat"}),
        span_record(TOOL, AGENT, "execute_tool t", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "t",
                                                    "gen_ai.tool.call.id": "t-1"}),
    ]


def read(records: list[Any], source: str = "spans.jsonl") -> list:
    return spans_from_records(RawRecord(r, source, n) for n, r in enumerate(records, 1))


def msgs(*pairs: tuple[str, str]) -> str:
    return messages_to_json([ChatMessage(role=role, content=text) for role, text in pairs])


def test_spans_without_event_records_have_no_body() -> None:
    spans = read(turn())
    assert [(s.kind, s.has_body, s.input, s.output) for s in spans] == [
        ("agent", False, None, None), ("llm", False, None, None), ("tool", False, None, None)]


def test_event_records_are_joined_to_their_span_by_trace_and_span_id_whatever_their_order() -> None:
    events = [
        event_record(CHAT, 30, {"output": {"messages": [{"role": "assistant", "content": {"message": "second"}}]}}),
        event_record(AGENT, 50, {"input": {"messages": [{"role": "user", "content": {"content": "hi"}}]},
                                 "output": {"messages": [{"role": "assistant", "content": {"message": "bye"}}]}}),
        event_record(CHAT, 10, {"input": {"messages": [{"role": "user", "content": {"content": "hi"}}]},
                                "output": {"messages": [{"role": "assistant", "content": {"message": "first"}}]}}),
        event_record("d" * 16, 5, {"input": {"messages": [{"role": "user", "content": "orphan"}]}}),
        event_record(CHAT, 5, {"input": {"messages": [{"role": "user", "content": "other trace"}]}},
                     trace="f" * 32),
    ]
    agent, chat, tool = read(events + turn())
    assert (agent.input, agent.output, agent.has_body) == (msgs(("user", "hi")), msgs(("assistant", "bye")), True)
    assert chat.input == msgs(("user", "hi"))
    assert chat.output == msgs(("assistant", "first"), ("assistant", "second")), "event records in time order"
    assert not tool.has_body


def test_a_trace_s_spans_share_its_session_id() -> None:
    spans = read(turn())
    assert [s.session_id for s in spans] == ["s-1", "s-1", "s-1"]
    other = {**turn()[1], "traceId": "e" * 32}
    assert read([other])[0].session_id is None


def test_a_span_repeated_is_kept_once() -> None:
    spans = read(turn() + turn()[:1])
    assert [s.span_id for s in spans] == [AGENT, CHAT, TOOL]


def test_status_ids_times_source_and_attributes_are_kept() -> None:
    record = span_record(CHAT, AGENT, "chat", {"gen_ai.operation.name": "chat", "n": 3},
                         status={"code": "STATUS_CODE_ERROR", "message": "throttled"})
    record.update(traceId=TRACE.upper(), startTimeUnixNano="1778309938000000001", endTimeUnixNano=1778309939000000000)
    (span,) = read([record], source="/logs/aws/spans")
    assert (span.trace_id, span.span_id, span.parent_id) == (TRACE, CHAT, AGENT)
    assert (span.start_ns, span.end_ns) == (1778309938000000001, 1778309939000000000)
    assert (span.status, span.status_message) == ("ERROR", "throttled")
    assert (span.source, span.line, span.service, span.scope) == ("/logs/aws/spans", 1, "svc.DEFAULT",
                                                                  "strands.telemetry.tracer")
    assert json.loads(span.attributes) == {"gen_ai.operation.name": "chat", "n": 3}


def test_an_all_zero_parent_is_a_root() -> None:
    (span,) = read([span_record(AGENT, "0" * 16, "invoke_agent a", {})])
    assert span.parent_id is None


def test_an_event_body_of_another_shape_is_the_span_s_error_and_the_span_is_kept() -> None:
    events = [event_record(AGENT, 1, "just text"),
              event_record(CHAT, 1, {"input": {"messages": "not a list"}}),
              event_record(CHAT, 2, {"output": {"messages": [{"role": "assistant", "content": 7}]}})]
    agent, chat, tool = read(events + turn())
    assert "body is not {input: {messages: [...]}, output: {messages: [...]}}" in agent.error
    assert agent.kind == "agent" and agent.session_id == "s-1" and not agent.has_body
    assert "body.input.messages is not a list" in chat.error
    assert "event record body.output: a int is not a message" in chat.error
    assert tool.error is None


def test_spans_make_a_traces_table() -> None:
    frame = spans_frame(read(turn()))
    table = conform(frame, TRACES)
    assert table.schema == TRACES and table.num_rows == 3
    assert table.column("has_body").to_pylist() == [False, False, False]
    assert table.column("kind").to_pylist() == ["agent", "llm", "tool"]
    back = span_from_row(frame.iloc[2].to_dict())
    assert (back.tool_name, back.tool_call_id) == ("t", "t-1")
    assert table.column("start_ns").to_pylist() == [1_000, 1_000, 1_000]


BAD_RECORDS = [
    ([1, 2], None, "is a JSON object, not list"),
    ("a line", None, "is a JSON object, not str"),
    ({"spanId": AGENT, "name": "x", "startTimeUnixNano": 1}, "traceId", "missing"),
    ({"traceId": TRACE, "name": "x", "startTimeUnixNano": 1}, "spanId", "missing"),
    ({"traceId": TRACE[:-1], "spanId": AGENT, "name": "x"}, "traceId", "is not 32 hex digits"),
    ({"traceId": TRACE, "spanId": "g" * 16, "name": "x"}, "spanId", "is not 16 hex digits"),
    ({"traceId": TRACE, "spanId": AGENT, "name": "x", "parentSpanId": "abc"}, "parentSpanId",
     "is not 16 hex digits"),
    ({"traceId": TRACE, "spanId": AGENT, "name": "x", "startTimeUnixNano": 1.5}, "startTimeUnixNano",
     "is not an integer"),
    ({"traceId": TRACE, "spanId": AGENT, "name": "x", "endTimeUnixNano": "soon"}, "endTimeUnixNano",
     "is not an integer"),
    ({"traceId": TRACE, "spanId": AGENT, "name": "x", "events": [{"name": "e", "timeUnixNano": "x"}]},
     "events[0].timeUnixNano", "is not an integer"),
    ({"traceId": TRACE, "spanId": AGENT, "name": "x", "attributes": ["a"]}, "attributes", "is a JSON object"),
    ({"traceId": TRACE, "spanId": AGENT, "body": {}, "timeUnixNano": True}, "timeUnixNano", "is not an integer"),
]


@pytest.mark.parametrize(("record", "field", "reason"), BAD_RECORDS)
def test_a_malformed_record_names_file_line_and_field(record: Any, field: str | None, reason: str) -> None:
    with pytest.raises(EvalInputError) as caught:
        read([*turn(), record], source="runs/spans.jsonl")
    error = caught.value
    assert (error.file, error.line, error.field) == ("runs/spans.jsonl", 4, field)
    assert str(error).startswith("runs/spans.jsonl:4: ")
    assert reason in str(error)
    if field:
        assert f"field '{field}'" in str(error)


def test_token_counts_are_whole_numbers_or_the_span_says_why_not() -> None:
    good = span_record(CHAT, None, "chat", {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": "12",
                                            "gen_ai.usage.output_tokens": 7.0})
    bad = span_record(TOOL, None, "chat", {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": "many"})
    first, second = read([good, bad])
    assert (first.tokens_in, first.tokens_out, first.error) == (12, 7, None)
    assert second.tokens_in is None
    assert second.error == "attribute gen_ai.usage.input_tokens is not a whole number: 'many'"


@pytest.mark.parametrize(("name", "attributes", "kind"), [
    ("invoke_agent helper", {"gen_ai.operation.name": "invoke_agent"}, "agent"),
    ("invoke_swarm", {"gen_ai.operation.name": "invoke_swarm"}, "agent"),
    ("generate_content gemini", {"gen_ai.operation.name": "generate_content"}, "llm"),
    ("text_completion m", {"gen_ai.operation.name": "text_completion"}, "llm"),
    ("execute_tool lookup", {}, "tool"),
    ("anything", {"gen_ai.tool.name": "lookup"}, "tool"),
    ("embeddings m", {"gen_ai.operation.name": "embeddings"}, "other"),
    ("execute_event_loop_cycle", {}, "other"),
])
def test_the_genai_conventions_give_the_kind(name: str, attributes: dict[str, str], kind: str) -> None:
    (span,) = read([{**span_record(AGENT, None, name, attributes), "scope": {"name": "x"}}])
    assert span.kind == kind
    if kind == "tool":
        assert span.tool_name == "lookup"
