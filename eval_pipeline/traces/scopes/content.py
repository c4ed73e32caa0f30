"""Message payloads as instrumentation libraries record them, decoded to typed chat messages.

One decoder for every shape met in span events, event-record bodies and message attributes:
- Strands/Bedrock content blocks ``[{"text"}, {"toolUse": {toolUseId, name, input}}, {"toolResult": {...}}]``,
  often JSON-encoded inside a string (``{"content": "[{\\"text\\": \\"Book me a flight\\"}]"}``);
- OTel GenAI messages ``{"role", "parts": [{"type": "text"|"tool_call"|"tool_call_response", ...}]}``;
- OpenAI chat messages (``content``, ``tool_calls`` with ``function``) and Responses items (``function_call``,
  ``function_call_output``, ``input_text``/``output_text`` parts);
- LangChain messages (``{"lc": 1, "type": "constructor", "id": [..., "AIMessage"], "kwargs": {...}}``, ``["user",
  "text"]`` pairs) and LangChain run payloads (``{"inputs": {"messages": [...]}}``, ``{"outputs": ...}``);
- GenAI event attributes (``{"content": ...}``, ``gen_ai.choice``'s ``{"message": ..., "finish_reason"}``).

A value that is none of these is text. ``BodyShapeError`` says a value is not a payload at all (a number, a list
of numbers), which the caller records as the span's error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from eval_pipeline.data.messages import ROLES, ChatMessage, ToolCall


class BodyShapeError(ValueError):
    """A payload that is not a message, a list of messages, content blocks or text."""


_ROLE_NAMES = {"human": "user", "ai": "assistant", "function": "tool", "developer": "system", "model": "assistant",
               "humanmessage": "user", "aimessage": "assistant", "systemmessage": "system",
               "toolmessage": "tool", "functionmessage": "tool", "humanmessagechunk": "user",
               "aimessagechunk": "assistant"}
_MESSAGE_KEYS = ("content", "parts", "tool_calls", "message")
_RESPONSES_ITEMS = ("message", "function_call", "function_call_output")


def role_name(value: Any, default: str) -> str:
    """Our role for a library's role name (``human`` → user, ``ai`` → assistant, ...); ``default`` when unknown."""
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in ROLES:
            return lowered
        return _ROLE_NAMES.get(lowered, default)
    return default


def parse_json(value: Any) -> Any:
    """``value`` parsed when it is JSON text of an object or a list, else ``value`` unchanged."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "[") and text[-1:] in ("}", "]"):
            try:
                return json.loads(text)
            except ValueError:
                return value
    return value


def json_text(value: Any) -> str:
    """Arguments or results as JSON text: text that is JSON stays as written, other values are dumped."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


TEXT_MEMO_CHARS = 16_384
"""Text payloads up to this long are decoded once per (text, role) (``clear_text_memo`` forgets them): a session's
later model calls repeat the JSON-encoded content blocks of its earlier messages."""
TEXT_MEMO_ENTRIES = 8192
TEXT_MEMO_TOTAL_CHARS = 32 * 2**20
_text_memo: dict[tuple[str, str], tuple[ChatMessage, ...]] = {}
_text_memo_chars = [0]


def clear_text_memo() -> None:
    _text_memo.clear()
    _text_memo_chars[0] = 0


def decode_messages(value: Any, role: str) -> list[ChatMessage]:
    """The chat messages in a payload (``role``: the role of text that does not name one)."""
    if type(value) is str and len(value) <= TEXT_MEMO_CHARS:
        key = (value, role)
        found = _text_memo.get(key)
        if found is None:
            found = tuple(_decode_messages(value, role))
            if len(_text_memo) >= TEXT_MEMO_ENTRIES or _text_memo_chars[0] >= TEXT_MEMO_TOTAL_CHARS:
                clear_text_memo()
            _text_memo[key] = found
            _text_memo_chars[0] += len(value)
        return list(found)
    return _decode_messages(value, role)


