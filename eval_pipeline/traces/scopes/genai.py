"""The OpenTelemetry GenAI semantic conventions: the default scope reader, and the base the others extend.

Kind from ``gen_ai.operation.name`` (``invoke_agent``/``create_agent`` → agent; ``chat``/``text_completion``/
``generate_content`` → llm; ``execute_tool`` → tool), else from the span name's first word. Messages, first found
per side: event records (ADOT ``body.input/output.messages``, or GenAI events by ``event.name``), span events
(``gen_ai.{system,user,assistant,tool}.message``, ``gen_ai.choice``, ``gen_ai.client.inference.operation.details``),
then attributes (``gen_ai.input.messages``, ``gen_ai.system_instructions``, ``gen_ai.output.messages``, the indexed
``gen_ai.prompt.N.*``/``gen_ai.completion.N.*``, plain ``gen_ai.prompt``/``gen_ai.completion``).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from eval_pipeline.data.messages import ChatMessage
from eval_pipeline.traces.scopes.content import (
    BodyShapeError,
    is_container,
    json_text,
    parse_json,
    text_of,
)
from eval_pipeline.traces.scopes.memo import decoded_payload
from eval_pipeline.traces.scopes.record import Payload, Side, SpanReading, SpanRecord
from eval_pipeline.traces.spans import SpanKind

OPERATION_KINDS: dict[str, SpanKind] = {
    "invoke_agent": SpanKind.AGENT, "create_agent": SpanKind.AGENT, "chat": SpanKind.LLM,
    "text_completion": SpanKind.LLM, "generate_content": SpanKind.LLM, "execute_tool": SpanKind.TOOL,
    "embeddings": SpanKind.OTHER,
}
MESSAGE_EVENTS: dict[str, tuple[Side, str]] = {
    "gen_ai.system.message": ("input", "system"), "gen_ai.user.message": ("input", "user"),
    "gen_ai.assistant.message": ("input", "assistant"), "gen_ai.tool.message": ("input", "tool"),
    "gen_ai.choice": ("output", "assistant"),
}
DETAILS_EVENT = "gen_ai.client.inference.operation.details"
DETAIL_ATTRIBUTES: tuple[tuple[str, Side, str], ...] = (
    ("gen_ai.system_instructions", "input", "system"), ("gen_ai.input.messages", "input", "user"),
    ("gen_ai.output.messages", "output", "assistant"))
_INDEXED = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(.+)$")
_TOOL_CALL = re.compile(r"^tool_calls\.(\d+)\.(id|name|arguments)$")


class GenAIReader:
    """Reads a span by the GenAI semantic conventions. Subclasses override the hooks for their library."""

    session_keys: tuple[str, ...] = ("session.id", "gen_ai.conversation.id")
    model_keys: tuple[str, ...] = ("gen_ai.request.model", "gen_ai.response.model")
    input_token_keys: tuple[str, ...] = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
    output_token_keys: tuple[str, ...] = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")

    def read(self, record: SpanRecord) -> SpanReading:
        kind = self.kind(record)
        inputs, outputs = self.payloads(record, "input"), self.payloads(record, "output")
        reading = SpanReading(kind=kind, session_id=self.session_id(record), operation=self.operation(record),
                              available_tools=self.available_tools(record), model=self.model(record),
                              tokens_in=self.tokens(record, self.input_token_keys),
                              tokens_out=self.tokens(record, self.output_token_keys))
        if kind == SpanKind.TOOL:
            reading.tool_name = self.tool_name(record)
            reading.tool_call_id = self.tool_call_id(record)
            reading.tool_args = self.tool_args(record, inputs)
            reading.tool_result = self.tool_result(record, outputs)
            reading.has_body = reading.tool_args is not None or reading.tool_result is not None
            return reading
        reading.input = self.messages(record, inputs)
        reading.output = self.messages(record, outputs)
        if kind == SpanKind.AGENT:
            reading.output = strip_echo(reading.input, reading.output)
        reading.has_body = any(m.role != "system" for m in reading.input + reading.output)
        return reading

    # -- kind, ids and numbers ---------------------------------------------------------------------------------

    def kind(self, record: SpanRecord) -> SpanKind:
        operation = self.operation(record) or record.name.split(" ", 1)[0]
        if operation in OPERATION_KINDS:
            return OPERATION_KINDS[operation]
        if operation.startswith("invoke_"):
            return SpanKind.AGENT
        if record.attr("gen_ai.tool.name") is not None:
            return SpanKind.TOOL
        return SpanKind.OTHER

    def operation(self, record: SpanRecord) -> str | None:
        value = record.attr("gen_ai.operation.name")
        return str(value) if value is not None else None

    def session_id(self, record: SpanRecord) -> str | None:
        value = record.attr(*self.session_keys)
        if value is None:
            for event in record.records:
                value = next((event.attributes[k] for k in self.session_keys if event.attributes.get(k)), None)
                if value is not None:
                    break
        return str(value) if value is not None else None

    def model(self, record: SpanRecord) -> str | None:
        value = record.attr(*self.model_keys)
        return str(value) if value not in (None, "unknown") else None

    def tokens(self, record: SpanRecord, keys: tuple[str, ...]) -> int | None:
        for key in keys:
            value = record.attributes.get(key)
            if value is None or value == "":
                continue
            if isinstance(value, float) and value.is_integer() and value >= 0:
                return int(value)
            if isinstance(value, bool) or not (isinstance(value, int) or str(value).strip().isdigit()):
                record.note(f"attribute {key} is not a whole number: {value!r}")
                return None
            return int(value)
        return None

    def available_tools(self, record: SpanRecord) -> list[str] | None:
        names: list[str] = []
        for key in ("gen_ai.agent.tools", "gen_ai.tool.definitions", "gen_ai.request.tools"):
            names += tool_names(parse_json(record.attributes.get(key)))
        return unique(names) or None

    # -- messages -----------------------------------------------------------------------------------------------

    def payloads(self, record: SpanRecord, side: Side) -> list[Payload]:
        """The side's payloads from the first source that has any: event records, span events, attributes."""
        for source in (self.record_payloads, self.event_payloads, self.attribute_payloads):
            found = source(record, side)
            if found:
                return found
        return []

    def record_payloads(self, record: SpanRecord, side: Side) -> list[Payload]:
        found: list[Payload] = []
        for event in sorted(record.records, key=lambda e: e.time_ns or 0):
            body = event.body
            if (event.name in MESSAGE_EVENTS or event.name == DETAILS_EVENT) and isinstance(body, dict) \
                    and "input" not in body and "output" not in body:
                found += _event_payloads(event.name, body, side, f"event record {event.name}")
                continue
            if not isinstance(body, dict) or not ({"input", "output"} & set(body)):
                record.note(f"event record {event.name or ''}: body is not "
                                       "{input: {messages: [...]}, output: {messages: [...]}}")
                continue
            part = body.get(side)
            if part is None:
                continue
            messages = part.get("messages") if isinstance(part, dict) else None
            if not isinstance(messages, list):
                record.note(f"event record {event.name or ''}: body.{side}.messages is not a list")
                continue
            default = "user" if side == "input" else "assistant"
            found += [Payload(m, m.get("role", default) if isinstance(m, dict) else default,
                              f"event record body.{side}") for m in messages]
        return found

    def event_payloads(self, record: SpanRecord, side: Side) -> list[Payload]:
        found: list[Payload] = []
        for event in sorted(record.events, key=lambda e: e.time_ns or 0):
            found += _event_payloads(event.name, dict(event.attributes), side, f"event {event.name}")
        return found

    def attribute_payloads(self, record: SpanRecord, side: Side) -> list[Payload]:
        found = [Payload(record.attributes[key], role, key) for key, key_side, role in DETAIL_ATTRIBUTES
                 if key_side == side and record.attributes.get(key)]
        found += indexed_messages(record.attributes, "prompt" if side == "input" else "completion")
        if not found:
            key = "gen_ai.prompt" if side == "input" else "gen_ai.completion"
            if isinstance(record.attributes.get(key), str):
                found.append(Payload(record.attributes[key], "user" if side == "input" else "assistant", key))
        return found

    def messages(self, record: SpanRecord, payloads: list[Payload]) -> list[ChatMessage]:
        """The payloads decoded, in order. A payload that wraps a conversation (``input.value``) whose messages
        all appear in the side's other payloads is a copy and is dropped: ADOT's event body puts OpenInference's
        ``input.value`` next to the ``llm.input_messages`` it repeats."""
        decoded: list[tuple[Payload, Sequence[ChatMessage], bool | None]] = []
        for payload in payloads:
            try:
                decoded.append((payload, *decoded_payload(payload.value, payload.role)))
            except BodyShapeError as error:
                record.note(f"{payload.origin}: {error}")
        dropped: set[int] = set()
        for index, (payload, messages, container) in enumerate(decoded):
            if messages and len(decoded) > 1 and (is_container(payload.value) if container is None else container):
                others = [m for j, (_, ms, _) in enumerate(decoded) if j != index and j not in dropped for m in ms]
                if all(m in others for m in messages):
                    dropped.add(index)
        return [m for index, (_, messages, _) in enumerate(decoded) if index not in dropped for m in messages]

    # -- tool calls ---------------------------------------------------------------------------------------------

    def tool_name(self, record: SpanRecord) -> str | None:
        value = record.attr("gen_ai.tool.name")
        if value is None and record.name.startswith("execute_tool "):
            value = record.name.split(" ", 1)[1]
        return str(value) if value is not None else record.name or None

    def tool_call_id(self, record: SpanRecord) -> str | None:
        value = record.attr("gen_ai.tool.call.id")
        return str(value) if value is not None else None

    def tool_args(self, record: SpanRecord, inputs: list[Payload]) -> str | None:
        value = record.attr("gen_ai.tool.call.arguments")
        if value is not None:
            return json_text(value)
        for payload in inputs:
            args = tool_arguments(payload.value)
            if args is not None:
                return args
        return None

    def tool_result(self, record: SpanRecord, outputs: list[Payload]) -> str | None:
        value = record.attr("gen_ai.tool.call.result")
        if value is not None:
            return text_of(value)
        texts = [text for payload in outputs if (text := tool_result_text(payload.value)) is not None]
        return "\n".join(texts) if texts else None


