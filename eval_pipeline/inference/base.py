"""The contract every inference backend meets."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eval_pipeline.data.messages import ROLES, ChatMessage, ToolCall, ToolSpec, messages_from_json
from eval_pipeline.errors import EvalInputError

Message = ChatMessage
"""Kept as a name for older imports: a request's messages are typed ``ChatMessage`` objects."""
ProgressCallback = Callable[[int], None]
"""Called with the number of requests just finished."""


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass(frozen=True)
class GenerationRequest:
    """One completion to make: a chat conversation (a plain prompt is one user message) and the tools the model may
    call. Messages and tools given as dicts (our JSON shape or OpenAI's) are read into ``ChatMessage``/``ToolSpec``."""

    sample_id: str
    sample_index: int
    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", tuple(_message(m) for m in self.messages))
        object.__setattr__(self, "tools", tuple(_tool(t) for t in self.tools))


@dataclass
class Completion:
    """The result of one request; ``error`` is set (and ``output`` is None) when it failed."""

    output: str | None
    finish_reason: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_s: float = 0.0
    cost_usd: float | None = None
    error: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()

    @classmethod
    def failed(cls, reason: str, latency_s: float = 0.0) -> Completion:
        return cls(output=None, finish_reason="error", latency_s=latency_s, error=reason)


class Sampler(Protocol):
    """Turns requests into completions, in request order; one failure must not fail the others."""

    backend: str

    def identity(self) -> dict[str, Any]:
        """Everything about the sampler that changes its outputs (part of each request's cache key)."""
        ...

    def generate(self, requests: Sequence[GenerationRequest], params: GenerationParams,
                 on_progress: ProgressCallback | None = None) -> list[Completion]:
        ...


def request_messages(text: str, input_kind: str, system_prompt: str | None = None) -> tuple[ChatMessage, ...]:
    """A sample's input as chat messages, with the suite's system prompt first when it sets one."""
    messages = (list(messages_from_json(text)) if input_kind == "messages"
                else [ChatMessage(role="user", content=text)])
    if system_prompt and not any(m.role == "system" for m in messages):
        messages = [ChatMessage(role="system", content=system_prompt), *messages]
    return tuple(messages)


def refuse_tools(requests: Sequence[GenerationRequest], backend: str) -> None:
    """Raise EvalInputError when any request offers tools: for backends that cannot send them (rather than
    dropping them silently)."""
    for request in requests:
        if request.tools:
            raise EvalInputError(f"backend {backend!r} cannot offer tools to the model (request {request.sample_id!r}"
                                 f" offers {', '.join(t.name for t in request.tools)}); use bedrock, openai, vllm, "
                                 "local or sagemaker with request_format 'messages'", field="tools")


def _message(value: ChatMessage | Mapping[str, Any]) -> ChatMessage:
    """A message read from our JSON shape or OpenAI's. A role we do not know is kept as given (its text only), so
    the backend fails that one request, as samplers do, rather than the whole batch failing here."""
    if isinstance(value, ChatMessage):
        return value
    try:
        return ChatMessage.from_dict(value)
    except ValueError:
        if value.get("role") in ROLES or not isinstance(value.get("content"), str):
            raise
        return ChatMessage(role=value["role"], content=value["content"])


def _tool(value: ToolSpec | Mapping[str, Any]) -> ToolSpec:
    return value if isinstance(value, ToolSpec) else ToolSpec.from_dict(value)


class HostedForOneStream:
    """Mixin for a sampler that hosts its model only while it answers (a server it starts, a temporary endpoint):
    ``close`` (the subclass's: stop, delete) runs after each ``stream``, also when it fails or is stopped."""

    def stream(self, requests: Sequence[GenerationRequest],
               params: GenerationParams) -> Iterator[tuple[int, Completion]]:
        try:
            yield from super().stream(requests, params)  # type: ignore[misc]
        finally:
            self.close()  # type: ignore[attr-defined]
