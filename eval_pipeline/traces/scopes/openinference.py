"""OpenInference instrumentations: ``openinference.instrumentation.langchain`` (LangChain/LangGraph) and
``openinference.instrumentation.openai_agents`` (OpenAI Agents SDK).

Kind from ``openinference.span.kind``: AGENT → agent, LLM → llm, TOOL → tool, CHAIN → agent when it is the trace's
root (LangGraph's graph run) else other. Messages from ``llm.input_messages.N.message.*`` /
``llm.output_messages.N.message.*`` (``role``, ``content``, ``contents.K.message_content.text``,
``tool_calls.K.tool_call.{id,function.name,function.arguments}``, ``tool_call_id``, ``name``), else
``input.value``/``output.value``. Tools: ``tool.name``, arguments from ``input.value``, result from
``output.value``; offered tools from ``llm.tools.N.tool.json_schema``; model ``llm.model_name``; tokens
``llm.token_count.prompt``/``completion``; session ``session.id`` (or ``metadata``'s ``session_id``/``thread_id``).
"""

from __future__ import annotations

import re
from typing import Any

from eval_pipeline.traces.scopes.content import parse_json
from eval_pipeline.traces.scopes.genai import GenAIReader, python_literal_json, tool_names, unique
from eval_pipeline.traces.scopes.record import Payload, Side, SpanRecord
from eval_pipeline.traces.spans import SpanKind

SPAN_KINDS = {"AGENT": SpanKind.AGENT, "LLM": SpanKind.LLM, "TOOL": SpanKind.TOOL}
_MESSAGE = re.compile(r"^llm\.(input|output)_messages\.(\d+)\.message\.(.+)$")
_CONTENTS = re.compile(r"^contents\.(\d+)\.message_content\.(type|text)$")
_TOOL_CALL = re.compile(r"^tool_calls\.(\d+)\.tool_call\.(id|function\.name|function\.arguments)$")
_TOOL_SCHEMA = re.compile(r"^llm\.tools\.(\d+)\.tool\.json_schema$")


class OpenInferenceReader(GenAIReader):
    model_keys = ("llm.model_name", *GenAIReader.model_keys)
    input_token_keys = ("llm.token_count.prompt", *GenAIReader.input_token_keys)
    output_token_keys = ("llm.token_count.completion", *GenAIReader.output_token_keys)

    def kind(self, record: SpanRecord) -> SpanKind:
        span_kind = str(record.attr("openinference.span.kind") or "").upper()
        if span_kind in SPAN_KINDS:
            return SPAN_KINDS[span_kind]
        if span_kind == "CHAIN":
            return SpanKind.AGENT if record.parent_id is None else SpanKind.OTHER
        if span_kind:
            return SpanKind.OTHER
        return super().kind(record)

    def session_id(self, record: SpanRecord) -> str | None:
        found = super().session_id(record)
        if found is None:
            metadata = parse_json(record.attributes.get("metadata"))
            if isinstance(metadata, dict):
                value = next((metadata[k] for k in ("session_id", "thread_id", "conversation_id")
                              if metadata.get(k)), None)
                found = str(value) if value is not None else None
        return found

    def attribute_payloads(self, record: SpanRecord, side: Side) -> list[Payload]:
        found = structured_messages(record.attributes, side)
        if found:
            return found
        key = "input.value" if side == "input" else "output.value"
        if record.attributes.get(key) not in (None, ""):
            return [Payload(record.attributes[key], "user" if side == "input" else "assistant", key)]
        return super().attribute_payloads(record, side)

    def available_tools(self, record: SpanRecord) -> list[str] | None:
        indexed = sorted((int(m.group(1)), v) for k, v in record.attributes.items() if (m := _TOOL_SCHEMA.match(k)))
        names = tool_names([v for _, v in indexed]) + (super().available_tools(record) or [])
        return unique(names) or None

    def tool_name(self, record: SpanRecord) -> str | None:
        value = record.attr("tool.name")
        return str(value) if value is not None else super().tool_name(record)

    def tool_call_id(self, record: SpanRecord) -> str | None:
        value = record.attr("tool_call.id", "tool.id")
        return str(value) if value is not None else super().tool_call_id(record)

    def tool_args(self, record: SpanRecord, inputs: list[Payload]) -> str | None:
        value = record.attr("input.value")
        if isinstance(value, str) and record.attr("gen_ai.tool.call.arguments") is None:
            return python_literal_json(value)
        return super().tool_args(record, inputs)


def structured_messages(attributes: Any, side: Side) -> list[Payload]:
    """``llm.{side}_messages.N.message.*`` as message payloads in index order."""
    which = "input" if side == "input" else "output"
    found: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        match = _MESSAGE.match(key)
        if not match or match.group(1) != which:
            continue
        message = found.setdefault(int(match.group(2)), {})
        rest = match.group(3)
        if contents := _CONTENTS.match(rest):
            message.setdefault("parts", {}).setdefault(int(contents.group(1)), {})[contents.group(2)] = value
        elif call := _TOOL_CALL.match(rest):
            entry = message.setdefault("calls", {}).setdefault(int(call.group(1)), {})
            entry[call.group(2).rsplit(".", 1)[-1]] = value
        else:
            message[rest] = value
    default = "user" if side == "input" else "assistant"
    payloads = []
    for index in sorted(found):
        raw = found[index]
        message: dict[str, Any] = {"role": raw.get("role", default), "content": raw.get("content", "")}
        if "parts" in raw and not message["content"]:
            message["content"] = [{"type": "text", "text": raw["parts"][i].get("text", "")}
                                  for i in sorted(raw["parts"]) if raw["parts"][i].get("type", "text") == "text"]
        if "calls" in raw:
            message["tool_calls"] = [{"id": raw["calls"][i].get("id"), "function": {
                "name": raw["calls"][i].get("name"), "arguments": raw["calls"][i].get("arguments", "{}")}}
                for i in sorted(raw["calls"])]
        if raw.get("tool_call_id"):
            message["tool_call_id"] = raw["tool_call_id"]
        if raw.get("name"):
            message["name"] = raw["name"]
        payloads.append(Payload(message, str(message["role"]), f"llm.{which}_messages.{index}"))
    return payloads


OPENINFERENCE = OpenInferenceReader()
