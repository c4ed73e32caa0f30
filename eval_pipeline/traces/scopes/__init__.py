"""Scope readers: how each instrumentation library's spans map onto ``Span`` fields, keyed by instrumentation
scope name (``scope.name`` of the record).

A reader is any object with ``read(record: SpanRecord) -> SpanReading``; subclassing ``GenAIReader`` and
overriding its hooks (``kind``, ``session_id``, ``attribute_payloads``, ``tool_args``, ...) is the short way.
Plugins add readers through the entry point group ``eval_pipeline.trace_scopes``
(``"my.instrumentation.scope" = "my_pkg.scope:READER"``) or ``SCOPE_READERS.register(...)``. A scope no reader is
registered for is read by the GenAI semantic conventions: no span is dropped.
"""

from __future__ import annotations

from typing import Protocol

from eval_pipeline.registry import Registry
from eval_pipeline.traces.scopes.genai import GENAI, GenAIReader
from eval_pipeline.traces.scopes.record import EventRecord, Payload, SpanEvent, SpanReading, SpanRecord


class ScopeReader(Protocol):
    def read(self, record: SpanRecord) -> SpanReading: ...


SCOPE_READERS: Registry[ScopeReader] = Registry("trace scope reader", "eval_pipeline.trace_scopes")
SCOPE_READERS.register("strands.telemetry.tracer", "eval_pipeline.traces.scopes.strands:STRANDS")
SCOPE_READERS.register("opentelemetry.instrumentation.langchain", "eval_pipeline.traces.scopes.traceloop:TRACELOOP")
SCOPE_READERS.register("opentelemetry.instrumentation.openai_agents",
                       "eval_pipeline.traces.scopes.traceloop:TRACELOOP")
SCOPE_READERS.register("openinference.instrumentation.langchain",
                       "eval_pipeline.traces.scopes.openinference:OPENINFERENCE")
SCOPE_READERS.register("openinference.instrumentation.openai_agents",
                       "eval_pipeline.traces.scopes.openinference:OPENINFERENCE")
DEFAULT_READER: ScopeReader = GENAI


def reader_for(scope: str | None) -> ScopeReader:
    """The reader registered for ``scope``, else the GenAI-semconv reader."""
    if scope and scope in SCOPE_READERS:
        return SCOPE_READERS.get(scope)
    return DEFAULT_READER


__all__ = ["DEFAULT_READER", "SCOPE_READERS", "EventRecord", "GenAIReader", "Payload", "ScopeReader", "SpanEvent",
           "SpanReading", "SpanRecord", "reader_for"]
