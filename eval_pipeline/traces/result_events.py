"""Per-session, per-evaluator results written to CloudWatch Logs as the service writes them: one log event per
result, a JSON object in the OpenTelemetry log-record shape of a ``gen_ai.evaluation.result`` event (GenAI
semantic conventions: ``gen_ai.evaluation.name``, ``gen_ai.evaluation.score.value``,
``gen_ai.evaluation.score.label``, ``gen_ai.evaluation.explanation``, ``error.type``), parented to the span it
evaluates (``traceId``/``spanId``) with ``session.id``, the job's id/arn/name, and a ``body`` in the data plane's
``evaluationResults`` item shape.

Default destination: group ``/aws/bedrock-agentcore/evaluations/results/<batchEvaluationId>``, one stream named
after the job. ``put_log_events`` batches respect CloudWatch's limits (10,000 events, 1,048,576 bytes counting 26
bytes per event, 24 hours from first to last, chronological order).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd

from eval_pipeline.traces.request import CloudWatchOutput

RESULTS_GROUP_PREFIX = "/aws/bedrock-agentcore/evaluations/results/"
EVENT_NAME = "gen_ai.evaluation.result"
SCOPE_NAME = "eval_pipeline.traces"
MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
MAX_EVENT_BYTES = 262_144
"""An event's message plus its 26 bytes stays within 256 KiB (long explanations are shortened to fit)."""
MAX_BATCH_SPAN_MS = 24 * 3_600_000
TRUNCATED = " [truncated]"
BUILTIN_ARN = "arn:aws:bedrock-agentcore:::evaluator/{}"
JOB_ATTRIBUTES = {"batchEvaluationId": "aws.bedrock_agentcore.batch_evaluation.id",
                  "batchEvaluationArn": "aws.bedrock_agentcore.batch_evaluation.arn",
                  "batchEvaluationName": "aws.bedrock_agentcore.batch_evaluation.name"}


def result_destination(output: CloudWatchOutput, job: Mapping[str, str]) -> tuple[str, str]:
    """The (log group, log stream) results go to: the output's own names, else the service's defaults."""
    job_id = _job_value(job, "batchEvaluationId")
    group = output.logGroupName or (RESULTS_GROUP_PREFIX + job_id if job_id else None)
    if not group:
        raise ValueError("result events need outputConfig.cloudWatchConfig.logGroupName or the job's id")
    stream = output.logStreamName or _stream_name(_job_value(job, "batchEvaluationName") or job_id or "results")
    return group, stream


