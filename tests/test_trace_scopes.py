"""Each supported instrumentation scope's spans → canonical Span fields, checked against values written out by hand
from the fixture records (tests/fixtures/traces/); the scope-reader registry and its plugins; the content decoder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from eval_pipeline.data.messages import ChatMessage, ToolCall, messages_to_json
from eval_pipeline.traces.otel_records import spans_from_records
from eval_pipeline.traces.records import RawRecord
from eval_pipeline.traces.scopes import SCOPE_READERS, GenAIReader, SpanReading, SpanRecord, reader_for
from eval_pipeline.traces.scopes.content import BodyShapeError, decode_messages, text_of
from eval_pipeline.traces.spans import Span

FIXTURES = Path(__file__).parent / "fixtures" / "traces"


def load(name: str) -> list[Span]:
    path = FIXTURES / name
    lines = path.read_text().splitlines()
    return spans_from_records(RawRecord(json.loads(text), str(path), number) for number, text in enumerate(lines, 1))


def by_name(spans: list[Span], name: str) -> list[Span]:
    return [span for span in spans if span.name == name]


def msgs(*messages: ChatMessage) -> str:
    return messages_to_json(messages)


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def assistant(text: str, *calls: ToolCall) -> ChatMessage:
    return ChatMessage(role="assistant", content=text, tool_calls=calls)


def tool(text: str, call_id: str, name: str | None = None) -> ChatMessage:
    return ChatMessage(role="tool", content=text, tool_call_id=call_id, name=name)


def args(**values: object) -> str:
    return json.dumps(values)


# -- Strands -----------------------------------------------------------------------------------------------------

FLIGHT = "Book me a flight from Seattle to Paris on June 3"
SEARCH = ToolCall(id="tooluse_Ab12", name="search_flights",
                  arguments=args(origin="SEA", destination="CDG", date="2026-06-03"))
FINAL = "I found AF337 departing at 13:40 for 612 USD. Shall I book it?"


def test_strands_classic_span_events() -> None:
    spans = load("strands_classic.jsonl")
    assert [s.kind for s in spans] == ["agent", "other", "llm", "tool", "llm"]
    assert {s.session_id for s in spans} == {"55bb3c9b-1f0e-4a8e-9c1c-1d2b3c4d5e6f"}
    assert {s.scope for s in spans} == {"strands.telemetry.tracer"}
    assert {s.service for s in spans} == {"flight_agent.DEFAULT"}
    agent = spans[0]
    assert agent.operation == "invoke_agent"
    assert agent.input == msgs(ChatMessage(role="system", content="You are a travel agent."), user(FLIGHT))
    assert agent.output == msgs(assistant(FINAL))
    assert json.loads(agent.available_tools) == ["search_flights", "book_flight"]
    assert (agent.model, agent.tokens_in, agent.tokens_out) == ("us.anthropic.claude-sonnet-4-20250514-v1:0",
                                                                4608, 822)
    assert agent.has_body and agent.parent_id is None and agent.status == "OK"
    first_chat, second_chat = by_name(spans, "chat")
    assert first_chat.input == msgs(user(FLIGHT))
    assert first_chat.output == msgs(assistant("Let me search for flights.", SEARCH))
    assert (first_chat.tokens_in, first_chat.tokens_out) == (1500, 120)
    assert second_chat.input == msgs(user(FLIGHT), assistant("Let me search for flights.", SEARCH),
                                     tool("AF337 departs 13:40, 612 USD", "tooluse_Ab12"))
    assert second_chat.output == msgs(assistant(FINAL))
    call = spans[3]
    assert (call.tool_name, call.tool_call_id, call.operation) == ("search_flights", "tooluse_Ab12", "execute_tool")
    assert json.loads(call.tool_args) == {"origin": "SEA", "destination": "CDG", "date": "2026-06-03"}
    assert call.output == "AF337 departs 13:40, 612 USD"
    assert call.input is None and call.has_body
    assert all(s.error is None for s in spans)


def test_strands_latest_experimental_conventions() -> None:
    agent, chat, call = load("strands_latest.jsonl")
    weather = ToolCall(id="tooluse_W1", name="get_weather", arguments=args(city="Paris"))
    assert (agent.kind, chat.kind, call.kind) == ("agent", "llm", "tool")
    assert agent.session_id == chat.session_id == call.session_id == "strands-latest-session-1"
    assert agent.input == msgs(user("What is the weather in Paris?"))
    assert agent.output == msgs(assistant("It is 18°C and sunny in Paris."))
    assert json.loads(agent.available_tools) == ["get_weather"]
    assert chat.output == msgs(assistant("", weather))
    assert (call.tool_name, call.tool_call_id, call.tool_args, call.output) == (
        "get_weather", "tooluse_W1", args(city="Paris"), "18C, sunny")
    assert all(s.has_body for s in (agent, chat, call))


def test_strands_cloudwatch_event_records_joined_to_their_spans() -> None:
    spans = load("strands_cloudwatch.jsonl")
    with_bodies = [s for s in spans if s.session_id == "cw-session-with-bodies"]
    without = [s for s in spans if s.session_id == "cw-session-without-bodies"]
    assert [s.kind for s in with_bodies] == [s.kind for s in without] == ["agent", "llm", "tool"]
    agent, chat, call = with_bodies
    assert agent.input == msgs(user("Who manages Ana Lima?"))
    assert agent.output == msgs(assistant("Ana Lima is managed by Rui Costa."))
    assert chat.output == msgs(assistant("", ToolCall(id="tooluse_E1", name="employee_lookup",
                                                      arguments=args(name="Ana Lima"))))
    assert (call.tool_name, call.tool_args, call.output) == ("employee_lookup", args(name="Ana Lima"),
                                                             "manager: Rui Costa")
    assert all(s.has_body for s in with_bodies)
    assert [s.has_body for s in without] == [False, False, False]
    assert all(s.input is None and s.output is None for s in without)
    assert [s.line for s in spans] == [4, 5, 6, 7, 8, 9], "the event records come first in the file"


# -- LangGraph ---------------------------------------------------------------------------------------------------

NOMA = "Book a table for two at Noma tonight"
BOOK = ToolCall(id="toolu_01", name="book_table", arguments=args(restaurant="Noma", party_size=2, time="19:00"))
BOOKED = "Booked: Noma, 2 people, 19:00, ref NX-42"
NOMA_REPLY = "Your table for two at Noma is booked for 19:00 (ref NX-42)."


def test_langgraph_through_openllmetry() -> None:
    spans = load("langgraph_traceloop.jsonl")
    assert [(s.name, s.kind) for s in spans] == [
        ("LangGraph.workflow", "agent"), ("agent.task", "other"), ("ChatBedrockConverse.chat", "llm"),
        ("tools.task", "other"), ("book_table.tool", "tool"), ("ChatBedrockConverse.chat", "llm")]
    assert {s.session_id for s in spans} == {"langgraph-thread-7"}
    workflow = spans[0]
    assert workflow.input == msgs(user(NOMA))
    assert workflow.output == msgs(assistant("", BOOK), tool(BOOKED, "toolu_01", "book_table"),
                                   assistant(NOMA_REPLY)), "the state's echo of the prompt is dropped"
    first, second = by_name(spans, "ChatBedrockConverse.chat")
    system = ChatMessage(role="system", content="You book restaurants.")
    assert first.input == msgs(system, user(NOMA))
    assert first.output == msgs(assistant("", BOOK))
    assert json.loads(first.available_tools) == ["book_table", "cancel_booking"]
    assert (first.model, first.tokens_in, first.tokens_out) == ("anthropic.claude-3-5-haiku-20241022-v1:0", 812, 64)
    assert second.input == msgs(system, user(NOMA), assistant("", BOOK), tool(BOOKED, "toolu_01"))
    assert second.output == msgs(assistant(NOMA_REPLY))
    call = spans[4]
    assert (call.tool_name, call.tool_call_id, call.output) == ("book_table", "toolu_01", BOOKED)
    assert json.loads(call.tool_args) == {"restaurant": "Noma", "party_size": 2, "time": "19:00"}
    assert [s.has_body for s in spans] == [True, False, True, False, True, True]


def test_langgraph_through_openinference() -> None:
    spans = load("langgraph_openinference.jsonl")
    assert [(s.name, s.kind) for s in spans] == [
        ("LangGraph", "agent"), ("agent", "other"), ("ChatOpenAI", "llm"), ("convert_currency", "tool"),
        ("ChatOpenAI", "llm")]
    assert {s.session_id for s in spans} == {"oi-langgraph-session-3"}
    convert = ToolCall(id="call_9", name="convert_currency", arguments=args(amount=100, **{"from": "USD"}, to="EUR"))
    graph, _, first, call, second = spans
    assert graph.input == msgs(user("Convert 100 USD to EUR"))
    assert graph.output == msgs(assistant("", convert), tool("92.40 EUR", "call_9", "convert_currency"),
                                assistant("100 USD is 92.40 EUR."))
    assert first.input == msgs(user("Convert 100 USD to EUR")), "structured messages win over input.value"
    assert first.output == msgs(assistant("", convert))
    assert json.loads(first.available_tools) == ["convert_currency"]
    assert (first.model, first.tokens_in, first.tokens_out) == ("gpt-4o-mini", 95, 22)
    assert second.input == msgs(user("Convert 100 USD to EUR"), assistant("", convert), tool("92.40 EUR", "call_9"))
    assert second.output == msgs(assistant("100 USD is 92.40 EUR."))
    assert call.tool_name == "convert_currency"
    assert json.loads(call.tool_args) == {"amount": 100, "from": "USD", "to": "EUR"}, "a Python literal read as JSON"
    assert call.output == "92.40 EUR"


# -- OpenAI Agents -----------------------------------------------------------------------------------------------

def test_openai_agents_through_openinference() -> None:
    spans = load("openai_agents_openinference.jsonl")
    assert [s.kind for s in spans] == ["agent", "agent", "llm", "tool", "llm"]
    assert {s.session_id for s in spans} == {"oa-oi-session-1"}
    order = ToolCall(id="call_ord", name="order_status", arguments=args(order_id="1234"))
    _, _, first, call, second = spans
    assert first.input == msgs(ChatMessage(role="system", content="You help with orders."),
                               user("Where is order 1234?"))
    assert first.output == msgs(assistant("", order))
    assert json.loads(first.available_tools) == ["order_status", "refund"]
    assert (first.model, first.tokens_in, first.tokens_out) == ("gpt-4.1-2025-04-14", 210, 18)
    assert (call.tool_name, call.tool_args, call.output) == ("order_status", args(order_id="1234"),
                                                             "shipped on 2026-05-01")
    assert second.input == msgs(user("Where is order 1234?"), assistant("", order),
                                tool("shipped on 2026-05-01", "call_ord"))
    assert second.output == msgs(assistant("Order 1234 shipped on May 1."))
    assert [s.has_body for s in spans] == [False, False, True, True, True]


def test_openai_agents_through_openllmetry() -> None:
    spans = load("openai_agents_otel.jsonl")
    assert [s.kind for s in spans] == ["agent", "agent", "llm", "tool", "llm"]
    assert {s.session_id for s in spans} == {"oa-otel-session-1"}, "gen_ai.conversation.id"
    cancel = ToolCall(id="call_c77", name="cancel_order", arguments=args(order_id="77"))
    _, agent, first, call, second = spans
    assert agent.operation == "invoke_agent"
    assert first.input == msgs(ChatMessage(role="system", content="You help with orders."), user("Cancel order 77"))
    assert first.output == msgs(assistant("", cancel))
    assert json.loads(first.available_tools) == ["cancel_order"]
    assert (first.model, first.tokens_in, first.tokens_out) == ("gpt-4.1", 150, 20)
    assert (call.tool_name, call.tool_args, call.output) == ("cancel_order", args(order_id="77"),
                                                             "order 77 cancelled")
    assert second.input == msgs(user("Cancel order 77"), assistant("", cancel), tool("order 77 cancelled", "call_c77"))
    assert second.output == msgs(assistant("Order 77 is cancelled."))


# -- the registry ------------------------------------------------------------------------------------------------

def test_the_supported_scopes_are_registered() -> None:
    assert {"strands.telemetry.tracer", "opentelemetry.instrumentation.langchain",
            "openinference.instrumentation.langchain", "openinference.instrumentation.openai_agents",
            "opentelemetry.instrumentation.openai_agents"} <= set(SCOPE_READERS.names())


def test_an_unknown_scope_is_read_by_the_genai_conventions() -> None:
    record = {"scope": {"name": "acme.unheard.of"}, "traceId": "ab" * 16, "spanId": "cd" * 8, "name": "chat gpt-x",
              "startTimeUnixNano": 1, "endTimeUnixNano": 2,
              "attributes": {"gen_ai.operation.name": "chat", "gen_ai.conversation.id": "c-1",
                             "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
                                 {"type": "text", "content": "hi"}]}])}}
    (span,) = spans_from_records([RawRecord(record)])
    assert (span.kind, span.session_id, span.scope, span.input, span.has_body) == (
        "llm", "c-1", "acme.unheard.of", msgs(user("hi")), True)


class AcmeReader(GenAIReader):
    """A plugin's reader: its own kind attribute and session attribute, the rest by the GenAI conventions."""

    session_keys = ("acme.session",)

    def kind(self, record: SpanRecord) -> str:
        return {"step": "agent", "call": "tool"}.get(record.attr("acme.kind"), "other")

    def tool_name(self, record: SpanRecord) -> str | None:
        return record.attr("acme.tool")


