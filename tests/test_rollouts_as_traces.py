"""Our rollouts as a ``traces`` table: rows written by the real rollout loop become sessions (a trace per
conversational turn, a model span per model call, a tool span per tool call with its exact arguments and result),
which the sessions builder, the trajectory evaluators and the MLflow session traces read like recorded sessions."""

from __future__ import annotations

import hashlib
import json
import os

import mlflow
import pandas as pd
import pytest

from eval_pipeline.agents.environment import AgentTask, AgentTurn, Reset, Step
from eval_pipeline.agents.rollout import RolloutIdentity, run_rollout
from eval_pipeline.agents.user_simulator import UserReply
from eval_pipeline.data.messages import ChatMessage, ToolCall, ToolSpec, assistant, system, tool_result, user
from eval_pipeline.data.schemas import TRACES
from eval_pipeline.errors import EvalInputError
from eval_pipeline.traces.from_rollouts import read_rollouts_source, rollout_spans_frame
from eval_pipeline.traces.ingest import ingest
from eval_pipeline.traces.request import DataSourceConfig, FilterConfig, RolloutsSource

SEARCH = ToolCall(id="c1", name="search", arguments='{"q": "shoes"}')
BUY_9 = ToolCall(id="c2", name="buy", arguments='{"item": 9}')
BUY_1 = ToolCall(id="c3", name="buy", arguments='{"item": 1}')
REPLIES = [assistant("", [SEARCH, BUY_9]), assistant("Item 9 is out of stock."), assistant("", [BUY_1]),
           assistant("Bought item 1.")]
TOKENS = [(40, 12), (70, 8), (90, 6), (110, 4)]


class ShopAgent:
    """Searches and tries to buy item 9 (out of stock), says so; told to buy item 1, buys it and says so."""

    def __init__(self) -> None:
        self.calls = 0

    def start(self, task: AgentTask, rollout_id: str) -> None:
        self.calls = 0

    def act(self, conversation: object, tools: object) -> AgentTurn:
        tokens_in, tokens_out = TOKENS[self.calls]
        self.calls += 1
        return AgentTurn(message=REPLIES[self.calls - 1], tokens_in=tokens_in, tokens_out=tokens_out,
                         latency_s=0.5, request_hash=f"h{self.calls}")

    def finish(self) -> None:
        pass


class ShopEnvironment:
    def reset(self, task: AgentTask) -> Reset:
        return Reset(messages=(system("You sell shoes."), user(task.prompt)),
                     tools=(ToolSpec("search", "find items"), ToolSpec("buy", "buy an item")))

    def step(self, message: ChatMessage) -> Step:
        results = []
        for call in message.tool_calls:
            item = call.parsed_arguments().get("item")
            if call.name == "search":
                results.append(tool_result(call, "3 results"))
            elif item == 9:
                results.append(tool_result(call, "out of stock", is_error=True))
            else:
                results.append(tool_result(call, "ok"))
        if message.role == "user":
            return Step(reward=1.0, done=True)
        return Step(observations=tuple(results))

    def close(self) -> None:
        pass


class ShopUser:
    stop_marker = "###STOP###"

    def __init__(self) -> None:
        self.replies = 0

    def reply(self, task: AgentTask, sample_index: int, conversation: object) -> UserReply:
        self.replies += 1
        if self.replies == 1:
            return UserReply(message=user("Then buy item 1."), latency_s=0.25)
        return UserReply(message=user("Thanks!"), stop=True, latency_s=0.25)


def loop_row(rollout_id: str) -> dict[str, object]:
    identity = RolloutIdentity(sample_id="task-1", model="shop-model", sample_index=0, rollout_id=rollout_id,
                               environment="python:shop", row_hash="x")
    row = run_rollout(AgentTask(task_id="task-1", prompt="Buy me shoes."), ShopAgent(), ShopEnvironment(),
                      identity=identity, user=ShopUser())
    assert row["error"] is None and row["reward"] == 1.0 and row["num_turns"] == 4
    return row


