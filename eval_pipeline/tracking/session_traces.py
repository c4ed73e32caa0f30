"""Recorded agent sessions as MLflow traces, the evaluators' results attached as assessments.

One MLflow trace per session of a ``traces`` table (``data.schemas.TRACES``), in the experiment of run ``run_id``:
its spans are the table's spans with their parent links (``parent_id`` within the same trace), types (agent ->
AGENT, llm -> CHAT_MODEL, tool -> TOOL, anything else UNKNOWN), inputs and outputs (agent/llm: ``{"messages":
[...]}`` in OpenAI's chat shape, which MLflow's chat view renders, and the reply; tool: the arguments and the
result), nanosecond timings, and status (ERROR with its message when the span failed). A session whose spans have
several tops (several turns, each its own trace, or a trace without a single root) gets a synthetic root span
``session`` over them, so one MLflow trace holds the whole session. The table's own trace and span ids stay on
each span as the attributes ``otel.trace_id``/``otel.span_id``; MLflow's span id is the table's when it is 16 hex
digits and unique in the session (else one derived from it).

The trace carries the tags ``session_id``, ``service``, ``test_scenario_id`` and ``mlflow.sourceRun`` (also in
its metadata, with ``mlflow.trace.session``, so ``search_traces(run_id=...)`` and MLflow's sessions view find it).

Each row of the results (``data.schemas.TRACE_EVALUATIONS``) becomes a ``Feedback`` assessment on its session's
trace: name = the evaluator id, value = the value (the label for a categorical evaluator, named in
``categorical``, and when there is no value), rationale = the
explanation, source = LLM_JUDGE with the judge model as its id (CODE with the evaluator id for programmatic
evaluators), metadata = label, level, score, ignored reference fields, error code, the result's ids, and the
span: none for a SESSION result (the trace as a whole), the root span of the evaluated trace for a TRACE result,
the tool span for a TOOL_CALL result. A result with an error is a Feedback with an ``AssessmentError`` and no
value.

Idempotent: the trace id is derived from the run and the session, a session already traced in the run is not
traced again, and an assessment whose result key (session, trace, span, evaluator, level) the trace already has is
not logged again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from eval_pipeline.tracking.chat_shape import openai_message
from eval_pipeline.tracking.mlflow_log import tracking_client
from eval_pipeline.tracking.trace_store import (
    FinishedSpan,
    parsed_json,
    plain,
    store_trace,
    trace_json,
    traced_tag_values,
)

SESSION_ROOT_NAME = "session"
SESSION_TAG = "session_id"
RESULT_KEY = "eval_pipeline.result_key"
"""The assessment metadata key that names the result it came from (what makes logging again add nothing)."""
SPAN_TYPES = {"agent": "AGENT", "llm": "CHAT_MODEL", "tool": "TOOL"}
_PREVIEW_CHARS = 1000
_METADATA_CHARS = 250
_HEX16 = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class SessionTrace:
    """One session laid out as an MLflow trace: its spans (the root first), and where each table span and each
    table trace's root went (MLflow span ids as 16 hex digits)."""

    trace_id: str
    spans: list[FinishedSpan]
    span_ids: dict[tuple[str, str], str]
    """(table trace id, table span id) -> MLflow span id."""
    trace_roots: dict[str, str]
    """table trace id -> the MLflow span id of that trace's root."""


def log_session_traces(traces: pd.DataFrame, results: pd.DataFrame, *, tracking_uri: str, run_id: str,
                       categorical: Collection[str] = ()) -> int:
    """Log each session of ``traces`` as a trace in run ``run_id`` (its experiment), with ``results`` as its
    assessments; the number of traces newly logged (sessions already traced in the run are not traced again,
    but results they lack are added). ``categorical``: the ids of evaluators with a categorical scale, whose
    assessments take the label as their value (their rows' value is the label's position score)."""
    from mlflow.tracing.client import TracingClient

    client = tracking_client(tracking_uri)
    experiment_id = client.get_run(run_id).info.experiment_id
    tracing = TracingClient(tracking_uri)
    done = traced_tag_values(client, experiment_id, run_id, SESSION_TAG)
    by_session = _results_by_session(results)
    logged = 0
    for session_id, spans in _sessions(traces):
        rows = by_session.get(session_id, [])
        layout = session_trace(session_id, spans, run_id=run_id)
        trace_id = done.get(session_id)
        known: set[str] = set()
        if trace_id is None:
            trace_id = store_trace(tracing, experiment_id, _trace_info(layout, spans, rows, experiment_id, run_id),
                                   layout.spans)
            done[session_id] = trace_id
            logged += 1
        else:
            known = {a.metadata.get(RESULT_KEY) for a in tracing.get_trace_info(trace_id).assessments
                     if a.metadata}
        for row in rows:
            feedback = result_feedback(row, layout, run_id=run_id, categorical=categorical)
            if feedback.metadata[RESULT_KEY] not in known:
                feedback.trace_id = trace_id
                tracing.store.create_assessment(feedback)  # not log_assessment: it reads the active trace
                known.add(feedback.metadata[RESULT_KEY])
    return logged