ACME_RECORDS = [
    {"scope": {"name": "acme.agents.tracer"}, "traceId": "12" * 16, "spanId": "34" * 8, "name": "step",
     "startTimeUnixNano": 10, "endTimeUnixNano": 20, "attributes": {"acme.kind": "step", "acme.session": "s-9"}},
    {"scope": {"name": "acme.agents.tracer"}, "traceId": "12" * 16, "spanId": "56" * 8, "parentSpanId": "34" * 8,
     "name": "call", "startTimeUnixNano": 11, "endTimeUnixNano": 19,
     "attributes": {"acme.kind": "call", "acme.tool": "lookup", "gen_ai.tool.call.arguments": '{"q": 1}'}},
]


def test_a_scope_reader_registered_at_test_time_is_used() -> None:
    SCOPE_READERS.register("acme.agents.tracer", AcmeReader())
    try:
        step, call = spans_from_records(RawRecord(r) for r in ACME_RECORDS)
    finally:
        SCOPE_READERS.unregister("acme.agents.tracer")
    assert (step.kind, step.session_id) == ("agent", "s-9")
    assert (call.kind, call.tool_name, call.tool_args, call.session_id) == ("tool", "lookup", '{"q": 1}', "s-9")
    before = spans_from_records(RawRecord(r) for r in ACME_RECORDS)
    assert [s.kind for s in before] == ["other", "other"], "without the plugin the GenAI reader knows neither"