def write_result_events(results: pd.DataFrame, output: CloudWatchOutput, *, job: Mapping[str, str],
                        client: Any | None = None, region: str | None = None,
                        clock: Callable[[], float] | None = None) -> int:
    """Write one event per row of ``results`` (a TRACE_EVALUATIONS table); create the group and stream when
    missing. Returns the number of events written; raises when CloudWatch rejects any."""
    import time

    from eval_pipeline.traces.cloudwatch import logs_client

    client = client or logs_client(region)
    group, stream = result_destination(output, job)
    now_ms = int((clock or time.time)() * 1000)
    messages = [json.dumps(event, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
                for event in result_events(results, job=job, time_ms=now_ms)]
    _ensure_stream(client, group, stream)
    written = 0
    for batch in batches([(now_ms, message) for message in messages]):
        response = client.put_log_events(logGroupName=group, logStreamName=stream,
                                         logEvents=[{"timestamp": ts, "message": m} for ts, m in batch])
        rejected = response.get("rejectedLogEventsInfo")
        if rejected:
            raise RuntimeError(f"CloudWatch Logs rejected result events in {group}/{stream}: {rejected}")
        written += len(batch)
    return written


def result_events(results: pd.DataFrame, *, job: Mapping[str, str], time_ms: int) -> list[dict[str, Any]]:
    """The events for ``results``, in row order."""
    job_attributes = {JOB_ATTRIBUTES[key]: value for key in JOB_ATTRIBUTES if (value := _job_value(job, key))}
    return [result_event(row, job_attributes, time_ms) for row in _rows(results)]


def result_event(row: Mapping[str, Any], job_attributes: Mapping[str, str], time_ms: int) -> dict[str, Any]:
    """One result row as a ``gen_ai.evaluation.result`` log record (shortened to fit one CloudWatch event)."""
    value, label, explanation = _float(row.get("value")), _text(row.get("label")), _text(row.get("explanation"))
    error_code, error = _text(row.get("error_code")), _text(row.get("error"))
    evaluator_id = _text(row.get("evaluator_id")) or ""
    evaluator_name = _text(row.get("evaluator_name")) or evaluator_id
    context = {key: v for key, v in (("sessionId", _text(row.get("session_id"))),
                                      ("traceId", _text(row.get("trace_id"))),
                                      ("spanId", _text(row.get("span_id")))) if v}
    attributes: dict[str, Any] = {"event.name": EVENT_NAME, "gen_ai.evaluation.name": evaluator_name}
    optional = {"gen_ai.evaluation.score.value": value, "gen_ai.evaluation.score.label": label,
                "gen_ai.evaluation.explanation": explanation, "error.type": error_code,
                "session.id": context.get("sessionId"), "aws.bedrock_agentcore.evaluator.id": evaluator_id,
                "aws.bedrock_agentcore.evaluation.level": _text(row.get("level"))}
    attributes |= {key: v for key, v in optional.items() if v is not None} | dict(job_attributes)
    body: dict[str, Any] = {"evaluatorId": evaluator_id, "evaluatorName": evaluator_name,
                            "context": {"spanContext": context}}
    if evaluator_id.startswith("Builtin."):
        body["evaluatorArn"] = BUILTIN_ARN.format(evaluator_id)
    body |= {key: v for key, v in (("value", value), ("label", label), ("explanation", explanation),
                                    ("errorCode", error_code), ("errorMessage", error)) if v is not None}
    ignored = _ignored(row.get("ignored_reference_fields"))
    if ignored:
        body["ignoredReferenceInputFields"] = ignored
    tokens = {key: n for key, n in (("inputTokens", _int(row.get("tokens_in"))),
                                    ("outputTokens", _int(row.get("tokens_out")))) if n is not None}
    if tokens:
        body["tokenUsage"] = tokens | {"totalTokens": sum(tokens.values())}
    event: dict[str, Any] = {"resource": {"attributes": {"service.name": _text(row.get("model")) or "eval_pipeline"}},
                             "scope": {"name": SCOPE_NAME}, "timeUnixNano": time_ms * 1_000_000,
                             "observedTimeUnixNano": time_ms * 1_000_000,
                             "severityNumber": 17 if error_code or error else 9,
                             "severityText": "ERROR" if error_code or error else "INFO"}
    event |= {key: v for key, v in (("traceId", context.get("traceId")), ("spanId", context.get("spanId"))) if v}
    event |= {"attributes": attributes, "body": body}
    return _fitted(event)


def batches(events: Iterable[tuple[int, str]]) -> list[list[tuple[int, str]]]:
    """``(timestamp_ms, message)`` events in chronological order, cut into valid ``put_log_events`` batches."""
    out: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    size = 0
    for timestamp, message in sorted(events, key=lambda event: event[0]):
        cost = len(message.encode("utf-8")) + EVENT_OVERHEAD_BYTES
        if current and (len(current) >= MAX_BATCH_EVENTS or size + cost > MAX_BATCH_BYTES
                        or timestamp - current[0][0] > MAX_BATCH_SPAN_MS):
            out.append(current)
            current, size = [], 0
        current.append((timestamp, message))
        size += cost
    if current:
        out.append(current)
    return out


def _ensure_stream(client: Any, group: str, stream: str) -> None:
    exists = client.exceptions.ResourceAlreadyExistsException
    with contextlib.suppress(exists):
        client.create_log_group(logGroupName=group)
    with contextlib.suppress(exists):
        client.create_log_stream(logGroupName=group, logStreamName=stream)


def _fitted(event: dict[str, Any]) -> dict[str, Any]:
    """The event, its explanation shortened (in attributes and body alike) if it would exceed one event's size."""
    while (excess := _size(event) + EVENT_OVERHEAD_BYTES - MAX_EVENT_BYTES) > 0:
        explanation = event["body"].get("explanation")
        if not explanation:
            raise ValueError(f"a result event is {excess} bytes over CloudWatch's event size without explanation")
        raw = explanation.removesuffix(TRUNCATED).encode("utf-8")
        keep = max(0, len(raw) - excess // 2 - 256)
        short = raw[:keep].decode("utf-8", "ignore") + TRUNCATED
        event["body"]["explanation"] = short
        event["attributes"]["gen_ai.evaluation.explanation"] = short
    return event


def _size(event: dict[str, Any]) -> int:
    return len(json.dumps(event, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _rows(results: pd.DataFrame) -> Iterable[dict[str, Any]]:
    return results.to_dict("records") if not results.empty else []


def _job_value(job: Mapping[str, str], key: str) -> str | None:
    short = {"batchEvaluationId": "id", "batchEvaluationArn": "arn", "batchEvaluationName": "name"}[key]
    value = job.get(key) or job.get(short)
    return str(value) if value else None


def _stream_name(name: str) -> str:
    """A valid log stream name (no ``:`` or ``*``, at most 512 characters)."""
    return re.sub(r"[:*]", "_", name)[:512] or "results"


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _text(value: Any) -> str | None:
    return None if _missing(value) or value == "" else str(value)


def _float(value: Any) -> float | None:
    return None if _missing(value) else float(value)


def _int(value: Any) -> int | None:
    return None if _missing(value) else int(value)


def _ignored(value: Any) -> list[str]:
    if _missing(value) or value == "":
        return []
    if isinstance(value, str):
        parsed = json.loads(value)
        return [str(item) for item in parsed] if isinstance(parsed, list) else []
    return [str(item) for item in value]
