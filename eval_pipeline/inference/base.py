"""The contract every inference backend meets."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Message = dict[str, str]
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
    """One completion to make: a chat conversation (a plain prompt is one user message)."""

    sample_id: str
    sample_index: int
    messages: tuple[Message, ...]


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


def request_messages(text: str, input_kind: str, system_prompt: str | None = None) -> tuple[Message, ...]:
    """A sample's input as chat messages, with the suite's system prompt first when it sets one."""
    messages: list[Message] = json.loads(text) if input_kind == "messages" else [{"role": "user", "content": text}]
    if system_prompt and not any(m["role"] == "system" for m in messages):
        messages = [{"role": "system", "content": system_prompt}, *messages]
    return tuple(messages)