def test_a_plugin_reader_is_found_through_its_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "acme_scope.py").write_text(
        "from eval_pipeline.traces.scopes import SpanReading\n"
        "class Reader:\n"
        "    def read(self, record):\n"
        "        return SpanReading(kind='agent', session_id='from-plugin')\n"
        "READER = Reader()\n")
    info = tmp_path / "acme_scope-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-scope\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[eval_pipeline.trace_scopes]\nacme.plugin.tracer = acme_scope:READER\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "acme_scope", raising=False)
    monkeypatch.setattr(SCOPE_READERS, "_plugins_read", False)
    try:
        reader = reader_for("acme.plugin.tracer")
        assert type(reader).__name__ == "Reader"
        (span,) = spans_from_records([RawRecord({**ACME_RECORDS[0], "scope": {"name": "acme.plugin.tracer"}})])
    finally:
        SCOPE_READERS.unregister("acme.plugin.tracer")
    assert (span.kind, span.session_id, span.has_body) == ("agent", "from-plugin", False)


def test_a_plugin_reader_that_fails_leaves_the_span_to_the_genai_reader_and_says_so() -> None:
    class Broken:
        def read(self, record: SpanRecord) -> SpanReading:
            raise KeyError("acme.kind")

    SCOPE_READERS.register("acme.broken", Broken())
    try:
        (span,) = spans_from_records([RawRecord({**ACME_RECORDS[0], "scope": {"name": "acme.broken"}})])
    finally:
        SCOPE_READERS.unregister("acme.broken")
    assert span.kind == "other" and span.span_id == "34" * 8
    assert "scope reader for 'acme.broken' failed (KeyError" in span.error


