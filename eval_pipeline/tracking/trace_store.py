"""Finished spans written straight to the tracking store of a URI, with no global MLflow state.

``store_trace`` takes a trace's info and its spans, already finished (``FinishedSpan``: ids, parent, type,
nanosecond timings, inputs, outputs, status, attributes), and writes them to the store's span table where it has
one, else to the trace's artifact; the tracing provider, tracking URI, active run and experiment are never read or
set. Shared by the rollout traces (``rollout_traces``) and the recorded sessions (``session_traces``).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class FinishedSpan:
    """One span to write: ``span_id``/``parent_id`` are 64-bit ints (``parent_id`` None for the trace's root),
    times are epoch nanoseconds, ``error`` (the status message) marks the span ERROR."""

    span_id: int
    parent_id: int | None
    name: str
    span_type: str
    start_ns: int
    end_ns: int
    inputs: Any = None
    outputs: Any = None
    error: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)


def otel_trace_id(trace_id: str) -> int:
    """The OpenTelemetry trace id of an MLflow trace id ``tr-<32 hex digits>``."""
    return int(trace_id.removeprefix("tr-"), 16)


def otel_span(trace_id: str, span: FinishedSpan) -> Any:
    """The span as a finished OpenTelemetry span carrying MLflow's attributes (all values JSON text, as MLflow
    stores them)."""
    from mlflow.entities import SpanStatus, SpanStatusCode
    from mlflow.tracing.constant import SpanAttributeKey
    from mlflow.tracing.utils import build_otel_context
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan

    attributes = {SpanAttributeKey.REQUEST_ID: trace_id, SpanAttributeKey.SPAN_TYPE: span.span_type,
                  SpanAttributeKey.INPUTS: span.inputs, SpanAttributeKey.OUTPUTS: span.outputs,
                  **{key: value for key, value in span.attributes.items() if value is not None}}
    status = SpanStatus(SpanStatusCode.ERROR, str(span.error)) if span.error else SpanStatus(SpanStatusCode.OK)
    otel_id = otel_trace_id(trace_id)
    parent = None if span.parent_id is None else build_otel_context(otel_id, span.parent_id)
    return ReadableSpan(
        name=span.name, context=build_otel_context(otel_id, span.span_id), parent=parent,
        start_time=int(span.start_ns), end_time=int(span.end_ns),
        attributes={key: trace_json(value) for key, value in attributes.items()}, status=status.to_otel_status(),
        resource=Resource.get_empty())


def store_trace(tracing: Any, experiment_id: str, info: Any, spans: list[FinishedSpan]) -> str:
    """Write ``info`` (an ``mlflow.entities.TraceInfo``) and its spans with ``tracing`` (a
    ``mlflow.tracing.client.TracingClient`` of the store); the stored trace id."""
    from mlflow.entities import Span, TraceData
    from mlflow.tracing.constant import SpansLocation, TraceTagKey

    entities = [Span(otel_span(info.trace_id, span)) for span in spans]
    with contextlib.suppress(NotImplementedError):  # a store without a span table: spans go to the artifact
        tracing.log_spans(experiment_id, entities)
    stored = tracing.start_trace(info)
    if stored.tags.get(TraceTagKey.SPANS_LOCATION) != SpansLocation.TRACKING_STORE.value:
        tracing._upload_trace_data(stored, TraceData(entities))
    return stored.trace_id


def traced_tag_values(client: Any, experiment_id: str, run_id: str, tag: str) -> dict[Any, str]:
    """``tag``'s value -> trace id, over the traces of run ``run_id`` (``client``: an ``MlflowClient``)."""
    seen: dict[Any, str] = {}
    token = None
    while True:
        page = client.search_traces(locations=[experiment_id], run_id=run_id, include_spans=False,
                                    max_results=500, page_token=token)
        seen.update((trace.info.tags.get(tag), trace.info.trace_id) for trace in page)
        token = page.token
        if not token:
            return seen


def plain(value: Any) -> Any:
    """A cell as a plain Python value: NaN/NA as None, numpy scalars unwrapped."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def trace_json(value: Any) -> str:
    """``value`` as JSON the way MLflow's tracing writes it."""
    from mlflow.tracing.utils import TraceJSONEncoder

    return json.dumps(value, cls=TraceJSONEncoder, ensure_ascii=False)