def _event_payloads(name: str | None, attributes: dict[str, Any], side: Side, origin: str) -> list[Payload]:
    if name in MESSAGE_EVENTS:
        event_side, role = MESSAGE_EVENTS[name]
        if event_side != side:
            return []
        return [Payload({"role": role, **attributes} if "role" not in attributes else attributes, role, origin)]
    if name == DETAILS_EVENT:
        return [Payload(attributes[key], role, f"{origin} {key}") for key, key_side, role in DETAIL_ATTRIBUTES
                if key_side == side and attributes.get(key)]
    return []


def indexed_messages(attributes: dict[str, Any] | Any, which: str) -> list[Payload]:
    """``gen_ai.prompt.N.{role,content,tool_call_id}`` and ``....tool_calls.M.{id,name,arguments}`` as message
    payloads in index order (OpenLLMetry's and older semconv's message attributes)."""
    found: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        match = _INDEXED.match(key)
        if not match or match.group(1) != which:
            continue
        message = found.setdefault(int(match.group(2)), {})
        field_name = match.group(3)
        call = _TOOL_CALL.match(field_name)
        if call:
            calls = message.setdefault("tool_calls", {})
            calls.setdefault(int(call.group(1)), {})[call.group(2)] = value
        else:
            message[field_name] = value
    default = "user" if which == "prompt" else "assistant"
    payloads = []
    for index in sorted(found):
        message = found[index]
        message.setdefault("role", default)
        message.setdefault("content", "")
        if "tool_calls" in message:
            message["tool_calls"] = [message["tool_calls"][i] for i in sorted(message["tool_calls"])]
        payloads.append(Payload(message, message["role"], f"gen_ai.{which}.{index}"))
    return payloads


