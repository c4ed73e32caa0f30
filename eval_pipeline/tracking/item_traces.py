"""Each item of an answers table as an MLflow trace in the model's run, its scores and judgments as assessments.

MLflow's GenAI views (the experiment's Traces tab, the run's Traces tab, and "Evaluation runs") list traces with
their assessments as columns: one trace per row of the production table (item × sample index) puts our per-item
results there, browsable item by item.

A trace: a root span ``item`` (type CHAIN; inputs ``{"input": <prompt>}`` or ``{"messages": [...]}`` for chat
input, plus the choices of a multiple-choice item; outputs the model's output) and under it one span for the
model's call (``generation``; CHAT_MODEL with ``{"messages": [...]}`` in OpenAI's chat shape when the sample holds
messages, else LLM with the prompt), carrying tokens (``mlflow.chat.tokenUsage``), cost, latency, finish reason,
cache hit and request hash; an errored generation marks both ERROR. The spans end when they are logged and last
the call's recorded latency (the generations table records durations, not clock times).

Assessments (``trace.info.assessments``):

- one ``Feedback`` per scores row: name = the scorer, value = the score, source CODE with the scorer's name,
  metadata = what the scorer extracted and its request hash;
- one ``Feedback`` per judgments row: name = the judge metric, value = the score (0–1), rationale = the judge's
  explanation, source LLM_JUDGE with the judge model, metadata = the rating label, the judge's request hash;
- an errored score or judgment (or one without a value) is a ``Feedback`` with an ``AssessmentError`` and no
  value, never a 0;
- the reference as an ``Expectation`` named ``expected_response`` (MLflow's name for a reference answer).

Tags ``sample_id``, ``sample_index``, ``model`` and ``mlflow.sourceRun`` (also in the metadata), so
``mlflow.search_traces(run_id=...)`` finds them. Trace ids are derived from the run and the item, and an item
already traced in the run is skipped: logging again (a retried step) adds no duplicates.

Written in bulk: the spans of a batch of items in one store call, and each trace's info with its assessments in
one transaction (``store_trace``); no global MLflow state is read or set.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd

from eval_pipeline.tracking.chat_shape import openai_message
from eval_pipeline.tracking.mlflow_log import tracking_client
from eval_pipeline.tracking.trace_store import (
    FinishedSpan,
    parsed_json,
    plain,
    store_traces,
    trace_json,
    traced_tag_values,
)

ROOT_SPAN_NAME = "item"
GENERATION_SPAN_NAME = "generation"
ITEM_TAG = "item_key"
"""The trace tag naming the item (``<sample_id>#<sample_index>``): what makes logging again add nothing."""
EXPECTATION_NAME = "expected_response"
SCORE_ERROR = "ScorerError"
JUDGE_ERROR = "JudgeError"
MISSING_VALUE = "MissingValue"
BATCH_ITEMS = 2000
_PREVIEW_CHARS = 1000
_METADATA_CHARS = 250

ItemKey = tuple[str, int]


def item_key(sample_id: Any, sample_index: Any) -> ItemKey:
    """The key of one item × sample index."""
    index = plain(sample_index)
    return str(plain(sample_id)), int(index) if index is not None else 0


def item_trace_id(run_id: str, key: ItemKey) -> str:
    """The trace id of an item in a run: ``tr-`` + 32 hex digits of a hash of both."""
    digest = hashlib.sha256(f"{run_id}\0{key[0]}\0{key[1]}".encode()).hexdigest()
    return f"tr-{digest[:32]}"


def item_assessments(scores: pd.DataFrame | None, judgments: pd.DataFrame | None, *,
                     run_id: str | None = None) -> dict[ItemKey, list[Any]]:
    """The scores' and judgments' rows as MLflow ``Feedback`` assessments, by item."""
    from mlflow.entities import AssessmentSource, AssessmentSourceType

    grouped: dict[ItemKey, list[Any]] = {}
    for row in _records(scores):
        get = _getter(row)
        source = AssessmentSource(source_type=AssessmentSourceType.CODE, source_id=str(get("scorer")))
        feedback = _feedback(str(get("scorer")), get("score"), get("error"), SCORE_ERROR, source, None,
                             {"extracted": get("extracted"), "request_hash": get("request_hash")}, run_id)
        grouped.setdefault(item_key(get("sample_id"), get("sample_index")), []).append(feedback)
    for row in _records(judgments):
        get = _getter(row)
        source = AssessmentSource(source_type=AssessmentSourceType.LLM_JUDGE, source_id=str(get("judge_model")))
        feedback = _feedback(str(get("metric")), get("score"), get("error"), JUDGE_ERROR, source,
                             get("explanation"), {"label": get("label"), "judge_request_hash":
                                                  get("judge_request_hash"), "cached": get("cached")}, run_id)
        grouped.setdefault(item_key(get("sample_id"), get("sample_index")), []).append(feedback)
    return grouped


def log_item_traces(samples: pd.DataFrame, produced: pd.DataFrame, scores: pd.DataFrame | None,
                    judgments: pd.DataFrame | None, *, tracking_uri: str, run_id: str,
                    clock: Callable[[], float] | None = None) -> int:
    """Log each row of ``produced`` (a generations table) as a trace in run ``run_id`` (its experiment), with its
    scores and judgments as assessments and its sample's reference as an expectation; the number of traces newly
    logged (items already traced in the run are skipped)."""
    from mlflow.tracing.client import TracingClient

    client = tracking_client(tracking_uri)
    experiment_id = client.get_run(run_id).info.experiment_id
    tracing = TracingClient(tracking_uri)
    done = set(traced_tag_values(client, experiment_id, run_id, ITEM_TAG))
    by_sample = {str(plain(row["sample_id"])): row for row in _records(samples)}
    assessments = item_assessments(scores, judgments, run_id=run_id)
    now = (clock or time.time)()
    pending = []
    for row in _records(produced):
        key = item_key(row.get("sample_id"), row.get("sample_index"))
        if _key_text(key) in done:
            continue
        done.add(_key_text(key))
        pending.append(item_trace(row, by_sample.get(key[0], {}), assessments.get(key, []), run_id=run_id,
                                  experiment_id=experiment_id, end_s=now))
    for start in range(0, len(pending), BATCH_ITEMS):
        store_traces(tracing, experiment_id, pending[start:start + BATCH_ITEMS])
    return len(pending)


def item_trace(row: Mapping[str, Any], sample: Mapping[str, Any], assessments: list[Any], *, run_id: str,
               experiment_id: str, end_s: float) -> tuple[Any, list[FinishedSpan]]:
    """One generations row as (TraceInfo with its assessments, spans)."""
    from mlflow.entities import TraceInfo, TraceLocation, TraceState
    from mlflow.tracing.constant import TRACE_SCHEMA_VERSION, TRACE_SCHEMA_VERSION_KEY, TraceTagKey
    from mlflow.tracing.constant import TraceMetadataKey as Key

    get = _getter(row)
    key = item_key(get("sample_id"), get("sample_index"))
    trace_id = item_trace_id(run_id, key)
    spans = _spans(trace_id, row, sample, end_s)
    root = spans[0]
    tokens_in, tokens_out = int(get("tokens_in") or 0), int(get("tokens_out") or 0)
    tags = {"sample_id": key[0], "sample_index": str(key[1]), "model": str(get("model")), ITEM_TAG: _key_text(key),
            Key.SOURCE_RUN: run_id, TraceTagKey.TRACE_NAME: ROOT_SPAN_NAME}
    metadata = {TRACE_SCHEMA_VERSION_KEY: str(TRACE_SCHEMA_VERSION), Key.SOURCE_RUN: run_id,
                Key.INPUTS: trace_json(root.inputs)[:_METADATA_CHARS],
                Key.OUTPUTS: trace_json(root.outputs)[:_METADATA_CHARS],
                Key.TOKEN_USAGE: json.dumps({"input_tokens": tokens_in, "output_tokens": tokens_out,
                                             "total_tokens": tokens_in + tokens_out})}
    reference = _expectation(sample, run_id)
    attached = [*assessments, *([reference] if reference is not None else [])]
    for assessment in attached:
        assessment.trace_id = trace_id
    info = TraceInfo(
        trace_id=trace_id, trace_location=TraceLocation.from_experiment_id(experiment_id),
        request_time=root.start_ns // 1_000_000, execution_duration=(root.end_ns - root.start_ns) // 1_000_000,
        state=TraceState.ERROR if root.error else TraceState.OK,
        request_preview=_preview(root.inputs), response_preview=_preview(root.outputs),
        trace_metadata=metadata, tags=tags, assessments=attached)
    return info, spans


# --- pieces -------------------------------------------------------------------------------------------------


def _spans(trace_id: str, row: Mapping[str, Any], sample: Mapping[str, Any], end_s: float) -> list[FinishedSpan]:
    get, sample_get = _getter(row), _getter(sample)
    end_ns = int(end_s * 1e9)
    start_ns = end_ns - int(max(float(get("latency_s") or 0.0), 0.0) * 1e9)
    messages = _messages(sample_get("input"), sample_get("input_kind"))
    inputs: dict[str, Any] = {"messages": messages} if messages is not None else {"input": sample_get("input")}
    choices = parsed_json(sample_get("choices"))
    if choices is not None:
        inputs["choices"] = choices
    output, error = get("output"), get("error")
    root_id, call_id = _span_id(trace_id, 0), _span_id(trace_id, 1)
    tokens_in, tokens_out = int(get("tokens_in") or 0), int(get("tokens_out") or 0)
    call_attributes = {
        "mlflow.chat.tokenUsage": {"input_tokens": tokens_in, "output_tokens": tokens_out,
                                   "total_tokens": tokens_in + tokens_out},
        "model": get("model"), "finish_reason": get("finish_reason"), "latency_s": get("latency_s"),
        "cost_usd": get("cost_usd"), "cached": get("cached"), "request_hash": get("request_hash")}
    if messages is not None:
        call = FinishedSpan(span_id=call_id, parent_id=root_id, name=GENERATION_SPAN_NAME, span_type="CHAT_MODEL",
                            start_ns=start_ns, end_ns=end_ns, inputs={"messages": messages},
                            outputs=None if output is None else {"role": "assistant", "content": output},
                            error=error, attributes=call_attributes)
    else:
        call = FinishedSpan(span_id=call_id, parent_id=root_id, name=GENERATION_SPAN_NAME, span_type="LLM",
                            start_ns=start_ns, end_ns=end_ns, inputs={"prompt": sample_get("input")}, outputs=output,
                            error=error, attributes=call_attributes)
    root = FinishedSpan(span_id=root_id, parent_id=None, name=ROOT_SPAN_NAME, span_type="CHAIN", start_ns=start_ns,
                        end_ns=end_ns, inputs=inputs, outputs=output, error=error,
                        attributes={"sample_id": get("sample_id"), "sample_index": get("sample_index"),
                                    "category": sample_get("category")})
    return [root, call]


def _feedback(name: str, value: Any, error: Any, error_code: str, source: Any, rationale: Any,
              metadata: Mapping[str, Any], run_id: str | None) -> Any:
    """A Feedback with the value, or with an AssessmentError (and no value) when there is an error or no value."""
    from mlflow.entities import AssessmentError, Feedback
    from mlflow.tracing.constant import AssessmentMetadataKey

    meta = {key: str(item) for key, item in metadata.items() if item is not None}
    if run_id is not None:
        meta[AssessmentMetadataKey.SOURCE_RUN_ID] = run_id
    common = {"name": name, "source": source, "rationale": None if rationale is None else str(rationale),
              "metadata": meta}
    if error is not None or value is None:
        code = error_code if error is not None else MISSING_VALUE
        message = str(error) if error is not None else f"{name}: no value and no error recorded"
        return Feedback(error=AssessmentError(error_code=code, error_message=message), **common)
    return Feedback(value=float(value), **common)


def _expectation(sample: Mapping[str, Any], run_id: str) -> Any:
    """The sample's reference as an Expectation (None when it has none)."""
    from mlflow.entities import AssessmentSource, AssessmentSourceType, Expectation
    from mlflow.tracing.constant import AssessmentMetadataKey

    reference = plain(sample.get("reference"))
    if reference is None:
        return None
    source = AssessmentSource(source_type=AssessmentSourceType.HUMAN,
                              source_id=str(plain(sample.get("source")) or "dataset"))
    metadata = {AssessmentMetadataKey.SOURCE_RUN_ID: run_id}
    if plain(sample.get("line")) is not None:
        metadata["line"] = str(plain(sample.get("line")))
    return Expectation(name=EXPECTATION_NAME, value=str(reference), source=source, metadata=metadata)


def _messages(text: Any, kind: Any) -> list[dict[str, Any]] | None:
    """The sample's chat messages in OpenAI's shape, or None for a text prompt."""
    if kind != "messages" or not isinstance(text, str):
        return None
    value = parsed_json(text)
    if isinstance(value, list) and all(isinstance(message, Mapping) for message in value):
        return [openai_message(message) for message in value]
    return None


def _preview(value: Any) -> str:
    return (value if isinstance(value, str) else trace_json(value))[:_PREVIEW_CHARS]


def _span_id(trace_id: str, index: int) -> int:
    return int(hashlib.sha256(f"{trace_id}\0{index}".encode()).hexdigest()[:16], 16) or 1


def _key_text(key: ItemKey) -> str:
    return f"{key[0]}#{key[1]}"


def _records(frame: pd.DataFrame | None) -> Iterable[dict[str, Any]]:
    return [] if frame is None or frame.empty else frame.to_dict("records")


def _getter(row: Mapping[str, Any]) -> Callable[[str], Any]:
    return lambda name: plain(row.get(name))