def _decode_messages(value: Any, role: str) -> list[ChatMessage]:
    if value is None:
        return []
    parsed = parse_json(value)
    if isinstance(parsed, str):
        return [ChatMessage(role=role_name(role, "user"), content=parsed)] if parsed else []
    if isinstance(parsed, (int, float, bool)):
        raise BodyShapeError(f"a {type(parsed).__name__} is not a message")
    if isinstance(parsed, list):
        if parsed and all(isinstance(item, list) and not _is_message(item) for item in parsed):
            parsed = [entry for item in parsed for entry in item]  # LangChain's batches: [[message, ...]]
        if parsed and all(_is_message(item) for item in parsed):
            return [message for item in parsed for message in _from_item(item, role)]
        if all(isinstance(item, (dict, str)) for item in parsed):
            return _from_blocks(role, parsed)
        raise BodyShapeError(f"a list of {', '.join(sorted({type(i).__name__ for i in parsed}))} is not messages")
    messages = _from_dict(parsed, role)
    if messages is None:
        return [ChatMessage(role=role_name(role, "user"), content=value if isinstance(value, str)
                            else json.dumps(parsed, ensure_ascii=False))]
    return messages


def _from_item(item: Any, role: str) -> list[ChatMessage]:
    """One entry of a list of messages: a message object, or a LangChain ``(role, text)`` pair."""
    if isinstance(item, list):
        return decode_messages(item[1], role_name(item[0], role))
    return decode_messages(item, role)


def text_of(value: Any) -> str:
    """The text in a content value (blocks and parts joined, tool results' text included)."""
    parsed = parse_json(value)
    if parsed is None:
        return ""
    if isinstance(parsed, str):
        return parsed
    if isinstance(parsed, (int, float, bool)):
        return json.dumps(parsed)
    try:
        messages = decode_messages(parsed, "tool")
    except BodyShapeError:
        return json.dumps(parsed, ensure_ascii=False)
    texts = [m.text for m in messages if m.text]
    return "\n".join(texts) if texts else json.dumps(parsed, ensure_ascii=False)


def is_container(value: Any) -> bool:
    """A payload that wraps whole conversations (``input.value``, ``traceloop.entity.input``, a list of messages)
    rather than being one message."""
    parsed = parse_json(value)
    if isinstance(parsed, dict) and "role" in parsed:
        parsed = parse_json(parsed.get("content"))
    if isinstance(parsed, dict):
        return any(key in parsed for key in ("messages", "inputs", "outputs"))
    return isinstance(parsed, list) and len(parsed) > 0 and all(_is_message(item) for item in parsed)


def tool_calls_in(messages: list[ChatMessage]) -> list[ToolCall]:
    return [call for message in messages for call in message.tool_calls]


def _is_message(item: Any) -> bool:
    if isinstance(item, list):
        return len(item) == 2 and isinstance(item[0], str) and role_name(item[0], "") != ""
    if not isinstance(item, dict):
        return False
    if _is_langchain(item):
        return True
    if item.get("type") in _RESPONSES_ITEMS and ("role" in item or "call_id" in item):
        return True
    return "role" in item and any(key in item for key in _MESSAGE_KEYS)


def _is_langchain(item: Mapping[str, Any]) -> bool:
    if item.get("lc") == 1 and isinstance(item.get("kwargs"), dict):
        return True
    return item.get("type") in ("human", "ai", "system", "tool") and ("content" in item or "data" in item)


def _from_dict(item: Mapping[str, Any], role: str) -> list[ChatMessage] | None:
    """Messages in a dict, or None when the dict is no shape we know (then it is kept as text)."""
    if isinstance(item, list):
        return decode_messages(item, role)
    if _is_langchain(item):
        return _from_langchain(item, role)
    kind = item.get("type")
    if kind == "function_call":
        return [ChatMessage(role="assistant", tool_calls=(_call(item.get("call_id") or item.get("id"),
                                                                  item.get("name"), item.get("arguments")),))]
    if kind == "function_call_output":
        return [ChatMessage(role="tool", content=text_of(item.get("output")),
                            tool_call_id=_id(item.get("call_id")))]
    if "role" in item and any(key in item for key in _MESSAGE_KEYS):
        return _from_message(item, role_name(item["role"], role))
    for key in ("messages", "inputs", "outputs", "input", "output", "content", "message", "text"):
        if key in item and item[key] is not None:
            inner = item[key]
            own_role = role_name(item.get("role"), role)
            if key in ("content", "message") and own_role == "tool" and "id" in item:
                return [ChatMessage(role="tool", content=text_of(inner), tool_call_id=_id(item.get("id")))]
            if isinstance(inner, dict) and key in ("inputs", "outputs") and "messages" not in inner:
                values = [v for v in inner.values() if isinstance(v, str)]
                if len(values) == 1:
                    return [ChatMessage(role=own_role, content=values[0])]
            return decode_messages(inner, own_role)
    return None


