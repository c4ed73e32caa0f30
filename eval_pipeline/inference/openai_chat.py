"""Reading and writing the OpenAI chat-completions shape, shared by the ``openai``, ``vllm`` and ``sagemaker``
(``request_format: messages``) backends: messages, the ``tools`` offered, and the ``tool_calls`` a reply makes."""

from __future__ import annotations

import json
from typing import Any

from eval_pipeline.data.messages import ChatMessage, ToolCall, ToolSpec
from eval_pipeline.inference.base import Completion, GenerationParams, GenerationRequest

ERROR_PREFIX = "Error: "
"""Put before a failed tool's result text: the OpenAI tool message has no error flag."""


def chat_request(request: GenerationRequest, params: GenerationParams, model: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [wire_message(m) for m in request.messages], "max_tokens": params.max_tokens,
                            "temperature": params.temperature, "top_p": params.top_p, "seed": params.seed}
    if params.stop:
        body["stop"] = list(params.stop)
    if request.tools:
        body["tools"] = [wire_tool(tool) for tool in request.tools]
    if model:
        body["model"] = model
    return body


def wire_tool(tool: ToolSpec) -> dict[str, Any]:
    return {"type": "function", "function": {"name": tool.name, "description": tool.description,
                                             "parameters": dict(tool.parameters)}}


def wire_message(message: ChatMessage) -> dict[str, Any]:
    """One message as OpenAI reads it; a plain message is exactly ``{"role", "content"}``."""
    if message.role == "tool":
        text = f"{ERROR_PREFIX}{message.text}" if message.is_error else message.text
        return {"role": "tool", "tool_call_id": message.tool_call_id or "", "content": text}
    data: dict[str, Any] = {"role": message.role, "content": _content(message)}
    if message.tool_calls:
        data["content"] = data["content"] or None
        data["tool_calls"] = [{"id": call.id, "type": "function",
                               "function": {"name": call.name, "arguments": call.arguments}}
                              for call in message.tool_calls]
    return data


def _content(message: ChatMessage) -> Any:
    if not message.parts:
        return message.content
    return [{"type": "text", "text": part.text} if part.type == "text"
            else {"type": "image_url", "image_url": {"url": f"data:{part.media_type};base64,{part.data}"}}
            for part in message.parts]


def parse_chat_completion(body: Any) -> Completion | None:
    """A chat completion as a completion (its tool calls included); None when the body does not have that shape."""
    try:
        choice = body["choices"][0]
        message = choice["message"]
        text = message.get("content")
        calls = tuple(_tool_call(item) for item in message.get("tool_calls") or ())
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    if text is None and calls:
        text = ""
    if not isinstance(text, str):
        return None
    usage = body.get("usage") or {}
    return Completion(output=text, finish_reason=choice.get("finish_reason"),
                      tokens_in=usage.get("prompt_tokens"), tokens_out=usage.get("completion_tokens"),
                      tool_calls=calls)


def _tool_call(item: Any) -> ToolCall:
    function = item["function"]
    arguments = function.get("arguments", "{}")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return ToolCall(id=str(item.get("id") or ""), name=function["name"], arguments=arguments)
