"""The rollout loop, the runner (group members, concurrency, budget, resume), the model as agent, the simulated user.

Scripted environments and agents are plain classes here; the model agent and the user simulator run through the
real ``complete_requests`` and a real SQLite request cache, with a scripted sampler that counts its calls.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from eval_pipeline.agents.environment import AgentTask, AgentTurn, Reset, Step
from eval_pipeline.agents.model_agent import ModelAgent, model_agent_factory, model_agent_identity
from eval_pipeline.agents.rollout import RolloutIdentity, RolloutSettings, run_rollout
from eval_pipeline.agents.rollout_store import RolloutStore, rollout_id, rollout_store_path
from eval_pipeline.agents.runner import RolloutRun, run_rollouts
from eval_pipeline.agents.user_simulator import STOP_MARKER, UserSimulator, flip_roles
from eval_pipeline.data.messages import ChatMessage, ToolCall, ToolSpec, assistant, tool_result, user
from eval_pipeline.data.schemas import ROLLOUTS
from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest
from eval_pipeline.inference.cache import RequestCache

CALC = ToolSpec(name="add", description="add two numbers",
                parameters={"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}})


# -- scripted parts --------------------------------------------------------------------------------------------


class ScriptedEnvironment:
    """Episode of ``task.data['steps']`` steps (default 2): observation ``obs i of <task>`` after each agent
    message, done with ``task.data['reward']`` at the last. ``fail_at`` raises at that step; ``error_at`` answers
    that step with an error Step. Counts resets in ``log`` (shared by the instances of one test)."""

    def __init__(self, log: list[str] | None = None, clock: FakeClock | None = None) -> None:
        self.log = log if log is not None else []
        self.clock = clock
        self.task: AgentTask | None = None
        self.steps = 0

    def reset(self, task: AgentTask) -> Reset:
        self.task, self.steps = task, 0
        self.log.append(task.task_id)
        return Reset(messages=(ChatMessage(role="system", content="be brief"), user(task.prompt)), tools=(CALC,))

    def step(self, message: ChatMessage) -> Step:
        assert self.task is not None
        self.steps += 1
        if self.clock is not None:
            self.clock.advance(1.0)
        data = self.task.data
        if data.get("fail_at") == self.steps:
            raise RuntimeError("the tool crashed")
        if data.get("error_at") == self.steps:
            return Step(error="reward function failed")
        observation = user(f"obs {self.steps} of {self.task.task_id}")
        if self.steps >= data.get("steps", 2):
            return Step(observations=(observation,), reward=data.get("reward", 1.0), done=True)
        return Step(observations=(observation,), reward=data.get("partial"))

    def close(self) -> None:
        pass


class ScriptedAgent:
    """Answers ``act i: <last message>``; ``fail`` raises, ``error`` returns an error turn."""

    def __init__(self, fail: bool = False, error: bool = False) -> None:
        self.fail, self.error = fail, error
        self.started: list[str] = []

    def start(self, task: AgentTask, rollout_id: str) -> None:
        self.started.append(rollout_id)

    def act(self, conversation: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> AgentTurn:
        if self.fail:
            raise ValueError("agent blew up")
        if self.error:
            return AgentTurn(message=None, error="HTTP 500 from the agent")
        return AgentTurn(message=assistant(f"act {len(conversation)}: {conversation[-1].text}"), tokens_in=3,
                         tokens_out=2)

    def finish(self) -> None:
        pass


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class ScriptedSampler:
    """A sampler whose answers come from ``answer(request)`` (text, or a Completion); counts calls."""

    backend = "scripted"

    def __init__(self, answer: Any = None, name: str = "m") -> None:
        self.answer = answer or (lambda request: f"reply to {request.messages[-1].text}")
        self.name = name
        self.requests: list[tuple[GenerationRequest, GenerationParams]] = []
        self._lock = threading.Lock()

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend, "name": self.name}

    def generate(self, requests: Sequence[GenerationRequest], params: GenerationParams,
                 on_progress: Any = None) -> list[Completion]:
        out = []
        for request in requests:
            with self._lock:
                self.requests.append((request, params))
            value = self.answer(request)
            out.append(value if isinstance(value, Completion) else Completion(output=value, tokens_in=5,
                                                                              tokens_out=1, latency_s=0.01))
        return out


def task(task_id: str, **data: Any) -> AgentTask:
    return AgentTask(task_id=task_id, prompt=f"solve {task_id}", data=data)


def identity(task_id: str = "t0", member: int = 0) -> RolloutIdentity:
    return RolloutIdentity(sample_id=task_id, model="m", sample_index=member, rollout_id=f"r-{task_id}-{member}",
                           environment="python:scripted", row_hash="h")


def roll(env: ScriptedEnvironment, agent: Any, the_task: AgentTask, **settings: Any) -> dict[str, Any]:
    return run_rollout(the_task, agent, env, identity=identity(the_task.task_id),
                       settings=RolloutSettings(**settings))


# -- one rollout ---------------------------------------------------------------------------------------------------


def test_max_turns_ends_a_rollout_that_is_never_done() -> None:
    row = roll(ScriptedEnvironment(), ScriptedAgent(), task("t0", steps=100), max_turns=3)
    assert row["termination"] == "max_turns" and row["num_turns"] == 3
    assert row["reward"] == 0.0 and row["success"] is False and row["error"] is None
    assert (row["tokens_in"], row["tokens_out"]) == (9, 6)
    turns = json.loads(row["turns"])
    assert [t["turn"] for t in turns] == [0, 1, 2, 3] and turns[0]["reset"]["tools"] == [CALC.to_dict()]


def test_done_with_reward_and_success_against_the_threshold() -> None:
    the_task = task("t1", steps=2, reward=0.7, partial=0.1)
    row = roll(ScriptedEnvironment(), ScriptedAgent(), the_task, success_threshold=0.5)
    assert row["termination"] == "done" and row["num_turns"] == 2 and row["reward"] == 0.7
    assert row["success"] is True
    assert roll(ScriptedEnvironment(), ScriptedAgent(), the_task, success_threshold=0.7)["success"] is True
    assert roll(ScriptedEnvironment(), ScriptedAgent(), the_task, success_threshold=0.71)["success"] is False
    # the conversation, written out by hand
    expected = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "solve t1"},
                {"role": "assistant", "content": "act 2: solve t1"}, {"role": "user", "content": "obs 1 of t1"},
                {"role": "assistant", "content": "act 4: obs 1 of t1"}, {"role": "user", "content": "obs 2 of t1"}]
    assert json.loads(row["messages"]) == expected
    turns = json.loads(row["turns"])
    assert [t["step"]["reward"] for t in turns[1:]] == [0.1, 0.7]
    assert ROLLOUTS.names == list(row)


@pytest.mark.parametrize(("data", "message"), [({"fail_at": 2}, "RuntimeError: the tool crashed"),
                                               ({"error_at": 1}, "reward function failed")])
def test_an_environment_failure_is_an_environment_error_row(data: dict[str, Any], message: str) -> None:
    row = roll(ScriptedEnvironment(), ScriptedAgent(), task("t2", steps=5, **data))
    assert row["error_source"] == "environment" and row["termination"] == "error"
    assert message in row["error"] and row["reward"] is None and row["success"] is None


@pytest.mark.parametrize("agent", [ScriptedAgent(fail=True), ScriptedAgent(error=True)])
def test_an_agent_failure_is_an_agent_error_row(agent: ScriptedAgent) -> None:
    row = roll(ScriptedEnvironment(), agent, task("t3"))
    assert row["error_source"] == "agent" and row["termination"] == "error" and row["reward"] is None
    assert ("agent blew up" if agent.fail else "HTTP 500") in row["error"]


def test_a_call_past_the_per_call_timeout_ends_the_rollout_as_timeout() -> None:
    release = threading.Event()

    class Stuck(ScriptedAgent):
        def act(self, conversation: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> AgentTurn:
            release.wait(10)
            return super().act(conversation, tools)

    try:
        row = roll(ScriptedEnvironment(), Stuck(), task("t4"), call_timeout_s=0.05)
    finally:
        release.set()
    assert (row["termination"], row["error_source"]) == ("timeout", "agent") and "0.05 s" in row["error"]


# -- the simulated user ------------------------------------------------------------------------------------------


class TalkingEnvironment(ScriptedEnvironment):
    """A conversational environment: plain agent replies get no observation (the user answers them); the final
    stop-marker message from the loop is answered with the reward."""

    def reset(self, task: AgentTask) -> Reset:
        self.task, self.steps = task, 0
        self.log.append(task.task_id)
        return Reset(messages=(ChatMessage(role="system", content="you are a travel agent"),), tools=(CALC,))

    def step(self, message: ChatMessage) -> Step:
        self.steps += 1
        if message.role == "user" and STOP_MARKER in message.content:
            return Step(reward=0.5, done=True)
        return Step()


def test_the_simulated_user_sees_flipped_roles_and_ends_with_the_stop_marker(tmp_path: Path) -> None:
    replies = iter(["I want a flight to Oslo", f"thanks {STOP_MARKER}"])
    user_model = ScriptedSampler(lambda request: next(replies), name="user-model")
    simulator = UserSimulator(user_model, GenerationParams(), cache=RequestCache(tmp_path / "c.sqlite"))
    the_task = task("t5", user_instructions="You want to fly to Oslo on Monday.")
    row = run_rollout(the_task, ScriptedAgent(), TalkingEnvironment(), identity=identity("t5"), user=simulator,
                      settings=RolloutSettings(max_turns=5, success_threshold=0.5))
    assert (row["termination"], row["reward"], row["success"], row["num_turns"]) == ("done", 0.5, True, 1)
    assert json.loads(row["messages"]) == [
        {"role": "system", "content": "you are a travel agent"},
        {"role": "user", "content": "I want a flight to Oslo"},
        {"role": "assistant", "content": "act 2: I want a flight to Oslo"},
        {"role": "user", "content": "thanks"}]
    first, second = (request.messages for request, _ in user_model.requests)
    assert first[0].role == "system" and "fly to Oslo on Monday" in first[0].content and STOP_MARKER in \
        first[0].content
    assert [(m.role, m.content) for m in first[1:]] == [("user", "Hi! How can I help you today?")]
    assert [(m.role, m.content) for m in second[1:]] == [
        ("user", "Hi! How can I help you today?"), ("assistant", "I want a flight to Oslo"),
        ("user", "act 2: I want a flight to Oslo")]
    assert len(json.loads(row["request_hashes"])) == 2  # the user's two model calls (the agent is scripted)


def test_flip_roles_drops_system_and_tool_traffic() -> None:
    call = ToolCall(id="c1", name="add", arguments='{"a": 1, "b": 2}')
    flipped = flip_roles([ChatMessage(role="system", content="s"), user("hi"), assistant("", [call]),
                          tool_result(call, "3"), assistant("it is 3")])
    assert [(m.role, m.content) for m in flipped] == [("assistant", "hi"), ("user", "it is 3")]


def test_a_user_simulator_failure_is_a_user_error_not_an_agent_one(tmp_path: Path) -> None:
    answers = iter(["book me a flight", Completion.failed("user model: HTTP 503")])
    simulator = UserSimulator(ScriptedSampler(lambda request: next(answers)), GenerationParams(),
                              cache=RequestCache(tmp_path / "c.sqlite"))
    row = run_rollout(task("t6", user_instructions="fly"), ScriptedAgent(), TalkingEnvironment(),
                      identity=identity("t6"), user=simulator)
    assert (row["error_source"], row["termination"]) == ("user", "error") and "HTTP 503" in row["error"]
    assert row["reward"] is None and row["success"] is None
    turns = json.loads(row["turns"])
    assert all(t["agent"]["error"] is None for t in turns if "agent" in t)  # the agent did nothing wrong
    assert turns[-1]["user"]["error"] is not None


def test_a_suite_with_a_user_needs_instructions_on_every_task() -> None:
    simulator = UserSimulator(ScriptedSampler(), GenerationParams())
    with pytest.raises(EvalInputError, match="user_instructions"):
        run_rollouts([task("a", user_instructions="x"), task("b")], model="m", make_agent=lambda t, m: ScriptedAgent(),
                     make_environment=TalkingEnvironment, agent_identity={}, environment="e", user=simulator)


# -- many rollouts -------------------------------------------------------------------------------------------------


def run(tasks: list[AgentTask], log: list[str] | None = None, **options: Any) -> RolloutRun:
    options.setdefault("eval_group_size", 2)
    return run_rollouts(tasks, model="m", make_agent=lambda t, member: ScriptedAgent(),
                        make_environment=lambda: ScriptedEnvironment(log, options.get("clock_env")),
                        agent_identity={"agent": "scripted"}, environment="python:scripted",
                        **{k: v for k, v in options.items() if k != "clock_env"})


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """The table without its wall-clock timings."""
    def strip(text: str) -> str:
        turns = json.loads(text)
        for turn in turns:
            for part in turn.values():
                if isinstance(part, dict):
                    part.pop("latency_s", None)
        return json.dumps(turns)

    return frame.drop(columns=["latency_s"]).assign(turns=frame["turns"].map(strip))


def test_tasks_times_group_members_in_order_and_identical_at_any_concurrency() -> None:
    tasks = [task(f"t{i}", steps=1 + i % 3, reward=(i % 4) / 3) for i in range(12)]
    one = run(tasks, eval_group_size=3, concurrency=1).frame
    eight = run(tasks, eval_group_size=3, concurrency=8).frame
    assert list(zip(one["sample_id"], one["sample_index"], strict=True)) == [
        (f"t{i}", member) for i in range(12) for member in range(3)]
    assert one["rollout_id"].is_unique
    pd.testing.assert_frame_equal(comparable(one), comparable(eight))
    assert list(one["num_turns"]) == [1 + i % 3 for i in range(12) for _ in range(3)]
    assert list(one["reward"]) == [(i % 4) / 3 for i in range(12) for _ in range(3)]


def test_the_time_budget_with_an_injected_clock() -> None:
    clock = FakeClock()  # each environment step takes one second of it; each rollout two steps
    result = run([task(f"t{i}", steps=2) for i in range(3)], eval_group_size=2, concurrency=1,
                 stopping_condition=5, clock=clock, clock_env=clock)
    frame = result.frame
    # rollouts start at 0 and 2 and finish; the third starts at 4 and meets the deadline before its second turn;
    # the rest are never started
    assert list(frame["termination"]) == ["done", "done", "budget", "budget", "budget", "budget"]
    assert list(frame["error_source"].fillna("")) == ["", "", "budget", "budget", "budget", "budget"]
    assert list(frame["num_turns"]) == [2, 2, 1, 0, 0, 0]
    assert frame["reward"].isna().tolist() == [False, False, True, True, True, True]
    assert (result.stats.errors, result.stats.budget) == (4, 4)


@pytest.mark.parametrize("seconds", [0, -1, 259_201])
def test_stopping_condition_out_of_range_is_refused_before_any_rollout(seconds: float) -> None:
    log: list[str] = []
    with pytest.raises(EvalInputError, match="stopping_condition"):
        run([task("t0")], log, stopping_condition=seconds)
    assert log == []


def test_resume_runs_only_the_missing_and_errored_rollouts(tmp_path: Path) -> None:
    store = RolloutStore(tmp_path / "rollouts.sqlite")
    tasks = [task(f"t{i}", steps=2, reward=1.0) for i in range(9)] + [task("bad", fail_at=1)]
    first_log: list[str] = []
    first = run(tasks, first_log, store=store, concurrency=4)
    assert len(first_log) == 20 and first.stats.ran == 20 and len(store) == 18  # errored rows are not stored
    second_log: list[str] = []
    second = run(tasks, second_log, store=store, concurrency=4)
    assert second_log == ["bad", "bad"] and second.stats.stored == 18  # only the errored task rolls out again
    pd.testing.assert_frame_equal(first.frame.iloc[:18], second.frame.iloc[:18])  # the stored rows, as they were
    pd.testing.assert_frame_equal(comparable(first.frame), comparable(second.frame))

    fixed = [*tasks[:9], task("bad", steps=1)]  # a changed task is a new rollout (its row hash changed)
    third_log: list[str] = []
    run(fixed, third_log, store=store)
    assert third_log == ["bad", "bad"] and len(store) == 20
    fourth_log: list[str] = []
    run(fixed, fourth_log, store=RolloutStore(tmp_path / "rollouts.sqlite"))
    assert fourth_log == []  # 20 rollouts, all stored: no environment is reset


def test_rollout_ids_change_with_each_part_of_the_identity() -> None:
    base = {"row_hash": "h", "agent": {"m": 1}, "environment": "e", "settings": {"max_turns": 3}, "member": 0}
    ids = {rollout_id(**base)}
    for name, value in [("row_hash", "h2"), ("agent", {"m": 2}), ("environment", "e2"),
                        ("settings", {"max_turns": 4}), ("member", 1)]:
        ids.add(rollout_id(**{**base, name: value}))
    assert len(ids) == 6


def test_the_store_lives_beside_the_request_cache(eval_home: Path) -> None:
    assert rollout_store_path() == eval_home / "cache" / "rollouts.sqlite"


def test_progress_reports_every_rollout(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    run([task(f"t{i}") for i in range(3)], on_progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 6) and seen[-1] == (6, 6) and len(seen) == 7


# -- the model as agent ------------------------------------------------------------------------------------------


def test_model_agent_calls_go_through_the_cache_with_tools_and_member_seeds(tmp_path: Path) -> None:
    def answer(request: GenerationRequest) -> Any:
        if request.messages[-1].role == "user" and request.messages[-1].content.startswith("solve"):
            return Completion(output="", tool_calls=(ToolCall(id="c1", name="add", arguments='{"a": 2}'),),
                              tokens_in=7, tokens_out=4)
        return f"done after {request.messages[-1].text}"

    sampler = ScriptedSampler(answer)
    cache = RequestCache(tmp_path / "cache.sqlite")
    params = GenerationParams(max_tokens=32, temperature=0.7, seed=10)
    tasks = [task(f"t{i}", steps=2) for i in range(3)]

    def go() -> pd.DataFrame:
        return run_rollouts(tasks, model="m", make_agent=model_agent_factory(sampler, params, cache=cache),
                            make_environment=ScriptedEnvironment, agent_identity=model_agent_identity(sampler, params),
                            environment="python:scripted", eval_group_size=2, concurrency=4).frame

    first = go()
    assert len(sampler.requests) == 12  # 3 tasks × 2 members × 2 turns
    request, _ = next(r for r in sampler.requests if r[0].sample_id == "t0" and len(r[0].messages) == 2)
    assert request.tools == (CALC,)
    assert {(r.sample_id, r.sample_index, p.seed) for r, p in sampler.requests} == {
        (f"t{i}", member, 10 + member) for i in range(3) for member in range(2)}
    turns = json.loads(first["turns"][0])
    assert turns[1]["agent"]["message"]["tool_calls"] == [{"id": "c1", "name": "add", "arguments": '{"a": 2}'}]
    assert first["tokens_in"].tolist() == [7 + 5] * 6 and not first["cached"].any()
    assert all(len(json.loads(h)) == 2 for h in first["request_hashes"])

    second = go()  # no store: every rollout runs again, every model call is served from the cache
    assert len(sampler.requests) == 12 and second["cached"].all()
    assert second["request_hashes"].tolist() == first["request_hashes"].tolist()
    assert second["messages"].tolist() == first["messages"].tolist()


def test_model_agent_failure_is_an_agent_error(tmp_path: Path) -> None:
    sampler = ScriptedSampler(lambda request: Completion.failed("openai: HTTP 400: context too long"))
    agent = ModelAgent(sampler, GenerationParams(), cache=RequestCache(tmp_path / "c.sqlite"))
    row = roll(ScriptedEnvironment(), agent, task("t0"))
    assert row["error_source"] == "agent" and "context too long" in row["error"]


def test_a_service_agents_done_ends_the_episode_and_its_reward_counts_when_the_environment_gives_none() -> None:
    class Service(ScriptedAgent):
        def act(self, conversation: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> AgentTurn:
            turn = super().act(conversation, tools)
            return AgentTurn(message=turn.message, reward=0.25, done=len(conversation) >= 4)

    row = roll(ScriptedEnvironment(), Service(), task("s", steps=10))  # the environment never ends it nor rewards
    assert (row["termination"], row["num_turns"], row["reward"]) == ("done", 2, 0.25)
    rewarded = roll(ScriptedEnvironment(), Service(), task("s", steps=10, partial=0.5))
    assert rewarded["reward"] == 0.5  # the environment's reward wins