def _from_message(item: Mapping[str, Any], role: str) -> list[ChatMessage]:
    """One role-tagged message: OpenAI chat, OTel GenAI (``parts``), Strands (content blocks), ADOT body."""
    content = item.get("parts") if "parts" in item else item.get("content", item.get("message"))
    messages = decode_messages(content, role) if content is not None else []
    calls = tuple(_call_from(raw) for raw in _list(item.get("tool_calls")))
    call_id = item.get("tool_call_id") or (item.get("id") if role == "tool" else None)
    if role == "tool" and call_id is not None and not any(m.tool_call_id for m in messages):
        text = "\n".join(m.text for m in messages if m.text)
        return [ChatMessage(role="tool", content=text, tool_call_id=_id(call_id), name=item.get("name"))]
    if calls:
        text = "\n".join(m.text for m in messages if m.text and m.role == role)
        merged = ChatMessage(role=role, content=text, tool_calls=tuple(tool_calls_in(messages)) + calls)
        return [merged] + [m for m in messages if m.role == "tool"]
    return messages or [ChatMessage(role=role)]


def _from_blocks(role: str, blocks: list[Any]) -> list[ChatMessage]:
    """Content blocks of one message: text joins, tool calls attach to it, tool results become tool messages."""
    role = role_name(role, "user")
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[ChatMessage] = []
    for block in blocks:
        if isinstance(block, str):
            texts.append(block)
            continue
        kind = block.get("type")
        if "toolUse" in block:
            use = block["toolUse"] or {}
            calls.append(_call(use.get("toolUseId"), use.get("name"), use.get("input")))
        elif "toolResult" in block:
            result = block["toolResult"] or {}
            results.append(ChatMessage(role="tool", content=text_of(result.get("content")),
                                       tool_call_id=_id(result.get("toolUseId")),
                                       is_error=result.get("status") == "error"))
        elif kind in ("tool_call", "function_call"):
            calls.append(_call(block.get("id") or block.get("call_id"), block.get("name"), block.get("arguments")))
        elif kind in ("tool_call_response", "function_call_output"):
            results.append(ChatMessage(role="tool", content=text_of(block.get("response", block.get("output"))),
                                       tool_call_id=_id(block.get("id") or block.get("call_id"))))
        elif kind in (None, "text", "input_text", "output_text", "refusal"):
            text = block.get("text", block.get("content", block.get("refusal")))
            if isinstance(text, str):
                texts.append(text)
            elif "json" in block:
                texts.append(json.dumps(block["json"], ensure_ascii=False))
    messages: list[ChatMessage] = []
    if texts or calls:
        own = "assistant" if calls and role == "user" else role
        messages.append(ChatMessage(role=own, content="\n".join(texts), tool_calls=tuple(calls)))
    return messages + results


def _from_langchain(item: Mapping[str, Any], role: str) -> list[ChatMessage]:
    if item.get("lc") == 1:
        data = item.get("kwargs") or {}
        class_name = str((item.get("id") or [""])[-1])
        own = role_name(data.get("type") or class_name.lower(), role)
    else:
        data = item.get("data") if isinstance(item.get("data"), dict) else item
        own = role_name(item.get("type"), role)
    content = data.get("content")
    text = content if isinstance(content, str) else text_of(content) if content else ""
    if own == "tool":
        return [ChatMessage(role="tool", content=text, tool_call_id=_id(data.get("tool_call_id")),
                            name=data.get("name"))]
    calls = [_call(c.get("id"), c.get("name"), c.get("args", c.get("arguments")))
             for c in _list(data.get("tool_calls"))]
    calls += [_call_from(c) for c in _list((data.get("additional_kwargs") or {}).get("tool_calls")) if not calls]
    return [ChatMessage(role=own, content=text, tool_calls=tuple(calls))]


def _call_from(raw: Any) -> ToolCall:
    if not isinstance(raw, dict):
        raise BodyShapeError(f"a tool call is an object, not {type(raw).__name__}")
    function = raw.get("function") if isinstance(raw.get("function"), dict) else raw
    return _call(raw.get("id") or raw.get("call_id"), function.get("name"),
                 function.get("arguments", function.get("args", function.get("input"))))


def _call(call_id: Any, name: Any, arguments: Any) -> ToolCall:
    if not isinstance(name, str) or not name:
        raise BodyShapeError("a tool call without a tool name")
    return ToolCall(id=_id(call_id) or "", name=name, arguments=json_text(arguments if arguments is not None else {}))


def _id(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _list(value: Any) -> list[Any]:
    value = parse_json(value)
    return value if isinstance(value, list) else []
