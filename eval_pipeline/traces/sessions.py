"""The ``traces`` table read as sessions: turns (one trace each), their prompt and reply, their tool calls.

This is what evaluators read. A session whose agent and model spans carry no message bodies (spans without their
event records) cannot be judged: it gets ``error`` (code ``LogEventMissingException``, as the service reports it)
and every evaluator gives it an error row instead of a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eval_pipeline.data.messages import ChatMessage


@dataclass(frozen=True)
class ToolCallRecord:
    """One tool call (an ``execute_tool`` span): its name, arguments, result and how it ended."""

    name: str
    span_id: str
    trace_id: str
    call_id: str | None = None
    arguments: Any = None
    """The arguments as parsed JSON (the raw text when it is not JSON; None when not recorded)."""
    result: str | None = None
    status: str = "UNSET"
    start_ns: int | None = None


@dataclass(frozen=True)
class Turn:
    """One trace of a session: the user's prompt, the agent's final reply, the conversation the agent saw, and
    the tool calls it made, in start order."""

    trace_id: str
    root_span_id: str
    prompt: str | None
    response: str | None
    messages: tuple[ChatMessage, ...] = ()
    """The conversation up to and including this turn's reply (what a judge reads as context)."""
    tool_calls: tuple[ToolCallRecord, ...] = ()
    start_ns: int | None = None
    end_ns: int | None = None


@dataclass(frozen=True)
class Session:
    """A recorded agent session: its turns in start order and what the agent was offered."""

    session_id: str
    turns: tuple[Turn, ...]
    service: str | None = None
    available_tools: tuple[str, ...] = ()
    span_count: int = 0
    start_ns: int | None = None
    end_ns: int | None = None
    error: str | None = None
    error_code: str | None = None
    sources: tuple[str, ...] = field(default=())

    @property
    def tool_names(self) -> list[str]:
        """The names of every tool call in the session, in the order they started (the trajectory)."""
        return [call.name for turn in self.turns for call in turn.tool_calls]

    @property
    def tool_calls(self) -> list[ToolCallRecord]:
        return [call for turn in self.turns for call in turn.tool_calls]
