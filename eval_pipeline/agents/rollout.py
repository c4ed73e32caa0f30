"""One rollout: reset → the agent acts → the environment steps → … until done, ``max_turns``, a timeout or an error.

Every turn is recorded (the agent's message with its tool calls, the observations, the simulated user's reply,
timings, tokens, cache keys) and the rollout becomes one row of the ``rollouts`` table. An error row says whose
fault it was (``error_source``): the ``agent`` (the model or agent service under test), the ``environment`` (a
tool, a reward), the simulated ``user`` or the evaluation's time ``budget``; only agent errors count against the
model.

With a simulated user: when the agent writes to the user (a message without tool calls) and the environment has
nothing to say back (no observations, not done), the simulated user answers. When the user ends the conversation,
the environment is stepped once more with a ``user`` message holding the stop marker, and answers with the final
reward (an environment that does not know the convention gives no reward there: the last reward it gave counts).

An agent service may report its own ``reward`` and ``done`` with a reply: its ``done`` ends the episode, and its
reward counts when the environment gave none (the environment's reward wins; none at all is 0).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from eval_pipeline.agents.environment import Agent, AgentTask, Environment, ErrorSource, Step
from eval_pipeline.agents.user_simulator import UserReply, UserSimulator
from eval_pipeline.data.messages import ChatMessage

_T = TypeVar("_T")
TERMINATIONS = ("done", "max_turns", "timeout", "budget", "error")


@dataclass(frozen=True)
class RolloutSettings:
    """How one rollout runs: the most agent turns, the longest one call (agent, environment or user) may take
    (None: no limit of ours), and the reward a rollout needs to count as a success."""

    max_turns: int = 8
    call_timeout_s: float | None = None
    success_threshold: float = 1.0


@dataclass(frozen=True)
class RolloutIdentity:
    """What names a rollout's row: the task, model, group member, rollout id, environment and the task's hash."""

    sample_id: str
    model: str
    sample_index: int
    rollout_id: str
    environment: str
    row_hash: str


class _Ended(Exception):
    """Ends a rollout early with an error row."""

    def __init__(self, message: str, source: ErrorSource, termination: str = "error") -> None:
        super().__init__(message)
        self.source, self.termination = source, termination


class CallTimeout(Exception):
    """A call ran past the rollout's per-call timeout (it is abandoned, not interrupted)."""


