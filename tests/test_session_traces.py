"""Recorded sessions as MLflow traces in a real MLflow store (SQLite, and the file store that keeps spans in the
trace's artifact): one trace per session with the table's spans, parents, types and timings, and each evaluator
result as a Feedback assessment on the right span; logging again adds nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import mlflow
import pandas as pd
import pytest

from eval_pipeline.data.schemas import TRACE_EVALUATIONS, TRACES
from eval_pipeline.tracking.session_traces import log_session_traces
from tests.mlflow_stores import STORE_KINDS, fresh_run, tracking_store

T1, T2, T3 = "a1" * 16, "b2" * 16, "c3" * 16
S = 10**18  # epoch ns base: 2001-09-09


def span(session: str, trace: str, span_id: str, parent: str | None, kind: str, name: str, start: int, end: int,
         **extra: object) -> dict[str, object]:
    return {"session_id": session, "trace_id": trace, "span_id": span_id, "parent_id": parent, "kind": kind,
            "name": name, "start_ns": S + start, "end_ns": S + end, "status": "OK", "has_body": True,
            "service": "shop_agent.DEFAULT", **extra}


def msgs(*pairs: tuple[str, str]) -> str:
    return json.dumps([{"role": role, "content": content} for role, content in pairs])


CALL = {"id": "tc-1", "name": "search", "arguments": '{"q": "shoes"}'}


def traces_frame() -> pd.DataFrame:
    rows = [
        # s-1, turn 1: agent > llm (asks for search) > tool search > llm (answers)
        span("s-1", T1, "1000000000000001", None, "agent", "invoke_agent shop", 0, 900,
             input=msgs(("user", "find shoes")), output=msgs(("assistant", "Here are shoes.")),
             available_tools='["search", "buy"]', tokens_in=99, tokens_out=99),
        span("s-1", T1, "1000000000000002", "1000000000000001", "llm", "chat m", 10, 300, model="m",
             input=msgs(("user", "find shoes")), tokens_in=10, tokens_out=4,
             output=json.dumps([{"role": "assistant", "content": "", "tool_calls": [CALL]}])),
        span("s-1", T1, "1000000000000003", "1000000000000001", "tool", "execute_tool search", 300, 500,
             tool_name="search", tool_call_id="tc-1", tool_args='{"q": "shoes"}', output="3 results"),
        span("s-1", T1, "1000000000000004", "1000000000000001", "llm", "chat m", 500, 890, model="m",
             input=msgs(("user", "find shoes")), output=msgs(("assistant", "Here are shoes.")), tokens_in=20,
             tokens_out=5),
        # s-1, turn 2: agent > tool buy (fails)
        span("s-1", T2, "2000000000000001", None, "agent", "invoke_agent shop", 1000, 1500,
             input=msgs(("user", "buy the first")), output=msgs(("assistant", "Sorry, it failed."))),
        span("s-1", T2, "2000000000000002", "2000000000000001", "tool", "execute_tool buy", 1100, 1200,
             tool_name="buy", tool_call_id="tc-2", tool_args='{"item": 1}', output="out of stock", status="ERROR",
             status_message="out of stock"),
        # s-2: one turn, span ids that are not 16 hex digits
        span("s-2", T3, "root", None, "agent", "invoke_agent shop", 5000, 6000, input=msgs(("user", "hi")),
             output=msgs(("assistant", "hello"))),
        span("s-2", T3, "tool-a", "root", "tool", "execute_tool lookup", 5100, 5200, tool_name="lookup",
             tool_args="{}", output="none"),
        span("s-2", T3, "other", "root", "other", "retriever", 5300, 5400),
    ]
    return pd.DataFrame(rows).reindex(columns=TRACES.names)


def result(session: str, evaluator: str, level: str, *, trace: str | None = None, span_id: str | None = None,
           **extra: object) -> dict[str, object]:
    return {"session_id": session, "trace_id": trace, "span_id": span_id, "model": "shop", "evaluator_id": evaluator,
            "evaluator_name": evaluator.split(".")[-1], "level": level, "ignored_reference_fields": "[]",
            "test_scenario_id": "scenario-1" if session == "s-1" else None, **extra}


def results_frame() -> pd.DataFrame:
    rows = [
        result("s-1", "Builtin.GoalSuccessRate", "SESSION", value=1.0, score=1.0, label="Yes",
               explanation="all assertions hold", judge_model="judge-x", judge_request_hash="h1",
               ignored_reference_fields='["expectedTrajectory"]'),
        result("s-1", "Builtin.Helpfulness", "TRACE", trace=T2, value=0.33, score=0.33, label="Somewhat Unhelpful",
               explanation="the purchase failed", judge_model="judge-x"),
        result("s-1", "Builtin.ToolSelectionAccuracy", "TOOL_CALL", trace=T1, span_id="1000000000000003",
               value=1.0, score=1.0, label="Yes", explanation="search fits", judge_model="judge-x"),
        result("s-2", "Builtin.TrajectoryExactOrderMatch", "SESSION", value=0.0, score=0.0, label="No",
               explanation="expected ['lookup', 'buy'], got ['lookup']"),
        result("s-2", "Builtin.ToolParameterAccuracy", "TOOL_CALL", trace=T3, span_id="tool-a", value=1.0, score=1.0,
               label="Yes", judge_model="judge-x"),
        result("s-2", "Builtin.Correctness", "TRACE", trace=T3, error_code="MissingGroundTruth",
               error="no expected response for this turn", ignored_reference_fields='["assertions"]'),
        result("s-9", "Builtin.Helpfulness", "SESSION", value=1.0),  # no spans: nothing to attach it to
    ]
    return pd.DataFrame(rows).reindex(columns=TRACE_EVALUATIONS.names)


@pytest.fixture(scope="module", params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with tracking_store(request.param, tmp_path_factory.mktemp(f"mlflow-{request.param}"), "eval/traces") as found:
        yield found


@pytest.fixture
def run(store: dict[str, str]) -> dict[str, str]:
    return fresh_run(store, "eval/traces", "traces/shop")


def traces_of(run: dict[str, str]) -> dict[str, mlflow.entities.Trace]:
    client = mlflow.MlflowClient(tracking_uri=run["uri"])  # no global URI: setting one leaks into later tests
    found = client.search_traces(locations=[run["experiment_id"]], run_id=run["run_id"])
    return {trace.info.tags["session_id"]: client.get_trace(trace.info.trace_id) for trace in found}


def test_each_session_is_one_trace_with_the_tables_spans(run: dict[str, str]) -> None:
    before = mlflow.get_tracking_uri()
    assert log_session_traces(traces_frame(), results_frame(), tracking_uri=run["uri"], run_id=run["run_id"]) == 2
    assert mlflow.get_tracking_uri() == before and mlflow.get_current_active_span() is None
    traces = traces_of(run)
    assert sorted(traces) == ["s-1", "s-2"]

    one = traces["s-1"]
    assert one.info.tags["service"] == "shop_agent.DEFAULT" and one.info.tags["test_scenario_id"] == "scenario-1"
    assert one.info.tags["mlflow.sourceRun"] == run["run_id"]
    assert one.info.trace_metadata["mlflow.sourceRun"] == run["run_id"]
    assert one.info.trace_metadata["mlflow.trace.session"] == "s-1"
    assert json.loads(one.info.trace_metadata["mlflow.trace.tokenUsage"]) == {
        "input_tokens": 30, "output_tokens": 9, "total_tokens": 39}  # the model calls': 10 + 20, 4 + 5
    spans = {s.name if s.parent_id is None else s.span_id: s for s in one.data.spans}
    root = spans["session"]  # two turns: a synthetic root over them
    assert root.span_type == "AGENT" and root.parent_id is None and len(one.data.spans) == 7
    assert (root.start_time_ns, root.end_time_ns) == (S, S + 1500)
    assert root.inputs == {"messages": [{"role": "user", "content": "find shoes"}]}
    assert root.outputs == {"role": "assistant", "content": "Sorry, it failed."}
    expected = {  # span id: (parent, type, name, start, end)
        "1000000000000001": (root.span_id, "AGENT", "invoke_agent shop", 0, 900),
        "1000000000000002": ("1000000000000001", "CHAT_MODEL", "chat m", 10, 300),
        "1000000000000003": ("1000000000000001", "TOOL", "execute_tool search", 300, 500),
        "1000000000000004": ("1000000000000001", "CHAT_MODEL", "chat m", 500, 890),
        "2000000000000001": (root.span_id, "AGENT", "invoke_agent shop", 1000, 1500),
        "2000000000000002": ("2000000000000001", "TOOL", "execute_tool buy", 1100, 1200)}
    for span_id, (parent, kind, name, start, end) in expected.items():
        got = spans[span_id]
        assert (got.parent_id, got.span_type, got.name) == (parent, kind, name), span_id
        assert (got.start_time_ns - S, got.end_time_ns - S) == (start, end), span_id
    first_call = spans["1000000000000002"]
    assert first_call.inputs == {"messages": [{"role": "user", "content": "find shoes"}]}
    assert first_call.outputs["tool_calls"] == [
        {"id": "tc-1", "type": "function", "function": {"name": "search", "arguments": '{"q": "shoes"}'}}]
    assert first_call.get_attribute("mlflow.chat.tokenUsage") == {"input_tokens": 10, "output_tokens": 4,
                                                                  "total_tokens": 14}
    search = spans["1000000000000003"]
    assert search.inputs == {"q": "shoes"} and search.outputs == "3 results"
    assert search.get_attribute("tool_call_id") == "tc-1" and search.get_attribute("otel.trace_id") == T1
    assert search.status.status_code.value == "OK"
    buy = spans["2000000000000002"]
    assert buy.status.status_code.value == "ERROR" and buy.status.description == "out of stock"
    assert one.info.state.value == "OK"  # the turns themselves ended OK

    two = traces["s-2"]
    assert "test_scenario_id" not in two.info.tags
    (top,) = [s for s in two.data.spans if s.parent_id is None]  # one turn: its own root is the trace's root
    assert top.name == "invoke_agent shop" and top.get_attribute("otel.span_id") == "root"
    assert {s.get_attribute("otel.span_id"): (s.parent_id, s.span_type) for s in two.data.spans} == {
        "root": (None, "AGENT"), "tool-a": (top.span_id, "TOOL"), "other": (top.span_id, "UNKNOWN")}
    assert two.info.request_time == (S + 5000) // 10**6 and two.info.execution_duration == 0  # 1000 ns < 1 ms


def test_results_are_assessments_on_the_right_spans(run: dict[str, str]) -> None:
    log_session_traces(traces_frame(), results_frame(), tracking_uri=run["uri"], run_id=run["run_id"])
    traces = traces_of(run)
    one = {a.name: a for a in traces["s-1"].info.assessments}
    assert sorted(one) == ["Builtin.GoalSuccessRate", "Builtin.Helpfulness", "Builtin.ToolSelectionAccuracy"]
    goal = one["Builtin.GoalSuccessRate"]
    assert goal.value == 1.0 and goal.rationale == "all assertions hold" and goal.span_id is None
    assert (goal.source.source_type, goal.source.source_id) == ("LLM_JUDGE", "judge-x")
    assert goal.metadata["label"] == "Yes" and goal.metadata["level"] == "SESSION"
    assert json.loads(goal.metadata["ignored_reference_fields"]) == ["expectedTrajectory"]
    assert goal.metadata["mlflow.assessment.sourceRunId"] == run["run_id"]
    helpful = one["Builtin.Helpfulness"]
    assert helpful.value == 0.33 and helpful.span_id == "2000000000000001"  # the evaluated turn's root span
    assert helpful.metadata["label"] == "Somewhat Unhelpful" and helpful.rationale == "the purchase failed"
    assert one["Builtin.ToolSelectionAccuracy"].span_id == "1000000000000003"

    two_spans = {s.get_attribute("otel.span_id"): s.span_id for s in traces["s-2"].data.spans}
    two = {a.name: a for a in traces["s-2"].info.assessments}
    exact = two["Builtin.TrajectoryExactOrderMatch"]
    assert exact.value == 0.0 and exact.metadata["label"] == "No" and exact.span_id is None
    assert (exact.source.source_type, exact.source.source_id) == ("CODE", "Builtin.TrajectoryExactOrderMatch")
    assert two["Builtin.ToolParameterAccuracy"].span_id == two_spans["tool-a"]
    failed = two["Builtin.Correctness"]
    assert failed.value is None and failed.span_id == two_spans["root"]
    assert failed.error.error_code == "MissingGroundTruth"
    assert failed.error.error_message == "no expected response for this turn"
    assert failed.metadata["error_code"] == "MissingGroundTruth"


def test_logging_again_adds_nothing_and_new_results_join_the_existing_trace(run: dict[str, str]) -> None:
    frame, results = traces_frame(), results_frame()
    assert log_session_traces(frame, results, tracking_uri=run["uri"], run_id=run["run_id"]) == 2
    assert log_session_traces(frame, results, tracking_uri=run["uri"], run_id=run["run_id"]) == 0
    traces = traces_of(run)
    assert len(traces) == 2
    assert [len(traces[s].info.assessments) for s in ("s-1", "s-2")] == [3, 3]
    assert len(traces["s-1"].data.spans) == 7
    more = pd.concat([results, pd.DataFrame([result("s-1", "Builtin.Coherence", "TRACE", trace=T1, value=1.0,
                                                    judge_model="judge-x")])], ignore_index=True)
    assert log_session_traces(frame, more, tracking_uri=run["uri"], run_id=run["run_id"]) == 0
    assert log_session_traces(frame, more, tracking_uri=run["uri"], run_id=run["run_id"]) == 0
    coherence = [a for a in traces_of(run)["s-1"].info.assessments if a.name == "Builtin.Coherence"]
    assert len(coherence) == 1 and coherence[0].span_id == "1000000000000001"


def test_a_failed_turn_marks_the_trace_and_a_parent_cycle_is_broken(run: dict[str, str]) -> None:
    rows = [span("s-3", T1, "a", None, "agent", "invoke_agent", 0, 100, status="ERROR",
                  status_message="agent crashed"),
            span("s-3", T1, "x", "y", "other", "x", 10, 20), span("s-3", T1, "y", "x", "other", "y", 20, 30),
            span("s-3", T1, "z", "gone", "tool", "execute_tool t", 30, 40, tool_name="t")]
    frame = pd.DataFrame(rows).reindex(columns=TRACES.names)
    log_session_traces(frame, frame.iloc[0:0].reindex(columns=TRACE_EVALUATIONS.names), tracking_uri=run["uri"],
                       run_id=run["run_id"])
    trace = traces_of(run)["s-3"]
    assert trace.info.state.value == "ERROR"
    spans = {s.name: s for s in trace.data.spans}
    root = spans["session"]  # several tops (the failed turn, the cycle, the orphan): a synthetic root over them
    assert {name: s.parent_id for name, s in spans.items()} == {
        "session": None, "invoke_agent": root.span_id, "x": root.span_id, "y": root.span_id,
        "execute_tool t": root.span_id}
    assert spans["invoke_agent"].status.description == "agent crashed"


def test_a_categorical_evaluator_gives_its_label_as_the_value(run: dict[str, str]) -> None:
    rows = [result("s-2", "Custom.Tone", "TRACE", trace=T3, value=1.0, score=1.0, label="Polite",
                   judge_model="judge-x"),
            result("s-2", "Custom.Numeric", "TRACE", trace=T3, value=4.0, score=0.75, label="Good",
                   judge_model="judge-x"),
            result("s-2", "Custom.CodeLabel", "SESSION", label="Tidy")]  # a code evaluator that gave only a label
    frame = traces_frame()
    log_session_traces(frame[frame["session_id"] == "s-2"], pd.DataFrame(rows).reindex(
        columns=TRACE_EVALUATIONS.names), tracking_uri=run["uri"], run_id=run["run_id"], categorical=["Custom.Tone"])
    got = {a.name: (a.value, a.metadata.get("score")) for a in traces_of(run)["s-2"].info.assessments}
    assert got == {"Custom.Tone": ("Polite", "1.0"), "Custom.Numeric": (4.0, "0.75"),
                   "Custom.CodeLabel": ("Tidy", None)}
    code = next(a for a in traces_of(run)["s-2"].info.assessments if a.name == "Custom.CodeLabel")
    assert (code.source.source_type, code.source.source_id) == ("CODE", "Custom.CodeLabel")
