"""An LLM playing the user of a conversational task, τ-bench style.

The simulator is told the scenario (the task's ``user_instructions``) in a system prompt and sees the conversation
with the roles flipped: the agent's replies are its "user" turns and its own earlier messages are its "assistant"
turns; tool calls and tool results are the agent's business and are left out. It writes the user's next message,
and ends the conversation by writing the stop marker (``###STOP###``). Its model calls go through the request
cache like the agent's. When it fails, the rollout's error says ``user``: a simulator failure is never counted
against the model under test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eval_pipeline.agents.environment import AgentTask
from eval_pipeline.agents.model_agent import member_params, model_call
from eval_pipeline.data.messages import ChatMessage
from eval_pipeline.inference.base import GenerationParams, GenerationRequest, Sampler
from eval_pipeline.inference.cache import RequestCache

STOP_MARKER = "###STOP###"
OPENING = "Hi! How can I help you today?"
"""What the simulated user answers first when the conversation has no agent message yet (τ-bench's greeting)."""

SYSTEM_TEMPLATE = """You are a user talking to a customer-service agent. Play the user described below, one message \
at a time: write only what the user says, in the first person, and reveal only what is needed to answer the agent. \
Do not make up facts that the instructions do not give. When your goal is reached, or it cannot be reached, write \
{stop} on its own as your message to end the conversation.

Instructions:
{instructions}"""


@dataclass(frozen=True)
class UserReply:
    """The user's next message (None when the user ended without words), whether the user ended the
    conversation, and the model call's bookkeeping; ``error`` is set when the simulator failed."""

    message: ChatMessage | None
    stop: bool = False
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_s: float = 0.0
    cached: bool = False
    request_hash: str | None = None
    error: str | None = None


def flip_roles(conversation: Sequence[ChatMessage]) -> list[ChatMessage]:
    """The conversation as the simulated user sees it: agent text → ``user``, user text → ``assistant``; system
    messages, tool results and tool-call-only agent turns are left out."""
    flipped: list[ChatMessage] = []
    for message in conversation:
        if message.role == "assistant" and message.text:
            flipped.append(ChatMessage(role="user", content=message.text))
        elif message.role == "user":
            flipped.append(ChatMessage(role="assistant", content=message.text))
    return flipped


class UserSimulator:
    """Shared by every rollout (it keeps no state between calls): ``reply`` gets the task and group member."""

    def __init__(self, sampler: Sampler, params: GenerationParams, *, cache: RequestCache | None = None,
                 instructions_field: str = "user_instructions", stop_marker: str = STOP_MARKER,
                 system_template: str = SYSTEM_TEMPLATE) -> None:
        self.sampler, self.params, self.cache = sampler, params, cache
        self.instructions_field, self.stop_marker, self.system_template = (instructions_field, stop_marker,
                                                                           system_template)

    def identity(self) -> dict[str, Any]:
        """What changes the simulated user's messages (part of each rollout's id)."""
        return {"sampler": self.sampler.identity(), "params": dataclasses.asdict(self.params),
                "instructions_field": self.instructions_field, "stop_marker": self.stop_marker,
                "system_template": self.system_template}

    def instructions(self, task: AgentTask) -> str:
        """The task's scenario for the user; KeyError naming the field when the task has none."""
        value = task.data.get(self.instructions_field)
        if not isinstance(value, str) or not value.strip():
            raise KeyError(f"task {task.task_id!r} has no {self.instructions_field!r} for the simulated user")
        return value

    def messages(self, task: AgentTask, conversation: Sequence[ChatMessage]) -> tuple[ChatMessage, ...]:
        """The simulator's request: the scenario, then the conversation with roles flipped (opened by the agent's
        greeting when the agent has not spoken yet)."""
        system = ChatMessage(role="system", content=self.system_template.format(
            stop=self.stop_marker, instructions=self.instructions(task)))
        flipped = flip_roles(conversation)
        if not flipped or flipped[0].role != "user":
            flipped.insert(0, ChatMessage(role="user", content=OPENING))
        return (system, *flipped)

    def reply(self, task: AgentTask, member: int, conversation: Sequence[ChatMessage]) -> UserReply:
        """The user's next message; a failed model call (or a task without instructions) is a reply with
        ``error`` set."""
        try:
            request = GenerationRequest(sample_id=f"user:{task.task_id}", sample_index=member,
                                        messages=self.messages(task, conversation))
        except KeyError as exc:
            return UserReply(message=None, error=str(exc.args[0]))
        turn = model_call(self.sampler, member_params(self.params, member), request, self.cache)
        if turn.error is not None or turn.message is None:
            return UserReply(message=None, latency_s=turn.latency_s, cached=turn.cached,
                             request_hash=turn.request_hash, error=f"user simulator: {turn.error}")
        text = turn.message.text
        stop = self.stop_marker in text
        words = text.replace(self.stop_marker, "").strip() if stop else text
        message = ChatMessage(role="user", content=words) if words else None
        if message is None and not stop:
            return UserReply(message=None, latency_s=turn.latency_s, cached=turn.cached,
                             request_hash=turn.request_hash, error="user simulator: an empty message")
        return UserReply(message=message, stop=stop, tokens_in=turn.tokens_in, tokens_out=turn.tokens_out,
                         latency_s=turn.latency_s, cached=turn.cached, request_hash=turn.request_hash)
