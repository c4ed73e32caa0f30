"""The sessions builder on hand-built spans: turns, prompts and replies, history, tool calls, sessions without
bodies; and ground truth loaded with errors that name the file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from eval_pipeline.data.messages import ChatMessage
from eval_pipeline.errors import EvalInputError
from eval_pipeline.traces.evaluators.base import ErrorCode
from eval_pipeline.traces.ground_truth import load_evaluation_metadata
from eval_pipeline.traces.sessions import sessions_from_traces
from eval_pipeline.traces.spans import Span, SpanKind, spans_frame

T1, T2 = "a" * 32, "b" * 32


def msgs(*pairs: tuple[str, str]) -> str:
    return json.dumps([{"role": role, "content": text} for role, text in pairs])


def agent(trace: str, span: str, start: int, given: str | None, reply: str | None, *, session: str | None = "s1",
          body: bool = True, tools: list[str] | None = None) -> Span:
    return Span(session, trace, span, kind=SpanKind.AGENT, name="invoke_agent A", input=given, output=reply,
                start_ns=start, end_ns=start + 100, has_body=body, service="svc",
                available_tools=json.dumps(tools) if tools else None, source="f.jsonl", line=start)


def llm(trace: str, span: str, parent: str, start: int, given: str | None, reply: str | None,
        body: bool = True, session: str | None = "s1") -> Span:
    return Span(session, trace, span, parent, SpanKind.LLM, "chat m", input=given, output=reply, start_ns=start,
                end_ns=start + 10, has_body=body)


def tool(trace: str, span: str, parent: str, start: int, name: str, args: str | None, result: str,
         status: str = "OK", session: str | None = "s1") -> Span:
    return Span(session, trace, span, parent, SpanKind.TOOL, f"execute_tool {name}", tool_name=name,
                tool_call_id=f"call-{span}", tool_args=args, output=result, start_ns=start, end_ns=start + 5,
                status=status)


def two_turns() -> list[Span]:
    """Turn 2 (trace T2) starts later but is listed first; its agent input carries only the new prompt."""
    return [
        agent(T2, "r2", 1000, msgs(("user", "And tomorrow?")), msgs(("assistant", "Rain tomorrow.")),
              tools=["weather", "clock"]),
        tool(T2, "t3", "r2", 1010, "weather", '{"day": "tomorrow"}', "rain"),
        agent(T1, "r1", 100, msgs(("system", "Be brief."), ("user", "Weather in Oslo?")),
              msgs(("assistant", "Sunny."))),
        llm(T1, "l1", "r1", 110, msgs(("user", "Weather in Oslo?")), msgs(("assistant", ""))),
        tool(T1, "t2", "r1", 130, "clock", "not json", "12:00", status="ERROR"),
        tool(T1, "t1", "r1", 120, "weather", '{"city": "Oslo"}', "sunny"),
    ]


def test_turns_in_start_order_with_prompts_replies_history_and_tool_calls() -> None:
    [session] = sessions_from_traces(spans_frame(two_turns()))
    assert session.session_id == "s1" and session.error is None and session.span_count == 6
    assert [t.trace_id for t in session.turns] == [T1, T2]
    first, second = session.turns
    assert (first.prompt, first.response, first.root_span_id) == ("Weather in Oslo?", "Sunny.", "r1")
    assert (second.prompt, second.response) == ("And tomorrow?", "Rain tomorrow.")
    assert first.messages == (ChatMessage("system", "Be brief."), ChatMessage("user", "Weather in Oslo?"),
                              ChatMessage("assistant", "Sunny."))
    # the second agent input held only the new prompt: the conversation so far comes first
    assert second.messages == (*first.messages, ChatMessage("user", "And tomorrow?"),
                               ChatMessage("assistant", "Rain tomorrow."))
    assert session.tool_names == ["weather", "clock", "weather"]
    call = first.tool_calls[0]
    assert (call.name, call.call_id, call.arguments, call.result, call.status) == (
        "weather", "call-t1", {"city": "Oslo"}, "sunny", "OK")
    assert first.tool_calls[1].arguments == "not json" and first.tool_calls[1].status == "ERROR"
    assert session.available_tools == ("weather", "clock")
    assert (session.start_ns, session.end_ns, session.service, session.sources) == (100, 1100, "svc", ("f.jsonl",))
    assert (first.start_ns, first.end_ns) == (100, 200)


def test_history_in_the_input_is_taken_as_it_is() -> None:
    spans = [agent(T1, "r1", 1, msgs(("user", "hi")), msgs(("assistant", "hello"))),
             agent(T2, "r2", 2, msgs(("user", "hi"), ("assistant", "hello"), ("user", "bye")),
                   msgs(("assistant", "ciao")))]
    second = sessions_from_traces(spans_frame(spans))[0].turns[1]
    assert [m.text for m in second.messages] == ["hi", "hello", "bye", "ciao"]


def test_model_spans_stand_in_for_a_missing_agent_span() -> None:
    spans = [llm(T1, "l1", None, 10, msgs(("user", "first ask")), msgs(("assistant", "draft"))),
             llm(T1, "l2", None, 20, msgs(("user", "first ask"), ("assistant", "draft")),
                 msgs(("assistant", "final answer")))]
    [turn] = sessions_from_traces(spans_frame(spans))[0].turns
    assert (turn.prompt, turn.response) == ("first ask", "final answer")


def test_a_session_without_bodies_is_a_session_error() -> None:
    spans = [agent(T1, "r1", 1, None, None, session="dry", body=False),
             llm(T1, "l1", "r1", 2, None, None, body=False, session="dry"),
             tool(T1, "t1", "r1", 3, "weather", "{}", "x", session="dry"),
             agent(T2, "r2", 5, msgs(("user", "q")), msgs(("assistant", "a")), session="wet")]
    dry, wet = sessions_from_traces(spans_frame(spans))
    assert (dry.session_id, dry.error_code) == ("dry", ErrorCode.LOG_EVENT_MISSING.value)
    assert "no event records with message bodies" in dry.error
    assert dry.tool_names == ["weather"]  # the spans are still read
    assert wet.error is None and wet.error_code is None


def test_sessions_ordered_by_first_start_then_id_and_spans_without_session_by_trace() -> None:
    spans = [agent(T1, "x", 50, msgs(("user", "q")), None, session="late"),
             agent(T2, "y", 10, msgs(("user", "q")), None, session=None),
             agent("c" * 32, "z", 50, msgs(("user", "q")), None, session="early")]
    assert [s.session_id for s in sessions_from_traces(spans_frame(spans))] == [T2, "early", "late"]


def test_times_survive_a_frame_with_missing_values_and_empty_frames() -> None:
    spans = [agent(T1, "r1", 1_700_000_000_123_456_789, msgs(("user", "q")), None),
             Span("s1", T1, "n", "r1", SpanKind.OTHER, start_ns=None)]
    frame = spans_frame(spans)
    assert str(frame["start_ns"].dtype) == "Int64" and frame["start_ns"].iloc[0] == 1_700_000_000_123_456_789
    [session] = sessions_from_traces(frame)
    assert session.start_ns == 1_700_000_000_123_456_789 and isinstance(session.start_ns, int)
    [as_floats] = sessions_from_traces(frame.astype({"start_ns": float}))  # a frame read back without Int64
    assert isinstance(as_floats.start_ns, int)
    assert sessions_from_traces(spans_frame([])) == []
    assert isinstance(spans_frame([]), pd.DataFrame)


# -- ground truth -------------------------------------------------------------------------------------------

def entry(i: int, **inline: object) -> dict[str, object]:
    return {"sessionId": f"s{i}", "testScenarioId": f"t{i}", "metadata": {"split": "dev"},
            "groundTruth": {"inline": inline}} if inline else {"sessionId": f"s{i}"}


def test_metadata_from_a_dict_and_a_file(tmp_path: Path) -> None:
    value = {"sessionMetadata": [entry(1, assertions=[{"text": "books one flight"}],
                                       expectedTrajectory={"toolNames": ["search", "book"]},
                                       turns=[{"input": {"prompt": "Book"}, "expectedResponse": {"text": "Done"}}]),
                                 entry(2, expectedTrajectory={"toolNames": []})]}
    (tmp_path / "gt.json").write_text(json.dumps(value))
    for loaded in (load_evaluation_metadata(value), load_evaluation_metadata("gt.json", root=tmp_path)):
        first, second = loaded["s1"], loaded["s2"]
        assert first.test_scenario_id == "t1" and first.metadata == {"split": "dev"}
        truth = first.ground_truth
        assert truth.assertions == ("books one flight",) and truth.expected_tool_names == ("search", "book")
        assert [(t.prompt, t.expected_response) for t in truth.turns] == [("Book", "Done")]
        assert truth.given() == ("assertions", "expectedTrajectory", "expectedResponse")
        assert second.ground_truth.expected_tool_names == () and second.ground_truth.given() == (
            "expectedTrajectory",)
    assert load_evaluation_metadata(None) == {}


@pytest.mark.parametrize(("sessions", "field"), [
    ([entry(i) for i in range(3)] + [entry(3, assertions=[{"text": "a"}] * 101)],
     "sessionMetadata[3].groundTruth.inline.assertions"),
    ([entry(i) for i in range(501)], "sessionMetadata"),
    ([entry(0), {"testScenarioId": "x"}], "sessionMetadata[1].sessionId"),
])
def test_bad_metadata_names_the_file_and_field(tmp_path: Path, sessions: list[dict[str, object]],
                                               field: str) -> None:
    (tmp_path / "gt.json").write_text(json.dumps({"sessionMetadata": sessions}))
    with pytest.raises(EvalInputError) as caught:
        load_evaluation_metadata("gt.json", root=tmp_path)
    assert caught.value.field == field and caught.value.file == str(tmp_path / "gt.json")
    with pytest.raises(EvalInputError) as inline:
        load_evaluation_metadata({"sessionMetadata": sessions}, file="suite.yaml")
    assert inline.value.field == field and inline.value.file == "suite.yaml"


def test_a_json_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "gt.json"
    path.write_text('{"sessionMetadata": [\n  {"sessionId": "s1"},\n  {"sessionId": }\n]}')
    with pytest.raises(EvalInputError) as caught:
        load_evaluation_metadata(str(path))
    assert (caught.value.file, caught.value.line) == (str(path), 3)
    with pytest.raises(EvalInputError, match="cannot read"):
        load_evaluation_metadata("missing.json", root=tmp_path)
