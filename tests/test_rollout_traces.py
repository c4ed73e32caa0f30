"""Rollouts as MLflow traces in a real file-backed MLflow store: a root span per rollout, a CHAT_MODEL span per
model call and a TOOL span per tool call, found by ``mlflow.search_traces`` with the rollout_id tag."""

from __future__ import annotations

import json
from collections.abc import Iterator

import mlflow
import pandas as pd
import pytest

from eval_pipeline.agents.environment import AgentTask, AgentTurn, Reset, Step
from eval_pipeline.agents.user_simulator import UserReply
from eval_pipeline.data.messages import ChatMessage, ToolCall, ToolSpec, assistant, tool_result, user
from eval_pipeline.tracking.rollout_traces import log_rollout_traces, rollout_spans
from tests.mlflow_stores import STORE_KINDS, fresh_run, tracking_store

CALL = ToolCall(id="call-1", name="add", arguments='{"a": 2, "b": 3}')
FIRST = assistant("", [CALL])
RESULT = tool_result(CALL, "5")
SECOND = assistant("The answer is 5.")


def turns_json(second_error: str | None = None, tool_error: bool = False) -> str:
    result = tool_result(CALL, "division by zero", is_error=True) if tool_error else RESULT
    return json.dumps([
        {"index": 0, "agent": {"message": FIRST.to_dict(), "latency_s": 0.5, "tokens_in": 40, "tokens_out": 12,
                               "cached": False, "request_hash": "h0", "error": None},
         "observations": [result.to_dict()], "reward": None, "done": False, "started_at": 1000.0,
         "ended_at": 1001.0},
        {"index": 1, "agent": {"message": SECOND.to_dict(), "latency_s": 0.25, "tokens_in": 60, "tokens_out": 7,
                               "cached": True, "request_hash": "h1", "error": second_error},
         "observations": [], "reward": 1.0, "done": True, "started_at": 1001.0, "ended_at": 1001.5}])


def rollout_row(rollout_id: str = "r-1", *, error: str | None = None, source: str | None = None,
                tool_error: bool = False) -> dict[str, object]:
    conversation = [user("What is 2 + 3?"), FIRST, RESULT, SECOND]
    return {"sample_id": "task-7", "model": "base", "sample_index": 2, "rollout_id": rollout_id,
            "environment": "python:examples.calculator", "turns": turns_json(error, tool_error),
            "messages": json.dumps([m.to_dict() for m in conversation]), "num_turns": 2,
            "reward": None if error else 1.0, "success": None if error else True,
            "termination": "error" if error else "done", "tokens_in": 100, "tokens_out": 19, "latency_s": 1.5,
            "cached": False, "request_hashes": '["h0", "h1"]', "row_hash": "x", "error": error,
            "error_source": source}


