"""The ``traces`` table read as sessions: turns (one trace each), their prompt and reply, their tool calls.

This is what evaluators read. A session whose agent and model spans carry no message bodies (spans without their
event records) cannot be judged: it gets ``error`` (code ``LogEventMissingException``, as the service reports it)
and every evaluator gives it an error row instead of a value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from eval_pipeline.data.messages import ChatMessage
from eval_pipeline.data.schemas import TRACES
from eval_pipeline.traces.spans import Span, SpanKind


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


# -- the builder: TRACES rows -> sessions ----------------------------------------------------------------------

NO_BODY_MESSAGE = ("the session has spans but no event records with message bodies (its agent and model spans "
                   "carry no input or output): enable message capture and ship the runtime log group's events")
"""The error of a session whose agent and model spans all lack bodies (``ErrorCode.LOG_EVENT_MISSING``)."""

_BODY_KINDS = (SpanKind.AGENT, SpanKind.LLM)


def sessions_from_traces(frame: pd.DataFrame) -> list[Session]:
    """The ``traces`` table (``data.schemas.TRACES``) as sessions, in the order of their first span's start (then
    session id).

    - A session is the spans sharing a ``session_id`` (the service keys sessions by ``session.id``); a span without
      one belongs to a session of its own trace, whose id is the trace id (it can only be evaluated alone).
    - A turn is one trace, turns ordered by start (then trace id). Its prompt is the last user message of its agent
      span's input (the root agent span, else the first agent span; else the first model span's input); its
      response is the last assistant text of the agent span's output (else of the last model span's output).
    - ``messages``: the conversation the agent saw at this turn, then its reply. An input that holds the history
      (more than one non-system message) is taken as it is; an input with only the new prompt gets the previous
      turn's conversation put before it.
    - Tool calls: the trace's tool spans in start order (arguments parsed from JSON; the raw text when they are
      not JSON). ``available_tools``: every tool name the agent and model spans were offered, first seen first.
    - A session none of whose agent or model spans has a body (``has_body``) gets ``error`` with
      ``ErrorCode.LOG_EVENT_MISSING``, as the service reports it.
    """
    from eval_pipeline.traces.evaluators.base import ErrorCode

    spans = _spans(frame)
    by_session: dict[str, list[Span]] = {}
    for span in spans:
        by_session.setdefault(span.session_id or span.trace_id, []).append(span)
    sessions = []
    for session_id, members in by_session.items():
        by_trace: dict[str, list[Span]] = {}
        for span in sorted(members, key=_start_key):
            by_trace.setdefault(span.trace_id, []).append(span)
        turns: list[Turn] = []
        for trace_id in sorted(by_trace, key=lambda t: (_start_key(by_trace[t][0]), t)):
            turns.append(_turn(trace_id, by_trace[trace_id], turns[-1] if turns else None))
        bodies = [s for s in members if s.kind in _BODY_KINDS]
        no_body = not any(s.has_body for s in bodies)
        starts = [s.start_ns for s in members if s.start_ns is not None]
        ends = [s.end_ns for s in members if s.end_ns is not None]
        sessions.append(Session(
            session_id=session_id, turns=tuple(turns),
            service=next((s.service for s in members if s.service), None),
            available_tools=_offered(bodies), span_count=len(members),
            start_ns=min(starts) if starts else None, end_ns=max(ends) if ends else None,
            error=NO_BODY_MESSAGE if no_body else None,
            error_code=ErrorCode.LOG_EVENT_MISSING.value if no_body else None,
            sources=tuple(sorted({s.source for s in members if s.source}))))
    return sorted(sessions, key=lambda s: (s.start_ns is None, s.start_ns or 0, s.session_id))


_INT_COLUMNS = frozenset({"start_ns", "end_ns", "tokens_in", "tokens_out", "line"})


def _spans(frame: pd.DataFrame) -> list[Span]:
    """The rows as Spans (as ``span_from_row`` reads them, column by column: a hundred thousand spans in well
    under a second), timestamps as ints."""
    names = [name for name in TRACES.names if name in frame.columns]
    columns = {name: frame[name].astype(object).where(frame[name].notna(), None).tolist() for name in names}
    for name in set(names) & _INT_COLUMNS:
        columns[name] = [None if v is None else int(v) for v in columns[name]]
    for name, default in (("kind", SpanKind.OTHER), ("status", "UNSET")):
        if name in columns:
            columns[name] = [v or default for v in columns[name]]
    if "has_body" in columns:
        columns["has_body"] = [bool(v) for v in columns["has_body"]]
    spans = [Span(**dict(zip(names, values, strict=True))) for values in zip(*columns.values(), strict=True)]
    return spans


def _start_key(span: Span) -> tuple[bool, int, str]:
    return (span.start_ns is None, span.start_ns or 0, span.span_id)


def _turn(trace_id: str, spans: list[Span], previous: Turn | None) -> Turn:
    """One trace (its spans in start order) as a turn."""
    ids = {s.span_id for s in spans}
    agents = [s for s in spans if s.kind == SpanKind.AGENT]
    llms = [s for s in spans if s.kind == SpanKind.LLM]
    root = next((s for s in spans if not s.parent_id or s.parent_id not in ids), spans[0])
    agent = next((s for s in agents if s is root), agents[0] if agents else None)
    seen_in = _messages(agent.input if agent else None, "user")
    if not seen_in and llms:
        seen_in = _messages(llms[0].input, "user")
    reply = _messages(agent.output if agent else None, "assistant")
    if not reply and llms:
        reply = _messages(llms[-1].output, "assistant")
    history = previous.messages if previous is not None else ()
    if history and sum(m.role != "system" for m in seen_in) <= 1:
        seen_in = (*history, *(m for m in seen_in if not (m.role == "system" and m in history)))
    prompt = next((m.text for m in reversed(seen_in) if m.role == "user" and m.text), None)
    response = next((m.text for m in reversed(reply) if m.role == "assistant" and m.text), None)
    calls = tuple(_tool_call(s) for s in spans if s.kind == SpanKind.TOOL)
    starts = [s.start_ns for s in spans if s.start_ns is not None]
    ends = [s.end_ns for s in spans if s.end_ns is not None]
    return Turn(trace_id=trace_id, root_span_id=(agent or root).span_id, prompt=prompt, response=response,
                messages=(*seen_in, *reply), tool_calls=calls,
                start_ns=root.start_ns if root.start_ns is not None else (min(starts) if starts else None),
                end_ns=root.end_ns if root.end_ns is not None else (max(ends) if ends else None))


def _messages(text: str | None, role: str) -> tuple[ChatMessage, ...]:
    """A body as chat messages: our JSON list of messages, a single message object, or (anything else) its text
    as one message of ``role``."""
    if not text:
        return ()
    try:
        value = json.loads(text)
    except ValueError:
        return (ChatMessage(role=role, content=text),)  # type: ignore[arg-type]
    items = value if isinstance(value, list) else [value]
    try:
        return tuple(ChatMessage.from_dict(item) for item in items)
    except (ValueError, TypeError, AttributeError, KeyError):
        return (ChatMessage(role=role, content=text),)  # type: ignore[arg-type]


def _tool_call(span: Span) -> ToolCallRecord:
    arguments: Any = None
    if span.tool_args is not None:
        try:
            arguments = json.loads(span.tool_args)
        except ValueError:
            arguments = span.tool_args
    return ToolCallRecord(name=span.tool_name or span.name, span_id=span.span_id, trace_id=span.trace_id,
                          call_id=span.tool_call_id, arguments=arguments, result=span.output,
                          status=span.status, start_ns=span.start_ns)


def _offered(spans: list[Span]) -> tuple[str, ...]:
    names: dict[str, None] = {}
    for span in spans:
        if not span.available_tools:
            continue
        try:
            listed = json.loads(span.available_tools)
        except ValueError:
            continue
        for item in listed if isinstance(listed, list) else ():
            name = item.get("name") if isinstance(item, dict) else item
            if isinstance(name, str) and name:
                names.setdefault(name, None)
    return tuple(names)
