"""A recorded session as a judge reads it: plain-text transcripts of the whole session, of a turn up to its reply,
of a turn up to one tool call, and the tool call and tool list themselves.

A transcript is built from the turns' structured fields (prompt, tool calls with their results, reply), one line
group per event, labelled ``User:``, ``Action:`` (a tool call: name and JSON arguments), ``Tool:`` (its result)
and ``Assistant:``, with ``[Turn n]`` headers. These texts are the values of the service's placeholders
(``context``, ``assistant_turn``, ``available_tools``, ``tool_turn``); the prompt module fences them as data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from eval_pipeline.traces.ground_truth import GroundTruth
from eval_pipeline.traces.sessions import Session, ToolCallRecord, Turn

NO_REPLY = "(the agent gave no reply in this turn)"


def arguments_text(arguments: Any) -> str:
    """Tool arguments as compact JSON (a raw string as it is; None as ``{}``)."""
    if arguments is None:
        return "{}"
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, ensure_ascii=False, sort_keys=True)


def call_lines(call: ToolCallRecord, *, with_result: bool = True) -> list[str]:
    lines = [f"Action: {call.name}({arguments_text(call.arguments)})"]
    if with_result:
        status = "" if call.status in ("UNSET", "OK") else f" [status {call.status}]"
        lines.append(f"Tool ({call.name}){status}: {call.result if call.result is not None else '(no result)'}")
    return lines


def turn_lines(turn: Turn, number: int, *, calls: int | None = None, reply: bool = True) -> list[str]:
    """One turn: its prompt, its first ``calls`` tool calls (all when None) with results, and its reply."""
    lines = [f"[Turn {number}]", f"User: {turn.prompt if turn.prompt is not None else '(no prompt recorded)'}"]
    for call in turn.tool_calls[:calls]:
        lines += call_lines(call)
    if reply:
        lines.append(f"Assistant: {turn.response if turn.response is not None else NO_REPLY}")
    return lines


def _joined(groups: Iterable[list[str]]) -> str:
    return "\n\n".join("\n".join(group) for group in groups)


def session_context(session: Session) -> str:
    """The whole session: every turn with its tool calls, results and reply."""
    return _joined(turn_lines(turn, i + 1) for i, turn in enumerate(session.turns)) or "(no turns recorded)"


def trace_context(session: Session, index: int) -> str:
    """The turns before ``index`` in full, then turn ``index``'s prompt and tool calls (its reply left out)."""
    turns = session.turns
    return _joined([*(turn_lines(t, i + 1) for i, t in enumerate(turns[:index])),
                    turn_lines(turns[index], index + 1, reply=False)])


def assistant_turn(turn: Turn) -> str:
    return turn.response if turn.response is not None else NO_REPLY


def tool_call_context(session: Session, turn_index: int, call_index: int) -> str:
    """The turns before ``turn_index`` in full, then that turn's prompt and its calls before ``call_index``."""
    turns = session.turns
    return _joined([*(turn_lines(t, i + 1) for i, t in enumerate(turns[:turn_index])),
                    turn_lines(turns[turn_index], turn_index + 1, calls=call_index, reply=False)])


def tool_turn(call: ToolCallRecord) -> str:
    """The call under evaluation: its name and arguments (not its result)."""
    return f"Tool: {call.name}\nArguments: {arguments_text(call.arguments)}"


def available_tools(session: Session) -> str:
    """The tools the agent was offered, one per line (the tools it called when no offer was recorded)."""
    if session.available_tools:
        return "\n".join(f"- {name}" for name in session.available_tools)
    called = list(dict.fromkeys(session.tool_names))
    if called:
        return "(the offered tools were not recorded; tools the agent called:)\n" + "\n".join(
            f"- {name}" for name in called)
    return "(no tools recorded)"


def assertions_text(truth: GroundTruth) -> str:
    return "\n".join(f"{i + 1}. {text}" for i, text in enumerate(truth.assertions))


def trajectory_text(truth: GroundTruth) -> str:
    return ", ".join(truth.expected_tool_names or ()) or "(no tool calls expected)"
