"""OpenLLMetry (Traceloop) instrumentations: ``opentelemetry.instrumentation.langchain`` (LangChain/LangGraph) and
``opentelemetry.instrumentation.openai_agents`` (OpenAI Agents SDK).

Kind from ``traceloop.span.kind`` (``workflow``/``agent`` → agent, ``tool`` → tool, ``task``/``handoff`` → other)
or ``llm.request.type`` (``chat``/``completion`` → llm), else the GenAI conventions. Messages from
``traceloop.entity.input``/``traceloop.entity.output`` (LangChain run payloads: ``{"inputs": {"messages": [...]}}``,
``{"outputs": ...}``) and ``gen_ai.prompt.N.*``/``gen_ai.completion.N.*``; the session from
``traceloop.association.properties.{session_id,thread_id,conversation_id}``; offered tools from
``llm.request.functions.N.name``."""

from __future__ import annotations

import re

from eval_pipeline.traces.scopes.content import json_text, parse_json, text_of
from eval_pipeline.traces.scopes.genai import GenAIReader, python_literal_json, unique
from eval_pipeline.traces.scopes.record import Payload, Side, SpanRecord
from eval_pipeline.traces.spans import SpanKind

SPAN_KINDS = {"workflow": SpanKind.AGENT, "agent": SpanKind.AGENT, "tool": SpanKind.TOOL,
              "task": SpanKind.OTHER, "handoff": SpanKind.OTHER}
REQUEST_TYPES = {"chat": SpanKind.LLM, "completion": SpanKind.LLM}
_FUNCTION = re.compile(r"^llm\.request\.functions\.(\d+)\.name$")


class TraceloopReader(GenAIReader):
    session_keys = ("traceloop.association.properties.session_id", "traceloop.association.properties.thread_id",
                    "traceloop.association.properties.conversation_id", *GenAIReader.session_keys)

    def kind(self, record: SpanRecord) -> SpanKind:
        span_kind = record.attr("traceloop.span.kind")
        if span_kind in SPAN_KINDS:
            return SPAN_KINDS[span_kind]
        if record.attr("llm.request.type") in REQUEST_TYPES:
            return REQUEST_TYPES[record.attr("llm.request.type")]
        return super().kind(record)

    def attribute_payloads(self, record: SpanRecord, side: Side) -> list[Payload]:
        key = "traceloop.entity.input" if side == "input" else "traceloop.entity.output"
        found = super().attribute_payloads(record, side)
        if not found and record.attributes.get(key):
            found = [Payload(record.attributes[key], "user" if side == "input" else "assistant", key)]
        return found

    def available_tools(self, record: SpanRecord) -> list[str] | None:
        indexed = sorted((int(m.group(1)), v) for k, v in record.attributes.items() if (m := _FUNCTION.match(k)))
        names = [v for _, v in indexed if isinstance(v, str)] + (super().available_tools(record) or [])
        return unique(names) or None

    def tool_name(self, record: SpanRecord) -> str | None:
        value = record.attr("gen_ai.tool.name", "traceloop.entity.name", "gen_ai.completion.tool.name")
        if value is None and record.name.endswith(".tool"):
            value = record.name[: -len(".tool")]
        return str(value) if value is not None else super().tool_name(record)

    def tool_call_id(self, record: SpanRecord) -> str | None:
        entity = parse_json(record.attributes.get("traceloop.entity.input"))
        if isinstance(entity, dict):
            for holder in (entity.get("kwargs"), entity.get("inputs"), entity.get("metadata")):
                if isinstance(holder, dict) and holder.get("tool_call_id"):
                    return str(holder["tool_call_id"])
        return super().tool_call_id(record)

    def tool_args(self, record: SpanRecord, inputs: list[Payload]) -> str | None:
        entity = parse_json(record.attributes.get("traceloop.entity.input"))
        if isinstance(entity, dict) and ("input_str" in entity or "inputs" in entity):
            inputs_value = entity.get("inputs")
            if isinstance(inputs_value, dict) and inputs_value:
                return json_text({k: v for k, v in inputs_value.items() if k != "tool_call_id"})
            if isinstance(entity.get("input_str"), str):
                return python_literal_json(entity["input_str"])
        if entity is not None and record.attr("gen_ai.tool.call.arguments") is None:
            return json_text(entity)
        return super().tool_args(record, inputs)

    def tool_result(self, record: SpanRecord, outputs: list[Payload]) -> str | None:
        entity = parse_json(record.attributes.get("traceloop.entity.output"))
        if isinstance(entity, dict) and "output" in entity:
            return text_of(entity["output"])
        if entity is not None and record.attr("gen_ai.tool.call.result") is None:
            return text_of(entity)
        return super().tool_result(record, outputs)


TRACELOOP = TraceloopReader()