# -- the content decoder -----------------------------------------------------------------------------------------

def test_json_encoded_strands_content_blocks_decode_to_text_and_tool_calls() -> None:
    encoded = {"content": json.dumps([{"text": "Book me a flight"}])}
    assert decode_messages(encoded, "user") == [user("Book me a flight")]
    blocks = json.dumps([{"text": "Searching."}, {"toolUse": {"toolUseId": "t1", "name": "search",
                                                              "input": {"q": "SEA"}}}])
    assert decode_messages(blocks, "assistant") == [assistant("Searching.", ToolCall("t1", "search", args(q="SEA")))]
    results = [{"toolResult": {"toolUseId": "t1", "status": "error", "content": [{"text": "timeout"}]}}]
    assert decode_messages(json.dumps(results), "user") == [
        ChatMessage(role="tool", content="timeout", tool_call_id="t1", is_error=True)]


def test_text_that_only_looks_like_json_stays_text() -> None:
    assert decode_messages("[1, 2] is the answer", "assistant") == [assistant("[1, 2] is the answer")]
    assert decode_messages('{"not": "a message"}', "assistant") == [assistant('{"not": "a message"}')]
    assert text_of(json.dumps([{"text": "a"}, {"text": "b"}])) == "a\nb"


def test_openai_responses_items_and_langchain_pairs_decode() -> None:
    items = [{"role": "user", "content": "hi", "type": "message"},
             {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"x": 1}'},
             {"type": "function_call_output", "call_id": "c1", "output": "done"}]
    assert decode_messages(items, "user") == [user("hi"), assistant("", ToolCall("c1", "f", '{"x": 1}')),
                                              tool("done", "c1")]
    assert decode_messages([["human", "hello"], ["ai", "hey"]], "user") == [user("hello"), assistant("hey")]


