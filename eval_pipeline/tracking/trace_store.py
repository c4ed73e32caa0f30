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


def store_traces(tracing: Any, experiment_id: str, batch: list[tuple[Any, list[FinishedSpan]]]) -> list[str]:
    """Write many traces (``(TraceInfo, spans)`` pairs, assessments in ``TraceInfo.assessments``) at once: on a
    SQL tracking store, every trace's info, tags, metadata and assessments in one transaction and all their spans
    in a second (``log_spans`` takes many traces); elsewhere one ``store_trace`` per trace. The stored trace ids."""
    if not batch:
        return []
    store = getattr(tracing, "store", None)
    if not _bulk_writable(store):
        return [store_trace(tracing, experiment_id, info, spans) for info, spans in batch]
    from mlflow.entities import Span

    _bulk_start_traces(store, experiment_id, [info for info, _ in batch])
    tracing.log_spans(experiment_id, [Span(otel_span(info.trace_id, span)) for info, spans in batch for span in spans])
    return [info.trace_id for info, _ in batch]


def _bulk_writable(store: Any) -> bool:
    """Whether ``store`` is MLflow's SQL store with the pieces ``_bulk_start_traces`` uses (MLflow 3.17)."""
    try:
        from mlflow.store.tracking import sqlalchemy_store as sql
    except ImportError:
        return False
    needed = ("RollupFamily", "enqueue_rollup_rebuild_partitions", "PROMOTED_TRACE_METADATA_KEYS",
              "analytics_columns_from_metadata", "validate_trace_name", "SqlTraceInfo", "SqlTraceTag",
              "SqlTraceMetadata", "SqlAssessments")
    return (isinstance(store, sql.SqlAlchemyStore) and all(hasattr(sql, name) for name in needed)
            and all(hasattr(store, name) for name in ("ManagedSessionMaker", "_get_trace_artifact_location_tag",
                                                      "_check_experiment_is_active")))


def _bulk_start_traces(store: Any, experiment_id: str, infos: list[Any]) -> None:
    """What ``SqlAlchemyStore.start_trace`` writes for a new trace (its info row, tags, metadata, assessments and
    the analytics rollup markers), for all ``infos`` in one transaction."""
    from mlflow.store.tracking import sqlalchemy_store as sql
    from mlflow.tracing.constant import TraceMetadataKey, TraceTagKey

    experiment = store.get_experiment(experiment_id)
    store._check_experiment_is_active(experiment)
    with store.ManagedSessionMaker(read_only=False) as session:
        rows: list[Any] = []
        children: list[Any] = []
        for info in infos:
            trace_id = info.trace_id
            metadata = dict(info.trace_metadata.items())
            row = sql.SqlTraceInfo(
                request_id=trace_id, experiment_id=experiment_id, timestamp_ms=info.request_time,
                execution_time_ms=info.execution_duration, status=info.state.value,
                client_request_id=info.client_request_id, request_preview=info.request_preview,
                response_preview=info.response_preview,
                trace_name=sql.validate_trace_name(info.tags.get(TraceTagKey.TRACE_NAME)),
                **sql.analytics_columns_from_metadata(metadata))
            children.extend(sql.SqlTraceTag(request_id=trace_id, key=key, value=value)
                            for key, value in info.tags.items() if key != TraceTagKey.TRACE_NAME)
            children.append(store._get_trace_artifact_location_tag(experiment, trace_id))
            for key in sql.PROMOTED_TRACE_METADATA_KEYS:
                metadata.pop(key, None)
            metadata[TraceMetadataKey.TRACE_INFO_FINALIZED] = "true"
            children.extend(sql.SqlTraceMetadata(request_id=trace_id, key=key, value=value)
                            for key, value in sorted(metadata.items()))
            for assessment in info.assessments:
                entity = sql.SqlAssessments.from_mlflow_entity(assessment)
                entity.trace_id, entity.experiment_id = trace_id, int(experiment_id)
                entity.trace_timestamp_ms = info.request_time
                children.append(entity)
            rows.append(row)
        times = sorted({info.request_time for info in infos})
        sql.enqueue_rollup_rebuild_partitions(session, [(family, int(experiment_id), times) for family in (
            sql.RollupFamily.TRACE_METRIC, sql.RollupFamily.ASSESSMENT)])
        session.bulk_save_objects(rows)  # the rows first: the others refer to them
        session.bulk_save_objects(children)
        session.flush()


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


def parsed_json(text: Any) -> Any:
    """A JSON text as its value; anything else (not a string, or not JSON) as it is."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text