def session_trace(session_id: str, spans: pd.DataFrame, *, run_id: str) -> SessionTrace:
    """The session's spans (rows of a ``traces`` table) as one MLflow trace's finished spans."""
    digest = hashlib.sha256(f"{run_id}\0{session_id}".encode()).hexdigest()
    trace_id = f"tr-{digest[:32]}"
    unique: dict[tuple[str, str], dict[str, Any]] = {}
    for row in spans.to_dict("records"):  # a span recorded twice counts once
        unique.setdefault((str(plain(row.get("trace_id"))), str(plain(row.get("span_id")))), row)
    keys = sorted(unique, key=lambda key: (_int(unique[key].get("start_ns")) or 0, key))
    rows = [unique[key] for key in keys]
    ids = _mlflow_span_ids(trace_id, keys)
    parents = [ids.get((keys[i][0], str(plain(r.get("parent_id"))))) for i, r in enumerate(rows)]
    tops = _tops([ids[key] for key in keys], parents)
    starts = [_int(r.get("start_ns")) for r in rows]
    ends = [_int(r.get("end_ns")) for r in rows]
    first = min((s for s in starts + ends if s is not None), default=0)
    last = max((e for e in ends + starts if e is not None), default=first)
    root: int | None = None
    finished = []
    if len(tops) != 1:
        root = int(hashlib.sha256(f"{trace_id}\0{SESSION_ROOT_NAME}".encode()).hexdigest()[:16], 16) or 1
        finished.append(_session_root(root, session_id, [rows[i] for i in tops], first, last))
    for index, row in enumerate(rows):
        start = starts[index] if starts[index] is not None else first
        end = max(ends[index] if ends[index] is not None else start, start)
        finished.append(_finished(row, ids[keys[index]], root if index in tops else parents[index], start, end))
    trace_roots: dict[str, str] = {}
    for table_trace in dict.fromkeys(keys[i][0] for i in tops):  # each trace's top span, an agent span first
        candidates = [i for i in tops if keys[i][0] == table_trace]
        chosen = next((i for i in candidates if rows[i].get("kind") == "agent"), candidates[0])
        trace_roots[table_trace] = f"{ids[keys[chosen]]:016x}"
    if len(tops) == 1:
        finished.insert(0, finished.pop(tops[0]))
    return SessionTrace(trace_id=trace_id, spans=finished,
                        span_ids={key: f"{value:016x}" for key, value in ids.items()}, trace_roots=trace_roots)


def _tops(ids: list[int], parents: list[int | None]) -> list[int]:
    """The indexes of the spans without a parent in the session (no parent id, or one not found), and of one span
    of each parent cycle (a malformed table must not make MLflow loop)."""
    parent_of = dict(zip(ids, parents, strict=True))
    tops = []
    for index, span in enumerate(ids):
        seen = {span}
        current = parent_of[span]
        while current is not None and current not in seen:
            seen.add(current)
            current = parent_of.get(current)
        if parents[index] is None or current == span:
            tops.append(index)
    return tops