def timed_call(action: Callable[[], _T], timeout_s: float | None) -> _T:
    """``action()``, or CallTimeout once ``timeout_s`` passed (the call is left running on a daemon thread)."""
    if timeout_s is None:
        return action()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = action()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=run, name="rollout-call", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise CallTimeout(f"the call took longer than {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _call(action: Callable[[], _T], source: ErrorSource, what: str, timeout_s: float | None) -> _T:
    try:
        return timed_call(action, timeout_s)
    except CallTimeout as exc:
        raise _Ended(f"{what}: {exc}", source, "timeout") from None
    except Exception as exc:
        raise _Ended(f"{what}: {type(exc).__name__}: {exc}", source) from None


def _dicts(messages: Any) -> list[dict[str, Any]]:
    return [m.to_dict() for m in messages]


class _Record:
    """What the loop gathers while a rollout runs."""

    def __init__(self) -> None:
        self.conversation: list[ChatMessage] = []
        self.turns: list[dict[str, Any]] = []
        self.hashes: list[str] = []
        self.all_cached = True
        self.tokens_in = self.tokens_out = 0
        self.reward: float | None = None
        self.agent_reward: float | None = None

    def model_call(self, request_hash: str | None, cached: bool) -> None:
        if request_hash is not None:
            self.hashes.append(request_hash)
        self.all_cached = self.all_cached and cached

    def step(self, step: Step) -> None:
        self.conversation += step.observations
        if step.reward is not None:
            self.reward = float(step.reward)

    def user(self, reply: UserReply, turn: dict[str, Any]) -> None:
        self.model_call(reply.request_hash, reply.cached)
        turn["user"] = {"message": reply.message.to_dict() if reply.message else None, "stop": reply.stop,
                        "tokens_in": reply.tokens_in, "tokens_out": reply.tokens_out,
                        "latency_s": reply.latency_s, "cached": reply.cached, "request_hash": reply.request_hash,
                        "error": reply.error}
        if reply.message is not None:
            self.conversation.append(reply.message)


def run_rollout(task: AgentTask, agent: Agent, environment: Environment, *, identity: RolloutIdentity,
                settings: RolloutSettings | None = None, user: UserSimulator | None = None,
                out_of_time: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """Roll ``agent`` out in ``environment`` on ``task``; one ``rollouts`` row (``out_of_time`` is asked before
    each turn: the evaluation's budget ends the rollout with a ``budget`` error row)."""
    settings = settings or RolloutSettings()
    started = time.perf_counter()
    record = _Record()
    termination, error, source = "max_turns", None, None
    timeout = settings.call_timeout_s
    try:
        reset = _call(lambda: environment.reset(task), "environment", "environment reset", timeout)
        record.conversation = list(reset.messages)
        record.turns.append({"turn": 0, "reset": {"messages": _dicts(reset.messages),
                                                  "tools": [t.to_dict() for t in reset.tools]}})
        _call(lambda: agent.start(task, identity.rollout_id), "agent", "agent start", timeout)
        if (user is not None and not any(m.role == "user" for m in record.conversation)
                and _user_turn(task, identity, user, record, record.turns[0], timeout).stop):
            raise _Ended("user simulator: ended the conversation before the agent spoke", "user")
        for number in range(1, settings.max_turns + 1):
            if out_of_time():
                raise _Ended("the evaluation's time budget ran out during the rollout", "budget", "budget")
            if _turn(number, task, identity, agent, environment, reset.tools, user, record, timeout):
                termination = "done"
                break
    except _Ended as ended:
        termination, error, source = ended.termination, str(ended), ended.source
    finally:
        for close in (agent.finish, environment.close):
            with contextlib.suppress(Exception):  # releasing resources must not turn a finished rollout into an error
                close()
    reward = None if error is not None else next(
        (r for r in (record.reward, record.agent_reward) if r is not None), None)
    if reward is None and error is None:
        if termination == "done":  # an ended episode with no reward is never scored as a failure by guess
            error, source = "the episode ended without a reward from the environment or the agent", "environment"
        else:
            reward = 0.0  # out of turns before the episode ended: a failed rollout (τ-bench's convention)
    agent_turns = sum(1 for t in record.turns if "agent" in t)
    return {
        "sample_id": identity.sample_id, "model": identity.model, "sample_index": identity.sample_index,
        "rollout_id": identity.rollout_id, "environment": identity.environment,
        "turns": json.dumps(record.turns, ensure_ascii=False, default=str),
        "messages": json.dumps(_dicts(record.conversation), ensure_ascii=False),
        "num_turns": agent_turns, "reward": reward,
        "success": None if reward is None else bool(reward >= settings.success_threshold),
        "termination": termination, "tokens_in": record.tokens_in, "tokens_out": record.tokens_out,
        "latency_s": time.perf_counter() - started, "cached": bool(record.hashes) and record.all_cached,
        "request_hashes": json.dumps(record.hashes), "row_hash": identity.row_hash,
        "error": error, "error_source": source,
    }


def _turn(number: int, task: AgentTask, identity: RolloutIdentity, agent: Agent, environment: Environment,
          tools: Any, user: UserSimulator | None, record: _Record, timeout: float | None) -> bool:
    """One agent turn (and the user's answer to it); True when the episode is over."""
    turn: dict[str, Any] = {"turn": number}
    record.turns.append(turn)
    conversation = tuple(record.conversation)
    acted = _call(lambda: agent.act(conversation, tools), "agent", "agent", timeout)
    record.model_call(acted.request_hash, acted.cached)
    record.tokens_in += acted.tokens_in or 0
    record.tokens_out += acted.tokens_out or 0
    turn["agent"] = {"message": acted.message.to_dict() if acted.message else None, "tokens_in": acted.tokens_in,
                     "tokens_out": acted.tokens_out, "latency_s": acted.latency_s, "cached": acted.cached,
                     "request_hash": acted.request_hash, "error": acted.error, "reward": acted.reward,
                     "done": acted.done}
    if acted.error is not None or acted.message is None:
        raise _Ended(f"agent: {acted.error or 'no message'}", "agent")
    message = acted.message
    record.conversation.append(message)
    step = _step(environment, message, turn, timeout)
    record.step(step)
    if acted.reward is not None:
        record.agent_reward = float(acted.reward)
    if step.done or acted.done:
        return True
    if user is not None and not message.tool_calls and not step.observations:
        reply = _user_turn(task, identity, user, record, turn, timeout)
        if reply.stop:
            final = _step(environment, ChatMessage(role="user", content=user.stop_marker), turn, timeout,
                          name="final_step")
            record.step(final)
            return True
    return False


def _step(environment: Environment, message: ChatMessage, turn: dict[str, Any], timeout: float | None, *,
          name: str = "step") -> Step:
    began = time.perf_counter()
    step = _call(lambda: environment.step(message), "environment", "environment step", timeout)
    turn[name] = {"observations": _dicts(step.observations), "reward": step.reward, "done": step.done,
                  "info": dict(step.info), "latency_s": time.perf_counter() - began}
    if step.error is not None:
        raise _Ended(step.error, step.error_source or "environment")
    return step


def _user_turn(task: AgentTask, identity: RolloutIdentity, user: UserSimulator, record: _Record,
               turn: dict[str, Any], timeout: float | None) -> UserReply:
    conversation = tuple(record.conversation)
    reply = _call(lambda: user.reply(task, identity.sample_index, conversation), "user", "user simulator", timeout)
    record.user(reply, turn)
    if reply.error is not None:
        raise _Ended(reply.error, "user")
    return reply
