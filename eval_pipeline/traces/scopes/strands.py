"""Strands Agents (``strands.telemetry.tracer``): the GenAI conventions in both of Strands' styles, classic span
events (``gen_ai.user.message`` with JSON-encoded content blocks, ``gen_ai.choice``, ``gen_ai.tool.message``) and
``gen_ai_latest_experimental`` (``gen_ai.client.inference.operation.details``), and ADOT's event records; plus the
agent's system prompt (``gen_ai.agent.system_prompt`` / ``system_prompt``) as the first input message."""

from __future__ import annotations

from eval_pipeline.data.messages import ChatMessage
from eval_pipeline.traces.scopes.genai import GenAIReader
from eval_pipeline.traces.scopes.record import SpanReading, SpanRecord
from eval_pipeline.traces.spans import SpanKind


class StrandsReader(GenAIReader):
    """Strands spans: ``invoke_agent <name>``, ``execute_event_loop_cycle`` (other), ``chat``,
    ``execute_tool <name>``, ``invoke_swarm``/``invoke_graph`` (agent)."""

    def read(self, record: SpanRecord) -> SpanReading:
        reading = super().read(record)
        prompt = record.attr("gen_ai.agent.system_prompt", "system_prompt")
        if reading.kind == SpanKind.AGENT and isinstance(prompt, str) and reading.input is not None \
                and not any(m.role == "system" for m in reading.input):
            reading.input = [ChatMessage(role="system", content=prompt), *reading.input]
        return reading


STRANDS = StrandsReader()