def result_feedback(row: Mapping[str, Any], layout: SessionTrace, *, run_id: str,
                    categorical: Collection[str] = ()) -> Any:
    """One TRACE_EVALUATIONS row as an MLflow ``Feedback`` on the session's trace."""
    from mlflow.entities import AssessmentError, AssessmentSource, AssessmentSourceType, Feedback
    from mlflow.tracing.constant import AssessmentMetadataKey

    get = {key: plain(value) for key, value in row.items()}.get
    level, trace, span = get("level"), get("trace_id"), get("span_id")
    key = hashlib.sha256("\0".join(str(part) for part in (get("session_id"), trace, span, get("evaluator_id"),
                                                          level)).encode()).hexdigest()[:32]
    metadata = {RESULT_KEY: key, AssessmentMetadataKey.SOURCE_RUN_ID: run_id}
    for name in ("label", "level", "score", "ignored_reference_fields", "error_code", "session_id", "trace_id",
                 "span_id", "test_scenario_id", "judge_request_hash", "evaluator_name"):
        if get(name) is not None:
            metadata[name] = str(get(name))
    if get("judge_model") is not None:
        source = AssessmentSource(source_type=AssessmentSourceType.LLM_JUDGE, source_id=str(get("judge_model")))
    else:
        source = AssessmentSource(source_type=AssessmentSourceType.CODE, source_id=str(get("evaluator_id")))
    if level == "TOOL_CALL" and trace is not None and span is not None:
        target = layout.span_ids.get((str(trace), str(span)))
    elif level in ("TRACE", "TOOL_CALL") and trace is not None:
        target = layout.trace_roots.get(str(trace))
    else:
        target = None
    common = {"name": str(get("evaluator_id")), "source": source, "metadata": metadata, "span_id": target,
              "rationale": get("explanation")}
    if get("error") is not None or (get("error_code") is not None and get("value") is None):
        error = AssessmentError(error_code=str(get("error_code") or "EvaluationError"),
                                error_message=str(get("error") or get("error_code")))
        return Feedback(error=error, **common)
    label_valued = get("value") is None or (get("evaluator_id") in categorical and get("label") is not None)
    return Feedback(value=get("label") if label_valued else get("value"), **common)


def _sessions(traces: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The table's sessions in first-seen order (a span without a session id is its trace's session)."""
    if traces.empty:
        return []
    sessions = traces["session_id"].where(traces["session_id"].notna(), traces["trace_id"]).astype(str)
    return [(str(session), frame) for session, frame in traces.groupby(sessions, sort=False)]


def _results_by_session(results: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in results.to_dict("records") if results is not None and not results.empty else []:
        grouped.setdefault(str(plain(row.get("session_id"))), []).append(row)
    return grouped


def _mlflow_span_ids(trace_id: str, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """MLflow span ids: the table's own when 16 hex digits and unique in the session, else derived from it."""
    counts: dict[str, int] = {}
    for _, span in keys:
        counts[span] = counts.get(span, 0) + 1
    ids = {}
    for table_trace, span in keys:
        if _HEX16.fullmatch(span) and counts[span] == 1 and int(span, 16):
            ids[(table_trace, span)] = int(span, 16)
        else:
            digest = hashlib.sha256(f"{trace_id}\0{table_trace}\0{span}".encode()).hexdigest()
            ids[(table_trace, span)] = int(digest[:16], 16) or 1
    return ids


def _finished(row: Mapping[str, Any], span_id: int, parent: int | None, start: int, end: int) -> FinishedSpan:
    get = {key: plain(value) for key, value in row.items()}.get
    kind = get("kind")
    if kind == "tool":
        inputs, outputs = parsed_json(get("tool_args")), get("output")
    else:
        inputs, outputs = _chat(get("input"), inputs=True), _chat(get("output"), inputs=False)
    attributes: dict[str, Any] = {"otel.trace_id": get("trace_id"), "otel.span_id": get("span_id"),
                                  "otel.parent_id": get("parent_id"), "kind": kind, "operation": get("operation"),
                                  "scope": get("scope"), "service": get("service"), "model": get("model"),
                                  "tool_name": get("tool_name"), "tool_call_id": get("tool_call_id"),
                                  "source": get("source"), "line": get("line"), "read_error": get("error"),
                                  "has_body": get("has_body")}
    if get("attributes") is not None:
        attributes["recorded_attributes"] = parsed_json(get("attributes"))
    if get("available_tools") is not None:
        attributes["available_tools"] = parsed_json(get("available_tools"))
    if kind == "llm" and (get("tokens_in") is not None or get("tokens_out") is not None):
        tokens_in, tokens_out = int(get("tokens_in") or 0), int(get("tokens_out") or 0)
        attributes["mlflow.chat.tokenUsage"] = {"input_tokens": tokens_in, "output_tokens": tokens_out,
                                                "total_tokens": tokens_in + tokens_out}
    elif get("tokens_in") is not None or get("tokens_out") is not None:
        attributes["tokens_in"], attributes["tokens_out"] = get("tokens_in"), get("tokens_out")
    if kind == "llm" and get("model") is not None:
        attributes["mlflow.llm.model"] = get("model")
    error = (get("status_message") or "error") if get("status") == "ERROR" else None
    return FinishedSpan(span_id=span_id, parent_id=parent, name=str(get("name") or kind or "span"),
                        span_type=SPAN_TYPES.get(str(kind), "UNKNOWN"), start_ns=start, end_ns=end, inputs=inputs,
                        outputs=outputs, error=error, attributes=attributes)


