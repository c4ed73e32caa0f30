"""Our chat messages (``data.messages``) in OpenAI's chat shape, which MLflow's trace view renders as a chat."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def openai_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """Our message dict in OpenAI's chat shape (``tool_calls[].function``); reads OpenAI's shape too."""
    data: dict[str, Any] = {"role": message.get("role"), "content": message.get("content", "")}
    if message.get("tool_calls"):
        data["tool_calls"] = [{"id": call.get("id"), "type": "function",
                               "function": {"name": call.get("function", call).get("name"),
                                            "arguments": call.get("function", call).get("arguments", "{}")}}
                              for call in message["tool_calls"]]
    for key in ("tool_call_id", "name", "is_error", "parts"):
        if message.get(key) is not None and message.get(key) is not False:
            data[key] = message[key]
    return data