def tool_names(value: Any) -> list[str]:
    """Tool names in ``gen_ai.agent.tools`` (names), ``gen_ai.tool.definitions`` (``{name}``, ``{function: {name}}``,
    OpenInference ``json_schema``) and similar lists."""
    if isinstance(value, str):
        return [value] if value else []
    if not isinstance(value, list):
        return []
    names = []
    for item in value:
        item = parse_json(item)
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict):
            inner = item.get("function") if isinstance(item.get("function"), dict) else item
            inner = inner.get("toolSpec", inner) if isinstance(inner.get("toolSpec"), dict) else inner
            if isinstance(inner.get("name"), str):
                names.append(inner["name"])
    return names


def unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def strip_echo(inputs: list[ChatMessage], outputs: list[ChatMessage]) -> list[ChatMessage]:
    """An agent's output without the input it repeats (LangGraph returns its whole state, prompt included)."""
    if inputs and len(outputs) > len(inputs) and outputs[:len(inputs)] == inputs:
        return outputs[len(inputs):]
    return outputs


def _unwrap(value: Any) -> Any:
    value = parse_json(value)
    while isinstance(value, dict) and ("role" in value or set(value) <= {"content", "message", "id", "finish_reason"}):
        if "parts" in value:
            return value["parts"]
        inner = value.get("content", value.get("message"))
        if inner is None:
            return value
        value = parse_json(inner)
    return value


def tool_arguments(value: Any) -> str | None:
    """A tool call's arguments as JSON text from an input payload: the arguments themselves, a tool message
    around them, or an OTel message whose parts hold a ``tool_call``."""
    value = _unwrap(value)
    if value is None:
        return None
    if isinstance(value, list):
        for item in value:
            item = _unwrap(item)
            for part in item if isinstance(item, list) else [item]:
                if isinstance(part, dict) and part.get("type") in ("tool_call", "function_call"):
                    return json_text(part.get("arguments", {}))
                if isinstance(part, dict) and isinstance(part.get("toolUse"), dict):
                    return json_text(part["toolUse"].get("input", {}))
    if isinstance(value, str):
        return python_literal_json(value)
    return json_text(value)


def tool_result_text(value: Any) -> str | None:
    """A tool's result as text from an output payload (result blocks, ``tool_call_response`` parts, text)."""
    value = _unwrap(value)
    if value is None:
        return None
    if isinstance(value, list):
        for item in value:
            item = _unwrap(item)
            for part in item if isinstance(item, list) else [item]:
                if isinstance(part, dict) and part.get("type") in ("tool_call_response", "function_call_output"):
                    return text_of(part.get("response", part.get("output")))
                if isinstance(part, dict) and isinstance(part.get("toolResult"), dict):
                    return text_of(part["toolResult"].get("content"))
    return text_of(value)


def python_literal_json(text: str) -> str:
    """Text as written, unless it is a Python literal of a dict or list (LangChain's ``str(tool_input)``), which
    becomes JSON."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            json.loads(stripped)
            return text
        except ValueError:
            pass
        try:
            value = ast.literal_eval(stripped)
        except (ValueError, SyntaxError):
            return text
        if isinstance(value, (dict, list)):
            return json.dumps(value, ensure_ascii=False)
    return text


GENAI = GenAIReader()