def by_trace(frame: pd.DataFrame) -> list[pd.DataFrame]:
    ordered = frame.sort_values("start_ns", kind="stable")
    return [part for _, part in ordered.groupby("trace_id", sort=False)]


def test_a_rollout_of_the_loop_is_a_session_with_a_trace_per_user_turn() -> None:
    row = loop_row("r-1")
    frame = rollout_spans_frame(pd.DataFrame([row]), clock=lambda: 5000.0)
    assert list(frame.columns) == TRACES.names
    assert set(frame["session_id"]) == {"r-1"} and set(frame["service"]) == {"python:shop"}
    assert set(frame["model"]) == {"shop-model"} and frame["has_body"].all()
    first, second = by_trace(frame)
    assert [first["trace_id"].iloc[0], second["trace_id"].iloc[0]] == [
        hashlib.sha256(f"r-1\0{n}".encode()).hexdigest()[:32] for n in (0, 1)]
    assert frame.loc[frame["kind"] != "agent", "start_ns"].is_unique  # spans of at least 1 ns: the loop's order
    assert [(k, n) for k, n in zip(first["kind"], first["name"], strict=True)] == [
        ("agent", "invoke_agent"), ("llm", "chat shop-model"), ("tool", "execute_tool search"),
        ("tool", "execute_tool buy"), ("llm", "chat shop-model")]
    assert list(second["kind"]) == ["agent", "llm", "tool", "llm"]
    for trace in (first, second):
        root = trace.iloc[0]
        assert pd.isna(root["parent_id"]) and set(trace["parent_id"].iloc[1:]) == {root["span_id"]}
    tools = [(t["tool_name"], t["tool_call_id"], t["tool_args"], t["output"], t["status"], t["status_message"])
             for _, t in frame[frame["kind"] == "tool"].sort_values("start_ns").iterrows()]
    assert [(n, c, a, o, s, None if pd.isna(m) else m) for n, c, a, o, s, m in tools] == [
        ("search", "c1", '{"q": "shoes"}', "3 results", "OK", None),
        ("buy", "c2", '{"item": 9}', "out of stock", "ERROR", "out of stock"),
        ("buy", "c3", '{"item": 1}', "ok", "OK", None)]
    llm = frame[frame["kind"] == "llm"].sort_values("start_ns")
    assert list(zip(llm["tokens_in"], llm["tokens_out"], strict=True)) == TOKENS
    assert [ChatMessage.from_dict(m) for m in json.loads(llm["output"].iloc[0])] == [REPLIES[0]]
    prompt = [system("You sell shoes."), user("Buy me shoes.")]
    assert [ChatMessage.from_dict(m) for m in json.loads(first["input"].iloc[0])] == prompt
    assert [ChatMessage.from_dict(m) for m in json.loads(first["output"].iloc[0])] == [REPLIES[1]]
    results = [tool_result(SEARCH, "3 results"), tool_result(BUY_9, "out of stock", is_error=True)]
    assert [ChatMessage.from_dict(m) for m in json.loads(second["input"].iloc[0])] == [
        *prompt, REPLIES[0], *results, REPLIES[1], user("Then buy item 1.")]
    assert [ChatMessage.from_dict(m) for m in json.loads(second["output"].iloc[0])] == [REPLIES[3]]
    assert json.loads(first["available_tools"].iloc[0]) == ["search", "buy"]
    assert (first["tokens_in"].iloc[0], second["tokens_out"].iloc[0]) == (40 + 70, 6 + 4)
    assert frame.equals(rollout_spans_frame(pd.DataFrame([row]), clock=lambda: 5000.0))  # deterministic


