"""Production tables that hold conversations (rollouts, recorded traces) as the report's item rows.

``CONVERSATION_VIEWS`` maps a production stage to a view whose ``rows(produced)`` gives one row per item:
``sample_id``, ``sample_index``, ``output`` (the final reply), ``error``, ``info`` (a short line) and
``conversation``: a list of chat messages ``{"role", "content", "tool_calls": [{"name", "arguments"}],
"name", "is_error"}`` (user / assistant / tool), which the page draws as a conversation with its tool calls.
A view with ``by_session`` groups the production table by session (a traces suite's item is a session).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd


def messages_text(text: str) -> str:
    """A JSON list of chat messages as ``role: content`` lines (the text itself when it is not such a list)."""
    messages = _json_list(text)
    if not messages:
        return text
    return "\n".join(f"{m.get('role', '?')}: {_content(m)}" for m in messages if isinstance(m, dict))


def _json_list(text: Any) -> list[Any]:
    if not isinstance(text, str) or not text.startswith("["):
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str) and content:
        return content
    parts = message.get("parts") or (content if isinstance(content, list) else [])
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


def chat_message(message: dict[str, Any]) -> dict[str, Any]:
    """One message in the page's shape (ours or OpenAI's tool calls)."""
    shaped: dict[str, Any] = {"role": str(message.get("role", "?")), "content": _content(message)}
    calls = []
    for call in message.get("tool_calls") or []:
        inner = call.get("function", call) if isinstance(call, dict) else {}
        calls.append({"name": _text(inner.get("name")), "arguments": _text(inner.get("arguments"))})
    if calls:
        shaped["tool_calls"] = calls
    for key in ("name", "tool_call_id", "is_error"):
        if message.get(key) is not None:
            shaped[key] = message[key]
    return shaped


def _text(value: Any) -> str | None:
    """Text, or None for a missing value (NaN included)."""
    return None if _missing(value) else str(value)


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str | list | dict) and pd.isna(value))


@dataclass(frozen=True)
class RolloutView:
    """The ``rollouts`` table: one item per task × group member, its whole conversation (``messages``)."""

    by_session: bool = False

    def rows(self, produced: pd.DataFrame) -> pd.DataFrame:
        records = []
        for row in produced.to_dict("records"):
            conversation = [chat_message(m) for m in _json_list(row.get("messages")) if isinstance(m, dict)]
            if not conversation:
                conversation = _turn_messages(row.get("turns"))
            replies = [m["content"] for m in conversation if m["role"] == "assistant" and m["content"]]
            error = None if _missing(row.get("error")) else (
                f"{row['error']} ({row['error_source']})" if not _missing(row.get("error_source")) else row["error"])
            bits = [f"reward {row['reward']:g}" if not _missing(row.get("reward")) else "no reward",
                    ("success" if row.get("success") else "no success") if not _missing(row.get("success")) else None,
                    None if _missing(row.get("termination")) else f"ended: {row['termination']}",
                    None if _missing(row.get("num_turns")) else f"{int(row['num_turns'])} turns"]
            records.append({"sample_id": row["sample_id"], "sample_index": int(row.get("sample_index") or 0),
                            "output": replies[-1] if replies else None, "error": error,
                            "info": " · ".join(b for b in bits if b), "conversation": conversation})
        return pd.DataFrame(records, columns=["sample_id", "sample_index", "output", "error", "info", "conversation"])


def _turn_messages(turns: Any) -> list[dict[str, Any]]:
    """The conversation from the ``turns`` column (``tracking/rollout_traces.py`` describes its shape)."""
    messages: list[dict[str, Any]] = []
    for turn in _json_list(turns):
        if not isinstance(turn, dict):
            continue
        reset = turn.get("reset")
        if isinstance(reset, dict):
            messages += [chat_message(m) for m in reset.get("messages") or [] if isinstance(m, dict)]
        agent = turn.get("agent")
        if isinstance(agent, dict) and isinstance(agent.get("message"), dict):
            messages.append(chat_message(agent["message"]))
        for key in ("step", "final_step"):
            step = turn.get(key)
            if isinstance(step, dict):
                messages += [chat_message(m) for m in step.get("observations") or [] if isinstance(m, dict)]
        messages += [chat_message(m) for m in turn.get("observations") or [] if isinstance(m, dict)]
        user = turn.get("user")
        if isinstance(user, dict) and isinstance(user.get("message"), dict):
            messages.append(chat_message(user["message"]))
    return messages


@dataclass(frozen=True)
class TracesView:
    """The ``traces`` table (spans): one item per session, its traces (turns) in time order as a conversation:
    the user's new message, each tool call with its result, the agent's reply."""

    by_session: bool = True

    def rows(self, produced: pd.DataFrame) -> pd.DataFrame:
        records = []
        spans = produced.sort_values(["session_id", "start_ns"], kind="stable", na_position="last")
        for session, rows in spans.groupby("session_id", sort=False):
            conversation: list[dict[str, Any]] = []
            errors = []
            traces = list(dict.fromkeys(rows["trace_id"].tolist()))
            tool_calls = 0
            for trace in traces:
                trace_rows = rows[rows["trace_id"] == trace].to_dict("records")
                root = next((r for r in trace_rows if r.get("kind") == "agent" and _missing(r.get("parent_id"))),
                            next((r for r in trace_rows if r.get("kind") == "agent"), None))
                if root is not None:
                    asked = [chat_message(m) for m in _json_list(root.get("input")) if isinstance(m, dict)]
                    users = [m for m in asked if m["role"] == "user"]
                    conversation += users[-1:]
                for span in trace_rows:
                    if span.get("kind") != "tool":
                        continue
                    tool_calls += 1
                    conversation.append({"role": "assistant", "content": "",
                                         "tool_calls": [{"name": _text(span.get("tool_name")),
                                                         "arguments": _text(span.get("tool_args"))}]})
                    conversation.append({"role": "tool", "name": _text(span.get("tool_name")),
                                         "content": None if _missing(span.get("output")) else str(span["output"]),
                                         **({"is_error": True} if span.get("status") == "ERROR" else {})})
                if root is not None:
                    conversation += [m for m in (chat_message(x) for x in _json_list(root.get("output"))
                                                 if isinstance(x, dict)) if m["role"] == "assistant"]
                for span in trace_rows:
                    if not _missing(span.get("error")):
                        errors.append(str(span["error"]))
                    elif span.get("status") == "ERROR" and span.get("kind") != "tool":
                        errors.append(str(span.get("status_message") or f"span {span.get('name')} failed"))
            replies = [m["content"] for m in conversation if m["role"] == "assistant" and m["content"]]
            records.append({"sample_id": session, "sample_index": 0, "output": replies[-1] if replies else None,
                            "error": "; ".join(errors) or None,
                            "info": f"{len(traces)} traces · {tool_calls} tool calls · {len(rows)} spans",
                            "conversation": conversation})
        return pd.DataFrame(records, columns=["sample_id", "sample_index", "output", "error", "info", "conversation"])


CONVERSATION_VIEWS: dict[str, RolloutView | TracesView] = {"rollouts": RolloutView(), "traces": TracesView()}
"""Production stage → its view; a stage not named here is a table of answers (``generations``)."""
