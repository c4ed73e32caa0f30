"""Result events written to CloudWatch Logs (moto on 127.0.0.1) in the service's layout, read back with
get_log_events; put_log_events batches within CloudWatch's limits."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from eval_pipeline.data.schemas import TRACE_EVALUATIONS
from eval_pipeline.traces import result_events
from eval_pipeline.traces.cloudwatch import logs_client
from eval_pipeline.traces.request import CloudWatchOutput
from eval_pipeline.traces.result_events import (
    EVENT_OVERHEAD_BYTES,
    MAX_BATCH_BYTES,
    MAX_EVENT_BYTES,
    batches,
    result_event,
    write_result_events,
)

JOB = {"batchEvaluationId": "be-0123456789", "batchEvaluationName": "nightly_eval",
       "batchEvaluationArn": "arn:aws:bedrock-agentcore:us-east-1:123456789012:batch-evaluation/be-0123456789"}
TRACE, SPAN = "6a012f806b92e0b069c910684a2f01d4", "e79d2156ac138f63"
NOW_S = 1_800_000_000.0


def _results() -> pd.DataFrame:
    rows = [
        {"session_id": "sess-1", "evaluator_id": "Builtin.TrajectoryInOrderMatch",
         "evaluator_name": "Builtin.TrajectoryInOrderMatch", "level": "SESSION", "value": 1.0, "score": 1.0,
         "label": "Match", "explanation": "expected tools appear in order", "model": "agent_a.DEFAULT",
         "ignored_reference_fields": json.dumps(["assertions"])},
        {"session_id": "sess-1", "trace_id": TRACE, "evaluator_id": "Builtin.Helpfulness",
         "evaluator_name": "Builtin.Helpfulness", "level": "TRACE", "value": 0.83, "score": 0.83,
         "label": "Very Helpful", "explanation": "answers the question", "model": "agent_a.DEFAULT",
         "ignored_reference_fields": "[]", "tokens_in": 120, "tokens_out": 30},
        {"session_id": "sess-3", "trace_id": TRACE, "span_id": SPAN, "evaluator_id": "domain_acc-AbCdEf1234",
         "evaluator_name": "domain_acc", "level": "TOOL_CALL", "value": math.nan, "score": math.nan,
         "model": "agent_a.DEFAULT", "ignored_reference_fields": "[]",
         "error_code": "LogEventMissingException", "error": "session sess-3 has spans but no event records"},
    ]
    return pd.DataFrame(rows, columns=TRACE_EVALUATIONS.names)


@pytest.fixture
def logs_env(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", aws_env)
    return aws_env


def _read_back(group: str, stream: str) -> list[dict]:
    events = logs_client().get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
    return events


def _now() -> float:
    import time

    return float(int(time.time()))            # moto refuses events older than 14 days: write at "now"


def test_results_are_written_in_the_service_layout(logs_env: str) -> None:
    now = _now()
    written = write_result_events(_results(), CloudWatchOutput(), job=JOB, clock=lambda: now)
    assert written == 3
    group = "/aws/bedrock-agentcore/evaluations/results/be-0123456789"
    events = _read_back(group, "nightly_eval")
    assert [e["timestamp"] for e in events] == [int(now * 1000)] * 3
    session, trace, tool = (json.loads(e["message"]) for e in events)

    assert "traceId" not in session and "spanId" not in session
    assert session["attributes"] == {
        "event.name": "gen_ai.evaluation.result", "gen_ai.evaluation.name": "Builtin.TrajectoryInOrderMatch",
        "gen_ai.evaluation.score.value": 1.0, "gen_ai.evaluation.score.label": "Match",
        "gen_ai.evaluation.explanation": "expected tools appear in order", "session.id": "sess-1",
        "aws.bedrock_agentcore.evaluator.id": "Builtin.TrajectoryInOrderMatch",
        "aws.bedrock_agentcore.evaluation.level": "SESSION",
        "aws.bedrock_agentcore.batch_evaluation.id": JOB["batchEvaluationId"],
        "aws.bedrock_agentcore.batch_evaluation.arn": JOB["batchEvaluationArn"],
        "aws.bedrock_agentcore.batch_evaluation.name": JOB["batchEvaluationName"]}
    assert session["body"] == {
        "evaluatorId": "Builtin.TrajectoryInOrderMatch", "evaluatorName": "Builtin.TrajectoryInOrderMatch",
        "evaluatorArn": "arn:aws:bedrock-agentcore:::evaluator/Builtin.TrajectoryInOrderMatch",
        "context": {"spanContext": {"sessionId": "sess-1"}}, "value": 1.0, "label": "Match",
        "explanation": "expected tools appear in order", "ignoredReferenceInputFields": ["assertions"]}
    assert session["timeUnixNano"] == int(now * 1000) * 1_000_000
    assert session["severityText"] == "INFO" and session["resource"]["attributes"]["service.name"] == "agent_a.DEFAULT"

    assert trace["traceId"] == TRACE and "spanId" not in trace
    assert trace["body"]["context"] == {"spanContext": {"sessionId": "sess-1", "traceId": TRACE}}
    assert trace["body"]["tokenUsage"] == {"inputTokens": 120, "outputTokens": 30, "totalTokens": 150}
    assert trace["attributes"]["gen_ai.evaluation.score.value"] == 0.83

    assert (tool["traceId"], tool["spanId"]) == (TRACE, SPAN)
    assert tool["severityText"] == "ERROR"
    assert tool["attributes"]["error.type"] == "LogEventMissingException"
    assert "gen_ai.evaluation.score.value" not in tool["attributes"]       # no value: no score, never NaN
    assert tool["body"]["errorCode"] == "LogEventMissingException"
    assert tool["body"]["errorMessage"] == "session sess-3 has spans but no event records"
    assert "evaluatorArn" not in tool["body"] and "value" not in tool["body"]


def test_named_group_and_stream_are_created_once_and_appended_to(logs_env: str) -> None:
    output = CloudWatchOutput(logGroupName="/my/results", logStreamName="run:1*")
    now = _now()
    assert write_result_events(_results(), output, job=JOB, clock=lambda: now) == 3
    assert write_result_events(_results().iloc[:1], output, job=JOB, clock=lambda: now + 1) == 1
    events = _read_back("/my/results", "run:1*")
    assert len(events) == 4 and events[-1]["timestamp"] == int((now + 1) * 1000)


def test_default_stream_is_a_valid_name(logs_env: str) -> None:
    group, stream = result_events.result_destination(CloudWatchOutput(), {"id": "be-9", "name": "a:b*c"})
    assert (group, stream) == ("/aws/bedrock-agentcore/evaluations/results/be-9", "a_b_c")
    with pytest.raises(ValueError, match="logGroupName"):
        result_events.result_destination(CloudWatchOutput(), {})


def test_many_events_go_in_several_chronological_batches(logs_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(result_events, "MAX_BATCH_EVENTS", 4)
    frame = pd.concat([_results()] * 5, ignore_index=True)
    calls: list[int] = []
    client = logs_client()
    client.meta.events.register("provide-client-params.cloudwatch-logs.PutLogEvents",
                                lambda params, **_: calls.append(len(params["logEvents"])))
    now = _now()
    assert write_result_events(frame, CloudWatchOutput(), job=JOB, client=client, clock=lambda: now) == 15
    assert calls == [4, 4, 4, 3]
    events = _read_back("/aws/bedrock-agentcore/evaluations/results/be-0123456789", "nightly_eval")
    assert [json.loads(e["message"])["attributes"]["session.id"] for e in events] == \
        ["sess-1", "sess-1", "sess-3"] * 5


def test_batches_respect_count_bytes_span_and_order() -> None:
    # count: 10,001 tiny events -> 10,000 + 1
    tiny = [(1000, "x")] * 10_001
    assert [len(b) for b in batches(tiny)] == [10_000, 1]
    # bytes: each event costs 100,000 + 26 bytes; 1,048,576 // 100,026 = 10 fit in one batch
    big = [(1000 + i, "y" * 100_000) for i in range(25)]
    sizes = [len(b) for b in batches(big)]
    assert sizes == [10, 10, 5]
    assert all(sum(len(m) + EVENT_OVERHEAD_BYTES for _, m in b) <= MAX_BATCH_BYTES for b in batches(big))
    # chronological order and the 24-hour span
    day = 24 * 3_600_000
    mixed = [(5 + day, "c"), (0, "a"), (day, "b"), (day + 6, "d")]
    assert batches(mixed) == [[(0, "a"), (day, "b")], [(5 + day, "c"), (day + 6, "d")]]


def test_a_long_explanation_is_shortened_to_fit_one_event() -> None:
    row = _results().iloc[1].to_dict() | {"explanation": "é" * 200_000}        # 400,000 bytes in UTF-8
    event = result_event(row, {}, 1000)
    size = len(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()) + EVENT_OVERHEAD_BYTES
    assert MAX_EVENT_BYTES - 2048 < size <= MAX_EVENT_BYTES
    assert event["body"]["explanation"].endswith(" [truncated]")
    assert event["attributes"]["gen_ai.evaluation.explanation"] == event["body"]["explanation"]