def test_timings_are_the_recorded_durations_end_to_end_and_errors_are_kept() -> None:
    turns = [{"turn": 0, "reset": {"messages": [user("Buy me shoes.").to_dict()], "tools": []}},
             {"turn": 1, "agent": {"message": REPLIES[0].to_dict(), "latency_s": 0.5, "tokens_in": 40,
                                   "tokens_out": 12, "error": None},
              "step": {"observations": [tool_result(SEARCH, "3 results").to_dict()], "latency_s": 0.25}},
             {"turn": 2, "agent": {"message": None, "latency_s": 2.0, "error": "model call timed out"}}]
    row = {"rollout_id": "r-err", "model": "m", "environment": "python:shop", "turns": json.dumps(turns),
           "latency_s": 3.0, "error": "agent: model call timed out", "error_source": "agent"}
    frame = rollout_spans_frame(pd.DataFrame([row]), clock=lambda: 1000.0)
    spans = frame.sort_values("start_ns", kind="stable")
    begin = 1000 * 10**9 - 3 * 10**9  # the row's latency (3 s) exceeds the recorded 0.5 + 0.25 + 2.0
    got = [(k, n, s - begin, e - begin) for k, n, s, e in zip(spans["kind"], spans["name"], spans["start_ns"],
                                                               spans["end_ns"], strict=True)]
    assert got == [("agent", "invoke_agent", 0, 2_750_000_000), ("llm", "chat m", 0, 500_000_000),
                   ("tool", "execute_tool search", 500_000_000, 500_000_000 + 125_000_000),
                   ("tool", "execute_tool buy", 625_000_000, 750_000_000),
                   ("llm", "chat m", 750_000_000, 2_750_000_000)]
    assert list(spans["status"]) == ["ERROR", "OK", "OK", "UNSET", "ERROR"]  # buy: no result, not its error
    assert spans["status_message"].iloc[0] == "agent: model call timed out"
    assert spans["status_message"].iloc[4] == "model call timed out" and pd.isna(spans["output"].iloc[4])
    assert json.loads(spans["attributes"].iloc[0])["error_source"] == "agent"

    early = {"rollout_id": "r-reset", "model": "m", "environment": "python:shop", "turns": "[]",
             "messages": json.dumps([user("hi").to_dict()]), "latency_s": 2.0,
             "error": "environment reset failed", "error_source": "environment"}
    (only,) = rollout_spans_frame(pd.DataFrame([early]), clock=lambda: 50.0).to_dict("records")
    assert (only["kind"], only["status"], only["status_message"]) == ("agent", "ERROR", "environment reset failed")
    assert (only["start_ns"], only["end_ns"]) == (48 * 10**9, 50 * 10**9)
    assert json.loads(only["input"]) == [{"role": "user", "content": "hi"}]

    with pytest.raises(EvalInputError, match=r"runs\.parquet:2: field 'turns'"):
        rollout_spans_frame(pd.DataFrame([row, {**row, "turns": "{not json"}]), source="runs.parquet")


def test_a_rollouts_table_is_a_trace_source(tmp_path) -> None:
    stage = tmp_path / "suite" / "rollouts"  # a suite's rollouts stage: one Parquet file per model partition
    stage.mkdir(parents=True)
    pd.DataFrame([loop_row("r-a"), loop_row("r-c")]).to_parquet(stage / "base.parquet")
    pd.DataFrame([loop_row("r-b")]).to_parquet(stage / "tuned.parquet")
    os.utime(stage / "base.parquet", (7000.0, 7000.0))
    frame = read_rollouts_source(RolloutsSource(path="suite/rollouts"), root=tmp_path)
    assert set(frame["session_id"]) == {"r-a", "r-b", "r-c"}
    assert dict(frame.groupby("session_id")["source"].first()) == {
        "r-a": "suite/rollouts/base.parquet", "r-b": "suite/rollouts/tuned.parquet",
        "r-c": "suite/rollouts/base.parquet"}
    assert dict(frame.groupby("session_id")["line"].first()) == {"r-a": 1, "r-b": 1, "r-c": 2}
    base = frame[frame["source"] == "suite/rollouts/base.parquet"]
    assert 7000 * 10**9 - 10**9 < base["end_ns"].max() <= 7000 * 10**9 + 20  # ends at the file's time
    single = read_rollouts_source(RolloutsSource(path=str(stage / "tuned.parquet")))
    assert set(single["session_id"]) == {"r-b"}
    assert read_rollouts_source(RolloutsSource(path="suite/*/t*.parquet"), root=tmp_path).equals(single.assign(
        source="suite/rollouts/tuned.parquet"))
    only = ingest(DataSourceConfig(rollouts=RolloutsSource(path="suite/rollouts",
                                                           filterConfig=FilterConfig(sessionIds=["r-b"]))),
                  root=tmp_path)
    assert set(only["session_id"]) == {"r-b"} and len(only) == len(single)
    with pytest.raises(EvalInputError, match=r"missing\.parquet: field .rollouts\.path.: no rollouts table"):
        read_rollouts_source(RolloutsSource(path="missing.parquet"), root=tmp_path)
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(EvalInputError, match="no column rollout_id, turns"):
        read_rollouts_source(RolloutsSource(path="other.parquet"), root=tmp_path)