@pytest.fixture(scope="module", params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with tracking_store(request.param, tmp_path_factory.mktemp(f"mlflow-{request.param}"), "eval/agents") as found:
        yield found


@pytest.fixture
def run(store: dict[str, str]) -> dict[str, str]:
    return fresh_run(store, "eval/agents", "agents/base")


def search(run: dict[str, str], **kwargs: object) -> list[mlflow.entities.Trace]:
    client = mlflow.MlflowClient(tracking_uri=run["uri"])  # no global URI: setting one leaks into later tests
    return list(client.search_traces(locations=[run["experiment_id"]], run_id=run["run_id"], **kwargs))


def test_a_rollout_becomes_one_trace_with_a_span_per_model_call_and_tool_call(run: dict[str, str]) -> None:
    before = mlflow.get_tracking_uri()
    ids = log_rollout_traces(pd.DataFrame([rollout_row()]), tracking_uri=run["uri"], run_id=run["run_id"])
    assert mlflow.get_tracking_uri() == before and mlflow.get_current_active_span() is None
    traces = search(run, filter_string="tag.rollout_id = 'r-1'")
    assert [trace.info.trace_id for trace in traces] == ids and len(ids) == 1
    trace = traces[0]
    assert trace.info.tags["rollout_id"] == "r-1" and trace.info.tags["sample_id"] == "task-7"
    assert trace.info.tags["sample_index"] == "2" and trace.info.tags["termination"] == "done"
    assert trace.info.trace_metadata["mlflow.sourceRun"] == run["run_id"]
    assert trace.info.state.value == "OK" and trace.info.execution_duration == 1500
    assert json.loads(trace.info.trace_metadata["mlflow.trace.tokenUsage"]) == {
        "input_tokens": 100, "output_tokens": 19, "total_tokens": 119}

    spans = trace.data.spans
    roots = [span for span in spans if span.parent_id is None]
    assert len(spans) == 4 and len(roots) == 1
    root = roots[0]
    children = sorted((s for s in spans if s.parent_id == root.span_id), key=lambda s: s.start_time_ns)
    assert [(s.span_type, s.name) for s in children] == [("CHAT_MODEL", "model_call_0"), ("TOOL", "add"),
                                                         ("CHAT_MODEL", "model_call_1")]
    assert root.span_type == "AGENT" and root.name == "rollout"
    assert root.inputs == {"sample_id": "task-7", "sample_index": 2, "model": "base",
                           "environment": "python:examples.calculator"}
    assert root.outputs["reward"] == 1.0 and root.outputs["success"] is True and root.outputs["num_turns"] == 2
    assert (root.start_time_ns, root.end_time_ns) == (1000 * 10**9, 1001_500_000_000)

    first, tool, second = children
    assert [ChatMessage.from_dict(m) for m in first.inputs["messages"]] == [user("What is 2 + 3?")]
    assert ChatMessage.from_dict(first.outputs) == FIRST
    assert first.outputs["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 2, "b": 3}'}
    assert [ChatMessage.from_dict(m) for m in second.inputs["messages"]] == [user("What is 2 + 3?"), FIRST, RESULT]
    assert ChatMessage.from_dict(second.outputs) == SECOND
    assert first.get_attribute("mlflow.chat.tokenUsage") == {"input_tokens": 40, "output_tokens": 12,
                                                             "total_tokens": 52}
    assert second.get_attribute("cached") is True and second.get_attribute("request_hash") == "h1"
    assert (first.start_time_ns, first.end_time_ns) == (1000 * 10**9, 1000_500_000_000)
    assert (tool.start_time_ns, tool.end_time_ns) == (1000_500_000_000, 1001 * 10**9)
    assert (second.start_time_ns, second.end_time_ns) == (1001 * 10**9, 1001_250_000_000)
    assert tool.inputs == {"a": 2, "b": 3} and tool.outputs == "5"
    assert tool.get_attribute("tool_call_id") == "call-1"
    assert {s.status.status_code.value for s in spans} == {"OK"}


def test_errors_mark_the_trace_and_spans_and_logging_again_adds_nothing(run: dict[str, str]) -> None:
    rows = pd.DataFrame([rollout_row("r-ok", tool_error=True),
                         rollout_row("r-bad", error="model call timed out", source="agent")])
    assert len(log_rollout_traces(rows, tracking_uri=run["uri"], run_id=run["run_id"])) == 2
    assert log_rollout_traces(rows, tracking_uri=run["uri"], run_id=run["run_id"]) == []
    traces = {trace.info.tags["rollout_id"]: trace for trace in search(run)}
    assert sorted(traces) == ["r-bad", "r-ok"]
    bad = traces["r-bad"]
    assert bad.info.state.value == "ERROR"
    statuses = {span.name: span.status for span in bad.data.spans}
    assert statuses["rollout"].status_code.value == "ERROR"
    assert statuses["rollout"].description == "model call timed out"
    assert statuses["model_call_1"].status_code.value == "ERROR"
    assert next(span for span in bad.data.spans if span.name == "rollout").outputs["error_source"] == "agent"
    tool = next(span for span in traces["r-ok"].data.spans if span.span_type == "TOOL")
    assert tool.status.status_code.value == "ERROR" and tool.outputs == "division by zero"


def test_a_rollout_that_failed_before_its_first_turn_spans_its_latency_before_the_clock() -> None:
    row = {**rollout_row(error="environment reset failed", source="environment"), "turns": "[]",
           "messages": json.dumps([user("hi").to_dict()]), "latency_s": 2.0}
    spans = rollout_spans(row, clock=lambda: 5000.0)
    assert len(spans) == 1 and (spans[0].start_s, spans[0].end_s) == (4998.0, 5000.0)
    assert spans[0].error == "environment reset failed"
    with pytest.raises(ValueError, match=r"r-1.*turns"):
        rollout_spans({**rollout_row(), "turns": "{not json"})


# The rollout loop's own rows ---------------------------------------------------------------------------------------

class ScriptedAgent:
    """Calls ``add`` first, then answers; each call takes a known (reported) latency and token count."""

    def __init__(self) -> None:
        self.calls = 0

    def start(self, task: AgentTask, rollout_id: str) -> None:
        self.calls = 0

    def act(self, conversation: object, tools: object) -> AgentTurn:
        self.calls += 1
        if self.calls == 1:
            return AgentTurn(message=FIRST, tokens_in=40, tokens_out=12, latency_s=0.5, request_hash="h0")
        return AgentTurn(message=SECOND, tokens_in=60, tokens_out=7, latency_s=0.25, cached=True, request_hash="h1")

    def finish(self) -> None:
        pass


class CalculatorEnvironment:
    """One tool, ``add``; done when the agent answers (or, with a user, when the user says stop)."""

    def __init__(self, with_user: bool) -> None:
        self.with_user = with_user

    def reset(self, task: AgentTask) -> Reset:
        return Reset(messages=(user(task.prompt),), tools=(ToolSpec("add", "a + b", {"type": "object"}),))

    def step(self, message: ChatMessage) -> Step:
        if message.tool_calls:
            args = message.tool_calls[0].parsed_arguments()
            return Step(observations=(tool_result(message.tool_calls[0], str(args["a"] + args["b"])),))
        if message.role == "user" or not self.with_user:
            return Step(reward=1.0, done=True)
        return Step()

    def close(self) -> None:
        pass


class ScriptedUser:
    stop_marker = "###STOP###"

    def reply(self, task: AgentTask, sample_index: int, conversation: object) -> UserReply:
        return UserReply(message=user("Thanks!"), stop=True, tokens_in=9, tokens_out=2, latency_s=0.125)


@pytest.mark.parametrize("with_user", [False, True])
def test_rows_of_the_rollout_loop_become_traces(run: dict[str, str], with_user: bool) -> None:
    from eval_pipeline.agents.rollout import RolloutIdentity, run_rollout

    identity = RolloutIdentity(sample_id="task-7", model="base", sample_index=0, rollout_id=f"loop-{with_user}",
                               environment="python:calculator", row_hash="x")
    row = run_rollout(AgentTask(task_id="task-7", prompt="What is 2 + 3?"), ScriptedAgent(),
                      CalculatorEnvironment(with_user), identity=identity,
                      user=ScriptedUser() if with_user else None)
    assert row["error"] is None and row["reward"] == 1.0
    log_rollout_traces(pd.DataFrame([row]), tracking_uri=run["uri"], run_id=run["run_id"], clock=lambda: 2000.0)
    (trace,) = search(run, filter_string=f"tag.rollout_id = 'loop-{with_user}'")
    spans = sorted(trace.data.spans, key=lambda s: (s.parent_id is not None, s.start_time_ns))
    root, children = spans[0], spans[1:]
    expected = [("CHAT_MODEL", "model_call_1"), ("TOOL", "add"), ("CHAT_MODEL", "model_call_2")]
    expected += [("CHAT_MODEL", "user_simulator")] if with_user else []
    assert [(s.span_type, s.name) for s in children] == expected
    assert all(s.parent_id == root.span_id for s in children)
    turns = json.loads(row["turns"])
    recorded = sum(t[part]["latency_s"] for t in turns for part in ("agent", "step", "user", "final_step") if part in t)
    assert recorded >= 0.75 + (0.125 if with_user else 0)
    assert root.end_time_ns == 2000 * 10**9
    assert root.end_time_ns - root.start_time_ns == pytest.approx(max(row["latency_s"], recorded) * 1e9, abs=1e3)
    first, tool, second = children[:3]
    assert first.end_time_ns - first.start_time_ns == pytest.approx(0.5e9, abs=1e3)
    assert second.end_time_ns - second.start_time_ns == pytest.approx(0.25e9, abs=1e3)
    step_latency = turns[1]["step"]["latency_s"]
    assert tool.end_time_ns - tool.start_time_ns == pytest.approx(step_latency * 1e9, abs=1e3)
    assert [ChatMessage.from_dict(m) for m in first.inputs["messages"]] == [user("What is 2 + 3?")]
    assert [ChatMessage.from_dict(m) for m in second.inputs["messages"]] == [user("What is 2 + 3?"), FIRST, RESULT]
    assert first.get_attribute("mlflow.chat.tools")[0]["function"]["name"] == "add"
    assert tool.inputs == {"a": 2, "b": 3} and tool.outputs == "5"
    assert json.loads(trace.info.trace_metadata["mlflow.trace.tokenUsage"])["total_tokens"] == 40 + 12 + 60 + 7
    if with_user:
        reply = children[3]
        assert ChatMessage.from_dict(reply.outputs) == user("Thanks!")
        assert reply.end_time_ns - reply.start_time_ns == pytest.approx(0.125e9, abs=1e3)
        assert reply.get_attribute("mlflow.chat.tokenUsage") is None and reply.get_attribute("tokens_in") == 9
