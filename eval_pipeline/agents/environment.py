"""The contract between the rollout loop and an environment, and between the loop and the agent it rolls out.

An environment is reset with a task and gives the agent its first messages and the tools it may call; it is then
stepped with each of the agent's messages and answers with observations (tool results, a user's reply), a reward
and whether the episode is over. The agent is either the model under test driven by our loop (``ModelAgent``) or a
service we converse with (an AgentCore runtime, a Lambda function).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from eval_pipeline.data.messages import ChatMessage, ToolSpec

ErrorSource = Literal["agent", "environment", "user", "budget"]
"""Who caused a rollout's error: the model or agent service under test, the environment (a tool or a reward that
failed), the simulated user, or the evaluation's time budget. Only ``agent`` errors count against the model."""


@dataclass(frozen=True)
class AgentTask:
    """One task of an agent dataset: its id, the prompt or scenario it starts from, and the environment's own data
    (gold actions, the expected answer, the simulated user's instructions, …)."""

    task_id: str
    prompt: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reset:
    """What the agent sees first: messages (a system prompt, the user's opening) and the tools it may call."""

    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...] = ()


@dataclass(frozen=True)
class Step:
    """The environment's answer to one agent message. ``reward`` is set when the episode ends (and may be set on
    the way); ``error`` with ``error_source`` ends it with an error row that says whose fault it was."""

    observations: tuple[ChatMessage, ...] = ()
    reward: float | None = None
    done: bool = False
    info: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_source: ErrorSource | None = None


class Environment(Protocol):
    """One episode at a time; ``close`` releases what ``reset`` acquired. Implementations are registered by kind."""

    def reset(self, task: AgentTask) -> Reset: ...

    def step(self, message: ChatMessage) -> Step: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class AgentTurn:
    """The agent's message for one turn, and what it cost. A service agent may report its own ``reward`` and
    ``done`` (the environment then decides whether to use them)."""

    message: ChatMessage | None
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_s: float = 0.0
    cached: bool = False
    request_hash: str | None = None
    reward: float | None = None
    done: bool | None = None
    error: str | None = None


class Agent(Protocol):
    """Produces the agent's next message from the conversation so far and the tools on offer. ``start`` begins a
    new episode (a service agent opens a session), ``finish`` ends it."""

    def start(self, task: AgentTask, rollout_id: str) -> None: ...

    def act(self, conversation: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> AgentTurn: ...

    def finish(self) -> None: ...