EXPECTED = {  # expected trajectory -> (exact order, in order, any order), by hand for the calls search, buy, buy
    "r-same": (["search", "buy", "buy"], (1.0, 1.0, 1.0)),
    "r-swapped": (["buy", "search"], (0.0, 0.0, 1.0)),
    "r-more": (["search", "buy", "buy", "buy"], (0.0, 0.0, 0.0)),
    "r-subseq": (["search", "buy"], (0.0, 1.0, 1.0)),
}


def test_rollouts_evaluated_as_traces_get_the_trajectory_verdicts(tmp_path) -> None:
    from eval_pipeline.traces.evaluation import run_evaluations
    from eval_pipeline.traces.evaluators.registry import resolve_evaluator
    from eval_pipeline.traces.ground_truth import GroundTruth, SessionMetadata
    from eval_pipeline.traces.sessions import sessions_from_traces
    from eval_pipeline.tracking.mlflow_log import open_experiment, start_run
    from eval_pipeline.tracking.session_traces import log_session_traces

    frame = rollout_spans_frame(pd.DataFrame([loop_row(rollout) for rollout in EXPECTED]), clock=lambda: 9000.0)
    sessions = sessions_from_traces(frame)
    assert sorted(s.session_id for s in sessions) == sorted(EXPECTED)
    session = sessions[0]
    assert session.tool_names == ["search", "buy", "buy"] and session.error is None
    assert [t.prompt for t in session.turns] == ["Buy me shoes.", "Then buy item 1."]
    assert [t.response for t in session.turns] == ["Item 9 is out of stock.", "Bought item 1."]
    assert [[c.arguments for c in t.tool_calls] for t in session.turns] == [[{"q": "shoes"}, {"item": 9}],
                                                                             [{"item": 1}]]
    assert [c.result for c in session.tool_calls] == ["3 results", "out of stock", "ok"]
    metadata = {rollout: SessionMetadata(rollout, ground_truth=GroundTruth(expected_tool_names=tuple(names)))
                for rollout, (names, _) in EXPECTED.items()}
    ids = ["Builtin.TrajectoryExactOrderMatch", "Builtin.TrajectoryInOrderMatch", "Builtin.TrajectoryAnyOrderMatch"]
    results = run_evaluations(sessions, metadata, [resolve_evaluator(i) for i in ids], model="shop-model").frame
    got = {(r.session_id, r.evaluator_id): r.value for r in results.itertuples()}
    assert got == {(rollout, evaluator): verdicts[n] for rollout, (_, verdicts) in EXPECTED.items()
                   for n, evaluator in enumerate(ids)}

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, experiment_id = open_experiment(uri, "eval/traces")
    run_id = start_run(client, experiment_id, "traces/rollouts", {})
    assert log_session_traces(frame, results, tracking_uri=uri, run_id=run_id) == 4
    found = mlflow.MlflowClient(tracking_uri=uri).search_traces(locations=[experiment_id], run_id=run_id,
                                                                filter_string="tag.session_id = 'r-swapped'")
    (trace,) = found
    assert {a.name: a.value for a in trace.info.assessments} == dict(zip(ids, EXPECTED["r-swapped"][1], strict=True))
    assert sum(s.name == "session" for s in trace.data.spans) == 1  # two turns under one synthetic root