def _session_root(span_id: int, session_id: str, tops: list[Mapping[str, Any]], start: int,
                  end: int) -> FinishedSpan:
    """The synthetic root over a session's turns: its first input and its last output."""
    first = next((plain(r.get("input")) for r in tops if plain(r.get("input")) is not None), None)
    last = next((plain(r.get("output")) for r in reversed(tops) if plain(r.get("output")) is not None), None)
    return FinishedSpan(span_id=span_id, parent_id=None, name=SESSION_ROOT_NAME, span_type="AGENT", start_ns=start,
                        end_ns=end, inputs=_chat(first, inputs=True), outputs=_chat(last, inputs=False),
                        attributes={"session_id": session_id, "turns": len({plain(r.get("trace_id")) for r in tops}),
                                    "synthetic": True})


def _trace_info(layout: SessionTrace, spans: pd.DataFrame, rows: list[dict[str, Any]], experiment_id: str,
                run_id: str) -> Any:
    from mlflow.entities import TraceInfo, TraceLocation, TraceState
    from mlflow.tracing.constant import TRACE_SCHEMA_VERSION, TRACE_SCHEMA_VERSION_KEY, TraceTagKey
    from mlflow.tracing.constant import TraceMetadataKey as Key

    root = layout.spans[0]
    session_id = _first(spans["session_id"]) or _first(spans["trace_id"])
    tags = {SESSION_TAG: session_id, "service": _first(spans["service"]),
            "test_scenario_id": next((plain(r.get("test_scenario_id")) for r in rows
                                      if plain(r.get("test_scenario_id")) is not None), None),
            Key.SOURCE_RUN: run_id, TraceTagKey.TRACE_NAME: root.name}
    tokens = _token_usage(spans)
    metadata = {TRACE_SCHEMA_VERSION_KEY: str(TRACE_SCHEMA_VERSION), Key.SOURCE_RUN: run_id,
                Key.TRACE_SESSION: str(session_id), Key.INPUTS: trace_json(root.inputs)[:_METADATA_CHARS],
                Key.OUTPUTS: trace_json(root.outputs)[:_METADATA_CHARS]}
    if tokens is not None:
        metadata[Key.TOKEN_USAGE] = json.dumps(tokens)
    synthetic = bool(root.attributes.get("synthetic"))
    failed = any(span.error for span in layout.spans if span is root or (synthetic and span.parent_id == root.span_id))
    return TraceInfo(
        trace_id=layout.trace_id, trace_location=TraceLocation.from_experiment_id(experiment_id),
        request_time=root.start_ns // 1_000_000, execution_duration=(root.end_ns - root.start_ns) // 1_000_000,
        state=TraceState.ERROR if failed else TraceState.OK,
        request_preview=trace_json(root.inputs)[:_PREVIEW_CHARS],
        response_preview=trace_json(root.outputs)[:_PREVIEW_CHARS], trace_metadata=metadata,
        tags={key: str(value) for key, value in tags.items() if value is not None})


def _token_usage(spans: pd.DataFrame) -> dict[str, int] | None:
    """The model calls' tokens summed (the agent spans' when no model call reports any)."""
    for kind in ("llm", "agent"):
        part = spans[spans["kind"] == kind]
        if part[["tokens_in", "tokens_out"]].notna().any().any():
            tokens_in = int(pd.to_numeric(part["tokens_in"]).fillna(0).sum())
            tokens_out = int(pd.to_numeric(part["tokens_out"]).fillna(0).sum())
            return {"input_tokens": tokens_in, "output_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}
    return None


def _chat(text: Any, *, inputs: bool) -> Any:
    """A JSON list of chat messages in OpenAI's shape (inputs as ``{"messages": [...]}``, a single reply as the
    message itself); anything else as parsed JSON or the text."""
    value = parsed_json(text)
    if isinstance(value, list) and value and all(isinstance(m, Mapping) and "role" in m for m in value):
        messages = [openai_message(m) for m in value]
        if inputs:
            return {"messages": messages}
        return messages[0] if len(messages) == 1 else messages
    return value


def _int(value: Any) -> int | None:
    value = plain(value)
    return None if value is None else int(value)


def _first(column: pd.Series) -> Any:
    values = column.dropna()
    return None if values.empty else plain(values.iloc[0])
