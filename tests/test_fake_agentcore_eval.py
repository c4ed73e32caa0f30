"""The fake AgentCore evaluation data plane, driven by the real boto3 client: each operation's serialization and
parsing round-trips through botocore; malformed requests are rejected as the service rejects them."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.fakes.agentcore_eval import (
    RESULTS_LOG_GROUP_PREFIX,
    FakeAgentCoreEvaluations,
    JobScript,
    ScriptedResult,
    route,
)

SOURCE = {"cloudWatchLogs": {"serviceNames": ["my_agent.DEFAULT"],
                             "logGroupNames": ["/aws/bedrock-agentcore/runtimes/my_agent-AbC123-DEFAULT"],
                             "filterConfig": {"sessionIds": ["s1", "s2"],
                                              "timeRange": {"startTime": datetime(2026, 11, 1, tzinfo=UTC),
                                                            "endTime": datetime(2026, 11, 2, tzinfo=UTC)}}}}
EVALUATORS = [{"evaluatorId": "Builtin.Helpfulness"}, {"evaluatorId": "Builtin.TrajectoryInOrderMatch"}]
TOKEN = "t" * 40


@pytest.fixture
def fake():
    with FakeAgentCoreEvaluations() as server:
        yield server


def client_for(fake: FakeAgentCoreEvaluations, **config: object):
    return boto3.client("bedrock-agentcore", region_name="us-east-1", endpoint_url=fake.url,
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, **config))


def start(client, name: str = "nightly", **extra: object) -> dict:
    return client.start_batch_evaluation(batchEvaluationName=name, evaluators=EVALUATORS,
                                         dataSourceConfig=SOURCE, **extra)


def test_routes_come_from_the_installed_service_model(fake) -> None:
    model = fake.model
    assert route(model, "POST", "/evaluations/batch-evaluate") == ("StartBatchEvaluation", {})
    assert route(model, "GET", "/evaluations/batch-evaluate") == ("ListBatchEvaluations", {})
    assert route(model, "GET", "/evaluations/batch-evaluate/j-abcdefghij") == \
        ("GetBatchEvaluation", {"batchEvaluationId": "j-abcdefghij"})
    assert route(model, "POST", "/evaluations/batch-evaluate/j-abcdefghij/stop")[0] == "StopBatchEvaluation"
    assert route(model, "DELETE", "/evaluations/batch-evaluate/j-abcdefghij")[0] == "DeleteBatchEvaluation"
    assert route(model, "POST", "/evaluations/evaluate/Builtin.Helpfulness") == \
        ("Evaluate", {"evaluatorId": "Builtin.Helpfulness"})
    assert route(model, "PUT", "/evaluations/batch-evaluate") is None


def test_start_and_get_round_trip_through_botocore(fake) -> None:
    fake.script = JobScript(pending_polls=1, running_polls=2, results=[
        ScriptedResult("s1", "Builtin.Helpfulness", 0.83, "Very Helpful", trace_id="a" * 32),
        ScriptedResult("s2", "Builtin.Helpfulness", 0.5, "Somewhat Helpful", trace_id="b" * 32),
        ScriptedResult("s1", "Builtin.TrajectoryInOrderMatch", 1.0, "Match"),
        ScriptedResult("s2", "Builtin.TrajectoryInOrderMatch", error_code="MissingGroundTruth",
                       error_message="no expectedTrajectory")])
    client = client_for(fake)
    started = start(client, clientToken=TOKEN, description="calibration")
    assert started["ResponseMetadata"]["HTTPStatusCode"] == 202
    job_id = started["batchEvaluationId"]
    assert job_id.startswith("nightly-") and started["status"] == "PENDING"
    assert started["batchEvaluationArn"].endswith(f":batch-evaluation/{job_id}")
    assert isinstance(started["createdAt"], datetime)
    assert started["outputConfig"]["cloudWatchConfig"] == {"logGroupName": f"{RESULTS_LOG_GROUP_PREFIX}/{job_id}",
                                                           "logStreamName": job_id}
    # what reached the wire: the service's members, the timestamps as botocore serialized them
    operation, params = fake.requests[0]
    assert operation == "StartBatchEvaluation" and params["clientToken"] == TOKEN
    assert params["dataSourceConfig"]["cloudWatchLogs"]["filterConfig"]["timeRange"]["startTime"] == \
        "2026-11-01T00:00:00Z"
    statuses = [client.get_batch_evaluation(batchEvaluationId=job_id)["status"] for _ in range(5)]
    assert statuses == ["PENDING", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED", "COMPLETED"]
    final = client.get_batch_evaluation(batchEvaluationId=job_id)
    assert final["dataSourceConfig"]["cloudWatchLogs"]["filterConfig"]["timeRange"]["endTime"] == \
        datetime(2026, 11, 2, tzinfo=UTC)
    results = final["evaluationResults"]
    assert (results["totalNumberOfSessions"], results["numberOfSessionsCompleted"],
            results["numberOfSessionsFailed"], results["numberOfSessionsInProgress"]) == (2, 1, 1, 0)
    assert results["evaluatorSummaries"] == [
        {"evaluatorId": "Builtin.Helpfulness", "statistics": {"averageScore": pytest.approx((0.83 + 0.5) / 2)},
         "totalEvaluated": 2, "totalFailed": 0},
        {"evaluatorId": "Builtin.TrajectoryInOrderMatch", "statistics": {"averageScore": 1.0},
         "totalEvaluated": 1, "totalFailed": 1}]
    assert final["description"] == "calibration" and isinstance(final["updatedAt"], datetime)


def test_failed_job_reports_error_details(fake) -> None:
    fake.scripts["broken"] = JobScript(pending_polls=0, running_polls=0, final_status="FAILED",
                                       error_details=["LogEventMissingException: no events for 2 sessions"])
    client = client_for(fake)
    job_id = start(client, "broken")["batchEvaluationId"]
    got = client.get_batch_evaluation(batchEvaluationId=job_id)
    assert got["status"] == "FAILED"
    assert got["errorDetails"] == ["LogEventMissingException: no events for 2 sessions"]
    assert "evaluationResults" not in got


def test_list_pages_with_max_results_and_next_token(fake) -> None:
    client = client_for(fake)
    ids = [start(client, f"job_{n}")["batchEvaluationId"] for n in range(3)]
    first = client.list_batch_evaluations(maxResults=2)
    assert [job["batchEvaluationId"] for job in first["batchEvaluations"]] == ids[:2]
    second = client.list_batch_evaluations(maxResults=2, nextToken=first["nextToken"])
    assert [job["batchEvaluationId"] for job in second["batchEvaluations"]] == ids[2:]
    assert "nextToken" not in second
    paged = [job["batchEvaluationName"] for page in client.get_paginator("list_batch_evaluations").paginate(
        PaginationConfig={"PageSize": 1}) for job in page["batchEvaluations"]]
    assert paged == ["job_0", "job_1", "job_2"]
    assert fake.requests[-1] == ("ListBatchEvaluations", {"maxResults": 1, "nextToken": "2"})


def test_stop_then_delete(fake) -> None:
    fake.script = JobScript(pending_polls=100)
    client = client_for(fake)
    job_id = start(client)["batchEvaluationId"]
    stopped = client.stop_batch_evaluation(batchEvaluationId=job_id)
    assert (stopped["status"], stopped["ResponseMetadata"]["HTTPStatusCode"]) == ("STOPPING", 202)
    assert client.get_batch_evaluation(batchEvaluationId=job_id)["status"] == "STOPPED"
    with pytest.raises(client.exceptions.ConflictException):
        client.stop_batch_evaluation(batchEvaluationId=job_id)
    deleted = client.delete_batch_evaluation(batchEvaluationId=job_id)
    assert deleted["status"] == "DELETING" and deleted["batchEvaluationId"] == job_id
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_batch_evaluation(batchEvaluationId=job_id)


def test_delete_of_a_running_job_is_a_conflict(fake) -> None:
    fake.script = JobScript(pending_polls=100)
    client = client_for(fake)
    job_id = start(client)["batchEvaluationId"]
    with pytest.raises(client.exceptions.ConflictException, match="stop it before deleting"):
        client.delete_batch_evaluation(batchEvaluationId=job_id)


def test_evaluate_round_trip(fake) -> None:
    seen = []

    def judge(evaluator_id, params):
        seen.append((evaluator_id, params))
        return [{"value": 0.5, "label": "Somewhat", "explanation": "ok",
                 "context": {"spanContext": {"sessionId": "s1", "traceId": "c" * 32}},
                 "tokenUsage": {"inputTokens": 10, "outputTokens": 2, "totalTokens": 12},
                 "ignoredReferenceInputFields": ["assertions"]}]

    fake.evaluate_fn = judge
    client = client_for(fake)
    spans = [{"traceId": "c" * 32, "spanId": "d" * 16, "attributes": {"session.id": "s1"}, "body": {"x": [1, 2.5]}}]
    reference = [{"context": {"spanContext": {"sessionId": "s1", "traceId": "c" * 32}},
                  "expectedResponse": {"text": "Booked"}, "assertions": [{"text": "books one flight"}]}]
    answer = client.evaluate(evaluatorId="my_judge-AbCdE12345", evaluationInput={"sessionSpans": spans},
                             evaluationTarget={"traceIds": ["c" * 32]}, evaluationReferenceInputs=reference)
    result = answer["evaluationResults"][0]
    assert result["evaluatorId"] == "my_judge-AbCdE12345" and result["evaluatorName"] == "my_judge"
    assert result["evaluatorArn"] == "arn:aws:bedrock-agentcore:us-east-1:123456789012:evaluator/my_judge-AbCdE12345"
    assert (result["value"], result["label"], result["ignoredReferenceInputFields"]) == (0.5, "Somewhat",
                                                                                       ["assertions"])
    assert result["tokenUsage"]["totalTokens"] == 12
    evaluator_id, params = seen[0]
    assert evaluator_id == "my_judge-AbCdE12345"
    assert params["evaluationInput"]["sessionSpans"] == spans  # the documents arrive as sent
    assert params["evaluationReferenceInputs"] == reference


def test_evaluate_default_answers_one_result_per_trace(fake) -> None:
    client = client_for(fake)
    spans = [{"traceId": t * 32, "spanId": "d" * 16, "attributes": {"session.id": "s9"}} for t in "ab"]
    results = client.evaluate(evaluatorId="Builtin.Helpfulness",
                              evaluationInput={"sessionSpans": spans})["evaluationResults"]
    assert [r["context"]["spanContext"] for r in results] == [{"sessionId": "s9", "traceId": "a" * 32},
                                                             {"sessionId": "s9", "traceId": "b" * 32}]
    assert results[0]["evaluatorArn"] == "arn:aws:bedrock-agentcore:::evaluator/Builtin.Helpfulness"


def test_client_token_replay_and_conflicts(fake) -> None:
    client = client_for(fake)
    first = start(client, clientToken=TOKEN)
    again = start(client, clientToken=TOKEN)
    assert again["batchEvaluationId"] == first["batchEvaluationId"] and fake.started == 1
    with pytest.raises(client.exceptions.ConflictException, match="different StartBatchEvaluation"):
        client.start_batch_evaluation(batchEvaluationName="nightly", evaluators=EVALUATORS[:1],
                                      dataSourceConfig=SOURCE, clientToken=TOKEN)
    with pytest.raises(client.exceptions.ConflictException, match="already exists"):
        start(client, clientToken="u" * 40)  # same name, another token
    assert fake.started == 1


@pytest.mark.parametrize(("operation", "kwargs", "message"), [
    ("start_batch_evaluation", {"batchEvaluationName": "1starts_with_a_digit", "dataSourceConfig": SOURCE},
     "batchEvaluationName"),
    ("start_batch_evaluation", {"batchEvaluationName": "x", "dataSourceConfig": SOURCE,
                                "evaluators": [{"evaluatorId": "Builtin.Helpfulness"}] * 11}, "at most 10"),
    ("start_batch_evaluation", {"batchEvaluationName": "x", "dataSourceConfig": SOURCE, "evaluators": [
        {"evaluatorId": "not an id"}]}, "evaluators[0].evaluatorId"),
    ("start_batch_evaluation", {"batchEvaluationName": "x"}, "dataSourceConfig"),
    ("start_batch_evaluation", {"batchEvaluationName": "x", "dataSourceConfig": {"cloudWatchLogs": {
        "serviceNames": ["a"]}, "onlineEvaluationConfigSource": {"onlineEvaluationConfigArn": "x"}}}, "union"),
    ("start_batch_evaluation", {"batchEvaluationName": "x", "dataSourceConfig": SOURCE, "outputConfig": {
        "cloudWatchConfig": {"resultDestination": "SOMEWHERE"}}}, "resultDestination"),
    ("start_batch_evaluation", {"batchEvaluationName": "x", "dataSourceConfig": SOURCE, "clientToken": "short"},
     "clientToken"),
    ("evaluate", {"evaluatorId": "Builtin.Helpfulness", "evaluationInput": {"sessionSpans": []}}, "sessionSpans"),
    ("evaluate", {"evaluatorId": "Builtin.Helpfulness", "evaluationInput": {"sessionSpans": [{}]},
                  "evaluationTarget": {"traceIds": ["short"]}}, "traceIds"),
    ("list_batch_evaluations", {"maxResults": 1000}, "maxResults"),
])
def test_malformed_requests_are_validation_exceptions(fake, operation, kwargs, message) -> None:
    client = client_for(fake, parameter_validation=False)  # what a client that skips botocore's checks sends
    with pytest.raises(client.exceptions.ValidationException) as caught:
        getattr(client, operation)(**kwargs)
    assert message in caught.value.response["Error"]["Message"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert fake.started == 0


def test_a_body_that_is_not_json_is_rejected(fake) -> None:
    reply = requests.post(f"{fake.url}/evaluations/batch-evaluate", data=b"{not json", timeout=5)
    assert reply.status_code == 400 and reply.headers["x-amzn-ErrorType"] == "ValidationException"
    assert "malformed request" in reply.json()["message"]
    extra = requests.post(f"{fake.url}/evaluations/batch-evaluate", timeout=5, data=json.dumps(
        {"batchEvaluationName": "x", "dataSourceConfig": {"cloudWatchLogs": {"serviceNames": ["a"]}},
         "rollouts": {"path": "r"}}))  # self-hosted members botocore would not even serialize
    assert extra.status_code == 400 and "Unknown parameter in input: \"rollouts\"" in extra.json()["message"]
    nested = requests.post(f"{fake.url}/evaluations/batch-evaluate", timeout=5, data=json.dumps(
        {"batchEvaluationName": "x", "dataSourceConfig": {"files": {"paths": ["spans.jsonl"]}}}))
    assert nested.status_code == 400 and "Unknown parameter in dataSourceConfig" in nested.json()["message"]
    unknown = requests.put(f"{fake.url}/evaluations/batch-evaluate", data=b"{}", timeout=5)
    assert unknown.status_code == 404 and unknown.headers["x-amzn-ErrorType"] == "UnknownOperationException"


def test_a_reply_off_the_model_fails_loudly(fake) -> None:
    fake.evaluate_fn = lambda evaluator_id, params: [{"value": 1.0}]  # no context: the model requires one
    client = client_for(fake)
    with pytest.raises(client.exceptions.InternalServerException, match="reply off the model"):
        client.evaluate(evaluatorId="Builtin.Helpfulness", evaluationInput={"sessionSpans": [{}]})


def test_scripted_faults_are_retried_by_a_standard_mode_client(fake) -> None:
    fake.service.fail_next("throttle")
    client = boto3.client("bedrock-agentcore", region_name="us-east-1", endpoint_url=fake.url,
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          config=Config(retries={"mode": "standard", "total_max_attempts": 3}))
    answer = client.list_batch_evaluations()
    assert answer["ResponseMetadata"]["RetryAttempts"] == 1
    assert len(fake.service.attempts) == 2 and fake.calls["ListBatchEvaluations"] == 1
    fake.service.fail_next("internal")
    with pytest.raises(ClientError) as caught:
        client_for(fake).list_batch_evaluations()
    assert caught.value.response["Error"]["Code"] == "InternalServerException"


def test_completed_job_writes_result_events_to_its_log_group(aws_env, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", aws_env)
    with FakeAgentCoreEvaluations(logs_endpoint=aws_env) as fake:
        fake.script = JobScript(pending_polls=0, running_polls=0, results=[
            ScriptedResult("s1", "Builtin.Helpfulness", 0.83, "Very Helpful", "fine", trace_id="a" * 32,
                           span_id="e" * 16),
            ScriptedResult("s2", "Builtin.Helpfulness", error_code="LogEventMissingException",
                           error_message="no event records")])
        client = client_for(fake)
        job_id = start(client, outputConfig={"cloudWatchConfig": {"logGroupName": "/calibration/results",
                                                                  "logStreamName": "run-1"}})["batchEvaluationId"]
        assert client.get_batch_evaluation(batchEvaluationId=job_id)["status"] == "COMPLETED"
        assert fake.events_written == {job_id: 2}
    logs = boto3.client("logs", region_name="us-east-1")
    events = logs.filter_log_events(logGroupName="/calibration/results", logStreamNames=["run-1"])["events"]
    records = [json.loads(event["message"]) for event in events]
    assert [r["attributes"]["session.id"] for r in records] == ["s1", "s2"]
    first = records[0]
    assert (first["traceId"], first["spanId"]) == ("a" * 32, "e" * 16)
    assert first["attributes"]["event.name"] == "gen_ai.evaluation.result"
    assert first["attributes"]["gen_ai.evaluation.score.value"] == 0.83
    assert first["attributes"]["aws.bedrock_agentcore.batch_evaluation.id"] == job_id
    assert first["resource"]["attributes"]["service.name"] == "my_agent.DEFAULT"
    assert records[1]["body"]["errorCode"] == "LogEventMissingException"
    assert "gen_ai.evaluation.score.value" not in records[1]["attributes"]


def test_serves_from_the_command_line() -> None:
    process = subprocess.Popen([sys.executable, "-m", "tests.fakes.agentcore_eval", "--port", "0"],
                               stdout=subprocess.PIPE, text=True, cwd=str(__import__("pathlib").Path(
                                   __file__).resolve().parent.parent))
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        stats = requests.get(f"{url}/_fake/stats", timeout=10).json()
        assert stats["attempts"] == 0 and stats["jobs"] == 0
    finally:
        process.terminate()
        process.wait(timeout=10)
