"""Tools for models that read and write plain text: the chat-template message shape, and the text protocol.

A tokenizer whose chat template mentions ``tools`` gets the conversation in Hugging Face's tool-calling shape
(assistant ``tool_calls``, ``tool`` messages) and the tools through ``apply_chat_template(tools=...)``. Any other
model gets the **text protocol**: the tools are described in the system prompt, a tool call is written as

    <tool_call>{"name": "<tool>", "arguments": {...}}</tool_call>

and a tool result comes back in a user turn as ``<tool_result id="..." name="...">text</tool_result>`` (with
``error="true"`` when the tool failed). Either way the answer's ``<tool_call>`` blocks are parsed into ``ToolCall``s
(what Qwen/Hermes-style templates ask the model to write too); a block that is not a JSON object with a ``name`` stays
in the text and no call is made up from it. Everything here is pure.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from eval_pipeline.data.messages import ChatMessage, ToolCall, ToolSpec, messages_to_json

_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)

PROTOCOL = (
    "You can call these tools (one JSON description a line):\n{tools}\n"
    "To call a tool, write one block per call, exactly:\n"
    '<tool_call>{{"name": "<tool name>", "arguments": {{<the arguments as a JSON object>}}}}</tool_call>\n'
    'Each result comes back as <tool_result id="..." name="...">result</tool_result>. '
    "Answer without a block when you need no tool."
)


def template_supports_tools(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template reads ``tools`` (then it also renders tool calls and results)."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = " ".join(str(value) for value in template.values())
    return bool(template) and "tools" in str(template)


def native_messages(messages: Sequence[ChatMessage | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The conversation in Hugging Face's chat-template shape (tool calls with their arguments as objects)."""
    out: list[dict[str, Any]] = []
    for message in typed(messages):
        data: dict[str, Any] = {"role": message.role, "content": message.text}
        if message.tool_calls:
            data["tool_calls"] = [{"id": call.id, "type": "function",
                                   "function": {"name": call.name, "arguments": _arguments(call)}}
                                  for call in message.tool_calls]
        if message.role == "tool":
            data.update(tool_call_id=message.tool_call_id or "", name=message.name or "")
        out.append(data)
    return out


def native_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": tool.to_dict()} for tool in tools]


def protocol_messages(messages: Sequence[ChatMessage | Mapping[str, Any]],
                      tools: Sequence[ToolSpec]) -> list[dict[str, str]]:
    """The conversation as ``{"role", "content"}`` messages of system/user/assistant only: the protocol's tool
    description joins the system prompt (a system message is added when there is none), assistant tool calls are
    written as ``<tool_call>`` blocks, and a run of tool results becomes one user turn. Without tools and tool
    messages this is the plain conversation, unchanged."""
    out: list[dict[str, str]] = []
    for message in typed(messages):
        if message.role == "tool":
            block = render_result(message)
            if out and out[-1]["role"] == "user" and out[-1]["content"].endswith("</tool_result>"):
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block})
            continue
        text = message.text
        if message.tool_calls:
            text = "\n".join([text, *(render_call(call) for call in message.tool_calls)]).lstrip("\n")
        out.append({"role": message.role, "content": text})
    if tools:
        described = tools_prompt(tools)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{described}"}
        else:
            out.insert(0, {"role": "system", "content": described})
    return out


def tools_prompt(tools: Sequence[ToolSpec]) -> str:
    return PROTOCOL.format(tools="\n".join(json.dumps(tool.to_dict(), ensure_ascii=False) for tool in tools))


def render_call(call: ToolCall) -> str:
    return "<tool_call>" + json.dumps({"name": call.name, "arguments": _arguments(call)}, ensure_ascii=False) + \
        "</tool_call>"


def render_result(message: ChatMessage) -> str:
    error = ' error="true"' if message.is_error else ""
    return f'<tool_result id="{message.tool_call_id or ""}" name="{message.name or ""}"{error}>' \
        f"{message.text}</tool_result>"


def parse_tool_calls(text: str, call_seed: str) -> tuple[str, tuple[ToolCall, ...]]:
    """The answer without its valid ``<tool_call>`` blocks (stripped), and the calls they make, in order.

    A call's id is ``call_`` + a hash of ``call_seed`` (the request: see ``request_seed``) and the call's position,
    so a re-run gives the same ids. A block that is not a JSON object with a string ``name`` (and object or string
    ``arguments``) is left in the text and makes no call."""
    calls: list[ToolCall] = []
    kept: list[str] = []
    last = 0
    for match in _CALL.finditer(text):
        call = _read_call(match.group(1), call_seed, len(calls))
        if call is None:
            continue
        calls.append(call)
        kept.append(text[last:match.start()])
        last = match.end()
    if not calls:
        return text, ()
    kept.append(text[last:])
    return "".join(kept).strip(), tuple(calls)


def request_seed(sample_id: str, sample_index: int, messages: Sequence[ChatMessage]) -> str:
    """What a request's tool-call ids derive from: its sample, its index and its whole conversation."""
    return hashlib.sha256(f"{sample_id}\0{sample_index}\0{messages_to_json(messages)}".encode()).hexdigest()


def _read_call(body: str, call_seed: str, position: int) -> ToolCall | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"]:
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, dict):
        arguments = json.dumps(arguments, ensure_ascii=False)
    elif not isinstance(arguments, str):
        return None
    digest = hashlib.sha256(f"{call_seed}:{position}".encode()).hexdigest()[:16]
    return ToolCall(id=f"call_{digest}", name=value["name"], arguments=arguments)


def _arguments(call: ToolCall) -> Any:
    """The arguments as an object when they parse as one, else the text as written."""
    try:
        return call.parsed_arguments()
    except ValueError:
        return call.arguments


def typed(messages: Sequence[ChatMessage | Mapping[str, Any]]) -> list[ChatMessage]:
    """Messages as ``ChatMessage`` (dicts in our JSON shape or OpenAI's are read)."""
    return [m if isinstance(m, ChatMessage) else ChatMessage.from_dict(m) for m in messages]


def render_prompt(tokenizer: Any, messages: Sequence[ChatMessage | Mapping[str, Any]],
                  tools: Sequence[ToolSpec] = ()) -> tuple[str, bool]:
    """The prompt text a local model reads, and whether the tokenizer should add its special tokens to it: the
    chat template with the generation prompt (natively with tools when it reads them, else with the text
    protocol), or without a template the messages' texts joined by blank lines."""
    if template_supports_tools(tokenizer):
        text = tokenizer.apply_chat_template(native_messages(messages), tools=native_tools(tools) or None,
                                             tokenize=False, add_generation_prompt=True)
        return text, False
    plain = protocol_messages(messages, tools)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=True), False
    return "\n\n".join(message["content"] for message in plain), True
