"""The model under test as the agent of a rollout: each turn is one cached model call.

Every ``act`` is one ``GenerationRequest`` (the task id, the group member as ``sample_index``, the conversation so
far and the tools on offer) sent through ``complete_requests`` with the request cache: a rollout re-run after a
kill is served its earlier model calls from the cache, and concurrent runs sharing the cache send each call once.
Each group member samples with its own seed (``seed + member``), so the members of a group are distinct samples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from eval_pipeline.agents.environment import AgentTask, AgentTurn
from eval_pipeline.data.messages import ChatMessage, ToolSpec
from eval_pipeline.inference.base import GenerationParams, GenerationRequest, Sampler
from eval_pipeline.inference.cache import RequestCache
from eval_pipeline.inference.runner import complete_requests
from eval_pipeline.inference.send_once import SendOnce


def member_params(params: GenerationParams, member: int) -> GenerationParams:
    """The generation parameters of group member ``member``: its own seed, so members are distinct samples."""
    return dataclasses.replace(params, seed=params.seed + member)


def model_call(sampler: Sampler, params: GenerationParams, request: GenerationRequest,
               cache: RequestCache | None, coordination: SendOnce | None = None) -> AgentTurn:
    """One request through the cache; its message (text and tool calls), tokens, latency, key and whether it was
    served from the cache. A failed call is an ``AgentTurn`` with ``error`` set and no message."""
    done = complete_requests([request], sampler, params, cache=cache, coordination=coordination)
    key = done.keys[0]
    completion = done.results[key]
    cached = key in done.cached
    if completion.error is not None or (completion.output is None and not completion.tool_calls):
        return AgentTurn(message=None, latency_s=completion.latency_s, cached=cached, request_hash=key,
                         error=completion.error or "the model returned no output")
    message = ChatMessage(role="assistant", content=completion.output or "",
                          tool_calls=tuple(completion.tool_calls))
    return AgentTurn(message=message, tokens_in=completion.tokens_in, tokens_out=completion.tokens_out,
                     latency_s=0.0 if cached else completion.latency_s, cached=cached, request_hash=key)


class ModelAgent:
    """``Agent`` for one rollout of the model under test (one instance per rollout: it holds the task and member)."""

    def __init__(self, sampler: Sampler, params: GenerationParams, *, member: int = 0,
                 cache: RequestCache | None = None, coordination: SendOnce | None = None) -> None:
        self.sampler, self.member, self.cache, self.coordination = sampler, member, cache, coordination
        self.params = member_params(params, member)
        self.task_id: str | None = None

    def start(self, task: AgentTask, rollout_id: str) -> None:
        self.task_id = task.task_id

    def act(self, conversation: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> AgentTurn:
        if self.task_id is None:
            raise RuntimeError("ModelAgent.act before start")
        request = GenerationRequest(sample_id=self.task_id, sample_index=self.member, messages=tuple(conversation),
                                    tools=tuple(tools))
        return model_call(self.sampler, self.params, request, self.cache, self.coordination)

    def finish(self) -> None:
        self.task_id = None


def model_agent_factory(sampler: Sampler, params: GenerationParams, *, cache: RequestCache | None = None,
                        ) -> Callable[[AgentTask, int], ModelAgent]:
    """What the rollout runner calls for each rollout: a fresh ``ModelAgent`` for (task, group member)."""
    return lambda task, member: ModelAgent(sampler, params, member=member, cache=cache)


def model_agent_identity(sampler: Sampler, params: GenerationParams) -> dict[str, Any]:
    """What about the model agent changes its rollouts (part of each rollout's id)."""
    return {"agent": "model", "sampler": sampler.identity(), "params": dataclasses.asdict(params)}
