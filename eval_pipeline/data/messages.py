"""Typed chat messages: roles, text and content parts, tool calls and tool results, and the tools a model may call.

One shape for every backend and every stage. ``to_dict`` writes the OpenAI-style JSON that the ``samples`` table's
``input`` column, the rollouts table and cache keys hold; a plain message writes exactly ``{"role", "content"}``, so
keys of requests without tools are what they were before messages were typed. ``from_dict`` reads that shape back
(and the OpenAI wire shape, with ``function`` objects and ``type`` fields).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class ContentPart:
    """One part of a message's content: text, or an image as base64 data with its media type."""

    type: Literal["text", "image"] = "text"
    text: str = ""
    media_type: str | None = None
    data: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.type == "text":
            return {"type": "text", "text": self.text}
        return {"type": "image", "media_type": self.media_type, "data": self.data}


@dataclass(frozen=True)
class ToolCall:
    """A call the model asked for: its id (answered by a tool message), the tool's name, and the arguments as the
    JSON text the model wrote (which may not parse: that is the tool's error to report, not ours to repair)."""

    id: str
    name: str
    arguments: str = "{}"

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as an object; ValueError when they are not a JSON object."""
        value = json.loads(self.arguments or "{}")
        if not isinstance(value, dict):
            raise ValueError(f"tool {self.name!r} arguments are not a JSON object: {self.arguments!r}")
        return value

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass(frozen=True)
class ToolSpec:
    """A tool offered to the model: a name, what it does, and its parameters as a JSON schema object."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": dict(self.parameters)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolSpec:
        """Ours, or OpenAI's ``{"type": "function", "function": {...}}``."""
        inner = data.get("function", data) if data.get("type") == "function" else data
        return cls(name=inner["name"], description=inner.get("description", ""),
                   parameters=inner.get("parameters", {"type": "object", "properties": {}}))


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a conversation. ``content`` is its text; ``parts`` its content parts when there is more than
    text; an assistant message may carry ``tool_calls``; a ``tool`` message answers the call ``tool_call_id``
    (``name``: the tool's) and ``is_error`` marks a tool that failed."""

    role: Role
    content: str = ""
    parts: tuple[ContentPart, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    is_error: bool = False

    @property
    def text(self) -> str:
        """The message's text: ``content``, else its text parts joined."""
        return self.content or "".join(part.text for part in self.parts if part.type == "text")

    def to_dict(self) -> dict[str, Any]:
        """Plain messages give exactly ``{"role", "content"}``; other keys appear only when set."""
        data: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.parts:
            data["parts"] = [part.to_dict() for part in self.parts]
        if self.tool_calls:
            data["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        if self.tool_call_id is not None:
            data["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            data["name"] = self.name
        if self.is_error:
            data["is_error"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChatMessage:
        """Read our shape or OpenAI's (content as a list of parts, ``function`` objects in tool calls)."""
        role = data.get("role")
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        content = data.get("content")
        parts: tuple[ContentPart, ...] = ()
        if isinstance(content, list):
            parts = tuple(_part(item) for item in content)
            content = "" if any(p.type != "text" for p in parts) else "".join(p.text for p in parts)
            parts = parts if any(p.type != "text" for p in parts) else ()
        elif content is not None and not isinstance(content, str):
            raise ValueError(f"message content must be text or a list of parts, not {type(content).__name__}")
        if "parts" in data:
            parts = tuple(_part(item) for item in data["parts"])
        return cls(role=role, content=content or "", parts=parts,
                   tool_calls=tuple(_tool_call(item) for item in data.get("tool_calls") or ()),
                   tool_call_id=data.get("tool_call_id"), name=data.get("name"),
                   is_error=bool(data.get("is_error", False)))


def _part(item: Any) -> ContentPart:
    if isinstance(item, str):
        return ContentPart(text=item)
    if item.get("type", "text") == "text":
        return ContentPart(text=item.get("text", ""))
    return ContentPart(type="image", media_type=item.get("media_type"), data=item.get("data"))


def _tool_call(item: Mapping[str, Any]) -> ToolCall:
    function = item.get("function", item)
    arguments = function.get("arguments", "{}")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return ToolCall(id=str(item.get("id", "")), name=function["name"], arguments=arguments)


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def system(text: str) -> ChatMessage:
    return ChatMessage(role="system", content=text)


def assistant(text: str, tool_calls: Iterable[ToolCall] = ()) -> ChatMessage:
    return ChatMessage(role="assistant", content=text, tool_calls=tuple(tool_calls))


def tool_result(call: ToolCall, text: str, *, is_error: bool = False) -> ChatMessage:
    return ChatMessage(role="tool", content=text, tool_call_id=call.id, name=call.name, is_error=is_error)


def messages_to_json(messages: Sequence[ChatMessage]) -> str:
    return json.dumps([m.to_dict() for m in messages], ensure_ascii=False)


def messages_from_json(text: str) -> tuple[ChatMessage, ...]:
    return tuple(ChatMessage.from_dict(item) for item in json.loads(text))


def final_reply(messages_json: str | None) -> str | None:
    """The text of the last assistant message with text in a conversation's JSON (None when there is none)."""
    for message in reversed(messages_from_json(messages_json or "[]")):
        if message.role == "assistant" and message.text:
            return message.text
    return None


def leading_messages(messages: list[Any]) -> list[Mapping[str, Any]]:
    """The messages (as dicts) before the first assistant message: the conversation the agent first saw."""
    leading = []
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") == "assistant":
            break
        leading.append(message)
    return leading