def test_a_number_is_not_a_message() -> None:
    with pytest.raises(BodyShapeError):
        decode_messages(42, "user")
    with pytest.raises(BodyShapeError):
        decode_messages([1, 2], "user")


def test_an_adot_body_s_copy_of_input_value_is_dropped_and_its_messages_kept_once() -> None:
    """ADOT's event body for an OpenInference LLM span lists ``input.value`` (role user) and then each
    ``llm.input_messages.N``: the conversation is read once, in the indexed messages' order."""
    oi_input = json.dumps({"messages": [[
        {"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", "SystemMessage"],
         "kwargs": {"content": "Be brief."}},
        {"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", "HumanMessage"],
         "kwargs": {"content": "2+2?"}}]]})
    span = {"scope": {"name": "openinference.instrumentation.langchain"}, "traceId": "ab" * 16, "spanId": "cd" * 8,
            "parentSpanId": "ef" * 8, "name": "ChatOpenAI", "startTimeUnixNano": 1, "endTimeUnixNano": 2,
            "attributes": {"openinference.span.kind": "LLM", "session.id": "s"}}
    body = {"input": {"messages": [{"role": "user", "content": oi_input}, {"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "2+2?"}]},
            "output": {"messages": [{"role": "assistant", "content": "4"}]}}
    event = {"scope": span["scope"], "traceId": "ab" * 16, "spanId": "cd" * 8, "timeUnixNano": 3,
             "attributes": {"event.name": "openinference.instrumentation.langchain"}, "body": body}
    (read,) = spans_from_records([RawRecord(span), RawRecord(event)])
    assert read.input == msgs(ChatMessage(role="system", content="Be brief."), user("2+2?"))
    assert read.output == msgs(assistant("4")) and read.has_body


def test_a_message_said_twice_in_a_conversation_is_kept_twice() -> None:
    events = [{"name": "gen_ai.user.message", "timeUnixNano": 1, "attributes": {"content": "yes"}},
              {"name": "gen_ai.assistant.message", "timeUnixNano": 2, "attributes": {"content": "Sure?"}},
              {"name": "gen_ai.user.message", "timeUnixNano": 3, "attributes": {"content": "yes"}}]
    record = {"scope": {"name": "some.genai.library"}, "traceId": "ab" * 16, "spanId": "cd" * 8, "name": "chat",
              "startTimeUnixNano": 1, "endTimeUnixNano": 4, "attributes": {"gen_ai.operation.name": "chat"},
              "events": events}
    (span,) = spans_from_records([RawRecord(record)])
    assert span.input == msgs(user("yes"), assistant("Sure?"), user("yes"))
