"""The batch-evaluation API end to end with a judge: a scripted judge behind the fake OpenAI server (every verdict
known, every call counted), clientToken replay, custom evaluators created then used, ``evaluate`` on one
session's spans, and the outputs (Parquet, MLflow run with metrics and session traces, CloudWatch result events)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from eval_pipeline.data.schemas import TRACE_EVALUATIONS
from eval_pipeline.inference.model_spec import ModelSpec
from eval_pipeline.traces.batch import (
    BatchEvaluationClient,
    ConflictException,
    ResourceNotFoundException,
    ValidationException,
)
from tests.fakes import FakeLLMServer
from tests.fakes.judge import ModelRouter, scripted_judge
from tests.test_batch_evaluation_jobs import job_clock, metadata, request, write_spans

TOKEN = "nightly-2026-12-02-0000000000000000000000"
HELPFUL = [{"evaluatorId": "Builtin.Helpfulness"}, {"evaluatorId": "Builtin.TrajectoryExactOrderMatch"}]
TURNS = {"sess-a": 2, "sess-b": 1, "sess-c": 1}
"""Traces (turns) per session in the span file: one Helpfulness judgment each."""


def helpfulness(blocks: dict[str, str], prompt: str) -> str:
    """sess-a's replies are "Very Helpful" (5/6 on the 7-level scale), the others "Neutral/Mixed" (3/6)."""
    return "Very Helpful" if "done: sess-a" in prompt else "Neutral/Mixed"


def custom_rating(blocks: dict[str, str], prompt: str) -> str:
    return "Good" if "done: sess-a" in prompt else "Poor"


def tool_count(event: dict[str, Any]) -> dict[str, Any]:
    """A code evaluator: how many tool calls the session made (value), "busy" from two on."""
    calls = sum(len(turn["toolCalls"]) for turn in event["evaluationInput"]["session"]["turns"])
    return {"label": "busy" if calls >= 2 else "quiet", "value": float(calls), "explanation": f"{calls} calls"}


@pytest.fixture
def router() -> ModelRouter:
    return ModelRouter({"judge": scripted_judge(helpfulness), "custom-judge": scripted_judge(custom_rating)})


@pytest.fixture
def server(router: ModelRouter) -> Iterator[FakeLLMServer]:
    with FakeLLMServer(answer=router) as fake:
        yield fake


def judge_spec(server: FakeLLMServer, model: str = "judge") -> ModelSpec:
    return ModelSpec(name="judge", backend="openai", model=model, base_url=f"{server.url}/v1")


@pytest.fixture
def spans(tmp_path: Path) -> Path:
    return write_spans(tmp_path / "spans.jsonl")


@pytest.fixture
def client(eval_home: Path, tmp_path: Path, server: FakeLLMServer) -> BatchEvaluationClient:
    """MLflow logging off (its store's first migration costs seconds); the outputs test turns it on."""
    return BatchEvaluationClient(judge=judge_spec(server), home=eval_home, background=False, clock=job_clock(),
                                 root=tmp_path, log_to_mlflow=False)


def judged_request(spans: Path, **extra: object) -> dict[str, object]:
    return {**request(spans), "evaluators": HELPFUL, **extra}


def test_judged_results_have_the_scripted_values(client: BatchEvaluationClient, spans: Path,
                                                 server: FakeLLMServer, eval_home: Path) -> None:
    job_id = client.start_batch_evaluation(**judged_request(spans))["batchEvaluationId"]
    got = client.get_batch_evaluation(batchEvaluationId=job_id)
    assert got["status"] == "COMPLETED"
    assert server.requests_total == sum(TURNS.values())
    results = pd.read_parquet(eval_home / "batch_evaluations" / job_id / "results.parquet")
    helpful = results[results["evaluator_id"] == "Builtin.Helpfulness"].sort_values(["session_id", "trace_id"])
    assert list(helpful["session_id"]) == ["sess-a", "sess-a", "sess-b", "sess-c"]
    assert list(helpful["value"]) == pytest.approx([5 / 6, 5 / 6, 3 / 6, 3 / 6])
    assert list(helpful["label"]) == ["Very Helpful", "Very Helpful", "Neutral/Mixed", "Neutral/Mixed"]
    assert set(helpful["judge_model"]) == {"openai:judge"}
    summary = {s["evaluatorId"]: s for s in got["evaluationResults"]["evaluatorSummaries"]}
    # mean of the four values, by hand: (5/6 + 5/6 + 1/2 + 1/2) / 4 = 2/3
    assert summary["Builtin.Helpfulness"] == {"evaluatorId": "Builtin.Helpfulness",
                                              "statistics": {"averageScore": pytest.approx(2 / 3)},
                                              "totalEvaluated": 4, "totalFailed": 0}


def test_client_token_replay_returns_the_job_and_does_no_new_work(eval_home: Path, tmp_path: Path, spans: Path,
                                                                  server: FakeLLMServer) -> None:
    steps: list[str] = []
    client = BatchEvaluationClient(judge=judge_spec(server), home=eval_home, background=False, clock=job_clock(),
                                   root=tmp_path, on_step=lambda job_id, step: steps.append(step), log_to_mlflow=False)
    first = client.start_batch_evaluation(**judged_request(spans, clientToken=TOKEN))
    calls, ran = server.requests_total, list(steps)
    assert calls == sum(TURNS.values()) and ran[0] == "ingest"
    before = client.get_batch_evaluation(batchEvaluationId=first["batchEvaluationId"])
    again = client.start_batch_evaluation(**judged_request(spans, clientToken=TOKEN))
    assert again["batchEvaluationId"] == first["batchEvaluationId"]
    assert again["batchEvaluationArn"] == first["batchEvaluationArn"] and again["status"] == "COMPLETED"
    assert server.requests_total == calls  # zero new judge calls
    assert steps == ran  # no new ingestion, no new step of any kind
    assert client.get_batch_evaluation(batchEvaluationId=first["batchEvaluationId"]) == before
    assert len(client.list_batch_evaluations()["batchEvaluations"]) == 1
    # the same token with another request is refused, as the service refuses it
    with pytest.raises(ConflictException) as caught:
        client.start_batch_evaluation(**judged_request(spans, clientToken=TOKEN, description="changed"))
    assert caught.value.field == "clientToken" and first["batchEvaluationId"] in str(caught.value)
    assert server.requests_total == calls


def test_a_resumed_job_takes_its_verdicts_from_the_judge_cache(eval_home: Path, tmp_path: Path, spans: Path,
                                                               server: FakeLLMServer) -> None:
    from tests.test_batch_evaluation_jobs import dead_owner

    def die(job_id: str, step: str) -> None:
        if step == "outputs":
            raise KeyboardInterrupt

    first = BatchEvaluationClient(judge=judge_spec(server), home=eval_home, background=False, root=tmp_path,
                                  on_step=die, log_to_mlflow=False)
    with pytest.raises(KeyboardInterrupt):
        first.start_batch_evaluation(**judged_request(spans))
    calls = server.requests_total
    [job] = first.list_batch_evaluations()["batchEvaluations"]
    first.store.update(job["batchEvaluationId"], owner=dead_owner())
    second = BatchEvaluationClient(judge=judge_spec(server), home=eval_home, background=False, root=tmp_path,
                                   log_to_mlflow=False)
    assert second.resumed == [job["batchEvaluationId"]]
    assert second.get_batch_evaluation(batchEvaluationId=job["batchEvaluationId"])["status"] == "COMPLETED"
    assert server.requests_total == calls == sum(TURNS.values())


def test_outputs_parquet_and_mlflow(eval_home: Path, tmp_path: Path, spans: Path, server: FakeLLMServer) -> None:
    import mlflow

    client = BatchEvaluationClient(judge=judge_spec(server), home=eval_home, background=False, root=tmp_path)
    job_id = client.start_batch_evaluation(**judged_request(spans))["batchEvaluationId"]
    folder = eval_home / "batch_evaluations" / job_id
    traces = pd.read_parquet(folder / "traces.parquet")
    assert set(traces["session_id"]) == set(TURNS) and len(traces) == 4 * sum(TURNS.values())
    results = pd.read_parquet(folder / "results.parquet")
    assert list(results.columns) == TRACE_EVALUATIONS.names and len(results) == sum(TURNS.values()) + len(TURNS)
    summary = pd.read_parquet(folder / "summary.parquet").set_index("evaluator_id")
    assert summary.loc["Builtin.Helpfulness", "average_score"] == pytest.approx(2 / 3)
    assert summary.loc["Builtin.TrajectoryExactOrderMatch", "total_evaluated"] == 3
    low, high = summary.loc["Builtin.Helpfulness", ["ci_low", "ci_high"]]
    assert low < 2 / 3 < high
    run_id = json.loads((folder / "outputs.json").read_text())["mlflowRunId"]
    tracking = mlflow.MlflowClient(tracking_uri=client.tracking_uri)
    run = tracking.get_run(run_id)
    experiment = tracking.get_experiment(run.info.experiment_id)
    assert experiment.name == "agentcore-batch/nightly" and run.info.status == "FINISHED"
    assert run.data.metrics["Builtin.Helpfulness"] == pytest.approx(2 / 3)
    assert run.data.metrics["Builtin.TrajectoryExactOrderMatch"] == pytest.approx(2 / 3)
    assert run.data.params["batchEvaluationName"] == "nightly"
    assert run.data.tags["batchEvaluationId"] == job_id
    artifacts = {item.path for item in tracking.list_artifacts(run_id)}
    assert "results.json" in artifacts
    logged = tracking.search_traces(locations=[run.info.experiment_id], run_id=run_id)
    assert len(logged) == len(TURNS)  # one MLflow trace per session, with the results as assessments
    assert sum(len(trace.info.assessments) for trace in logged) == len(results)
    # delete removes the Parquet folder and the MLflow run
    client.delete_batch_evaluation(batchEvaluationId=job_id)
    assert not folder.exists() and tracking.get_run(run_id).info.lifecycle_stage == "deleted"


def test_result_events_go_to_cloudwatch_when_asked(eval_home: Path, tmp_path: Path, spans: Path,
                                                   server: FakeLLMServer, aws_env: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", aws_env)  # CloudWatch Logs at the moto server

    client = BatchEvaluationClient(judge=judge_spec(server), home=eval_home, background=False, root=tmp_path,
                                   region="us-east-1", log_to_mlflow=False)
    output = {"cloudWatchConfig": {"logGroupName": "/eval/results"}}
    started = client.start_batch_evaluation(**judged_request(spans, outputConfig=output))
    job_id = started["batchEvaluationId"]
    assert started["outputConfig"] == {"cloudWatchConfig": {"logGroupName": "/eval/results", "logStreamName": job_id}}
    got = client.get_batch_evaluation(batchEvaluationId=job_id)
    assert got["status"] == "COMPLETED" and got["outputConfig"] == output, got.get("errorDetails")
    logs = boto3.client("logs", region_name="us-east-1")
    events = logs.filter_log_events(logGroupName="/eval/results")["events"]
    assert len(events) == sum(TURNS.values()) + len(TURNS)
    assert all(job_id in event["message"] for event in events)


# --- custom evaluators -------------------------------------------------------------------------------------------


LLM_CONFIG = {"llmAsAJudge": {
    "instructions": "Rate the agent's reply.\n{context}\n{assistant_turn}",
    "ratingScale": {"numerical": [{"value": 0, "label": "Poor", "definition": "Not useful."},
                                  {"value": 10, "label": "Good", "definition": "Useful."}]}}}


def test_a_custom_evaluator_created_then_used_in_a_job(client: BatchEvaluationClient, spans: Path,
                                                       server: FakeLLMServer, router: ModelRouter,
                                                       eval_home: Path) -> None:
    config = json.loads(json.dumps(LLM_CONFIG))
    config["llmAsAJudge"]["modelConfig"] = {"model": {"backend": "openai", "model": "custom-judge",
                                                      "base_url": f"{server.url}/v1"}}
    created = client.create_evaluator(evaluatorName="reply_rating", level="TRACE", evaluatorConfig=config,
                                      description="0-10 reply rating")
    evaluator_id = created["evaluatorId"]
    assert created["status"] == "ACTIVE" and evaluator_id.startswith("reply_rating-")
    assert created["evaluatorArn"] == f"arn:aws:bedrock-agentcore:local:000000000000:evaluator/{evaluator_id}"
    code = client.create_evaluator(evaluatorName="tool_count", level="SESSION", evaluatorConfig={
        "codeBased": {"python": "tests.test_batch_evaluation_api:tool_count"}})
    listed = {e["evaluatorId"]: e for e in client.list_evaluators()["evaluators"]}
    assert listed[evaluator_id]["evaluatorType"] == "Custom" and listed[evaluator_id]["level"] == "TRACE"
    assert listed[code["evaluatorId"]]["evaluatorType"] == "CustomCode"
    assert listed["Builtin.Helpfulness"]["evaluatorType"] == "Builtin"
    assert client.get_evaluator(evaluatorId=evaluator_id)["evaluatorConfig"] == config

    job_id = client.start_batch_evaluation(**{**request(spans), "evaluators": [
        {"evaluatorId": evaluator_id}, {"evaluatorId": code["evaluatorId"]}]})["batchEvaluationId"]
    assert client.get_batch_evaluation(batchEvaluationId=job_id)["status"] == "COMPLETED"
    assert router.calls == {"custom-judge": sum(TURNS.values())}  # its own model, not the job's judge
    results = pd.read_parquet(eval_home / "batch_evaluations" / job_id / "results.parquet")
    rated = results[results["evaluator_id"] == evaluator_id].sort_values(["session_id", "trace_id"])
    assert list(rated["value"]) == [10.0, 10.0, 0.0, 0.0] and list(rated["score"]) == [1.0, 1.0, 0.0, 0.0]
    counted = results[results["evaluator_id"] == code["evaluatorId"]].set_index("session_id")
    assert counted["value"].to_dict() == {"sess-a": 2.0, "sess-b": 1.0, "sess-c": 1.0}
    assert counted.loc["sess-a", "label"] == "busy"
    # in use by no running job: it can be deleted; then it is unknown
    client.delete_evaluator(evaluatorId=code["evaluatorId"])
    with pytest.raises(ResourceNotFoundException):
        client.get_evaluator(evaluatorId=code["evaluatorId"])
    with pytest.raises(ValidationException):
        client.start_batch_evaluation(**{**request(spans, name="again"),
                                         "evaluators": [{"evaluatorId": code["evaluatorId"]}]})


def test_custom_evaluator_requests_are_validated_and_names_unique(client: BatchEvaluationClient) -> None:
    with pytest.raises(ValidationException) as caught:
        client.create_evaluator(evaluatorName="bad", level="TRACE", evaluatorConfig={"llmAsAJudge": {
            "instructions": "no placeholder at all", "ratingScale": LLM_CONFIG["llmAsAJudge"]["ratingScale"]}})
    assert caught.value.field.startswith("evaluatorConfig")
    with pytest.raises(ValidationException) as caught:
        client.create_evaluator(evaluatorName="bad", level="EVERYWHERE", evaluatorConfig=LLM_CONFIG)
    assert caught.value.field == "level"
    token = "create-reply-rating-000000000000000000"
    first = client.create_evaluator(evaluatorName="rating", level="TRACE", evaluatorConfig=LLM_CONFIG,
                                    clientToken=token)
    assert client.create_evaluator(evaluatorName="rating", level="TRACE", evaluatorConfig=LLM_CONFIG,
                                   clientToken=token)["evaluatorId"] == first["evaluatorId"]
    with pytest.raises(ConflictException):
        client.create_evaluator(evaluatorName="rating", level="TRACE", evaluatorConfig=LLM_CONFIG)
    with pytest.raises(ValidationException):
        client.delete_evaluator(evaluatorId="Builtin.Helpfulness")


# --- evaluate -----------------------------------------------------------------------------------------------------


def session_records(spans: Path, session: str) -> list[dict[str, Any]]:
    """The span and event records of one session, as a caller would send them inline."""
    records = [json.loads(line) for line in spans.read_text().splitlines() if line]
    traces = {r["traceId"] for r in records if (r.get("attributes") or {}).get("session.id") == session}
    return [r for r in records if r["traceId"] in traces]


def test_evaluate_one_sessions_spans(client: BatchEvaluationClient, spans: Path, server: FakeLLMServer) -> None:
    records = session_records(spans, "sess-a")
    context = {"spanContext": {"sessionId": "sess-a"}}
    trajectory = client.evaluate(
        evaluatorId="Builtin.TrajectoryInOrderMatch", evaluationInput={"sessionSpans": records},
        evaluationReferenceInputs=[{"context": context, "expectedTrajectory": {"toolNames": ["book_flight"]},
                                    "assertions": [{"text": "books a flight"}]}])["evaluationResults"]
    assert len(trajectory) == 1
    result = trajectory[0]
    assert (result["evaluatorId"], result["value"], result["context"]) == (
        "Builtin.TrajectoryInOrderMatch", 1.0, {"spanContext": {"sessionId": "sess-a"}})
    assert result["evaluatorArn"] == "arn:aws:bedrock-agentcore:::evaluator/Builtin.TrajectoryInOrderMatch"
    assert result["ignoredReferenceInputFields"] == ["assertions"]
    assert server.requests_total == 0

    first_trace = next(r["traceId"] for r in records if "startTimeUnixNano" in r)
    helpful = client.evaluate(evaluatorId="Builtin.Helpfulness", evaluationInput={"sessionSpans": records},
                              evaluationTarget={"traceIds": [first_trace]})["evaluationResults"]
    assert [(r["context"]["spanContext"]["traceId"], r["label"], r["value"]) for r in helpful] == [
        (first_trace, "Very Helpful", pytest.approx(5 / 6))]
    assert server.requests_total == 1  # only the targeted trace is judged


def test_evaluate_refuses_bad_input_naming_the_field(client: BatchEvaluationClient, spans: Path) -> None:
    records = session_records(spans, "sess-a")
    cases = [
        ({"evaluatorId": "Builtin.Nope", "evaluationInput": {"sessionSpans": records}}, "evaluatorId"),
        ({"evaluatorId": "Builtin.Helpfulness", "evaluationInput": {"sessionSpans": []}},
         "evaluationInput.sessionSpans"),
        ({"evaluatorId": "Builtin.Helpfulness", "evaluationInput": {"sessionSpans": records},
          "evaluationTarget": {"traceIds": [f"t{i}" for i in range(11)]}}, "evaluationTarget.traceIds"),
        ({"evaluatorId": "Builtin.Helpfulness", "evaluationInput": {"sessionSpans": records},
          "evaluationTarget": {"traceIds": ["a"], "spanIds": ["b"]}}, "evaluationTarget"),
        ({"evaluatorId": "Builtin.Helpfulness",
          "evaluationInput": {"sessionSpans": records + session_records(spans, "sess-b")}},
         "evaluationInput.sessionSpans"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ValidationException) as caught:
            client.evaluate(**kwargs)
        assert caught.value.field == field, (field, str(caught.value))


def test_metadata_of_the_jobs_module_is_the_ground_truth_shape() -> None:
    """The shared fixture builder gives what the request shape takes (kept in step with request.py)."""
    from eval_pipeline.traces.request import EvaluationMetadata

    assert len(EvaluationMetadata.model_validate(metadata()).sessionMetadata) == 3


# --- calibration against the managed service ---------------------------------------------------------------------


def test_a_job_calibrated_against_the_managed_service(eval_home: Path, tmp_path: Path, aws_env: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The same cloudWatchLogs job here and on the (fake) managed data plane; the side-by-side table is stored,
    logged and returned under ``calibration``. Ours: sess-1 matches its expected tools (1.0), sess-10 does not
    (0.0); theirs (scripted): 1.0 and 1.0. So ours 0.5, theirs 1.0, difference −0.5, mean |Δvalue| 0.5."""
    import boto3

    from eval_pipeline.traces.managed import ManagedBatchEvaluation
    from tests.cloudwatch_spans import GROUP_A, SERVICE_A, base_ms, record_sessions
    from tests.fakes.agentcore_eval import FakeAgentCoreEvaluations, JobScript, ScriptedResult

    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", aws_env)
    record_sessions(boto3.client("logs", region_name="us-east-1"), base_ms())
    evaluator = "Builtin.TrajectoryAnyOrderMatch"
    with FakeAgentCoreEvaluations(logs_endpoint=aws_env) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", fake.url)
        fake.script = JobScript(pending_polls=0, running_polls=1, results=[
            ScriptedResult("sess-1", evaluator, 1.0, "Match"), ScriptedResult("sess-10", evaluator, 1.0, "Match")])
        managed = ManagedBatchEvaluation(region="us-east-1", sleep=lambda seconds: None, clock=lambda: 0.0)
        client = BatchEvaluationClient(home=eval_home, background=False, root=tmp_path, region="us-east-1",
                                       managed=managed)
        job_id = client.start_batch_evaluation(
            batchEvaluationName="calibrated", evaluators=[{"evaluatorId": evaluator}],
            dataSourceConfig={"cloudWatchLogs": {"serviceNames": [SERVICE_A], "logGroupNames": [GROUP_A]}},
            evaluationMetadata=metadata({"sess-1": ["tool_0", "tool_0"], "sess-10": ["tool_0"]}),
        )["batchEvaluationId"]
        got = client.get_batch_evaluation(batchEvaluationId=job_id)
        assert got["status"] == "COMPLETED", got.get("errorDetails")
        assert fake.started == 1
    [row] = got["calibration"]["evaluators"]
    assert row["evaluator_id"] == evaluator
    assert (row["ours_average"], row["theirs_average"], row["difference"]) == (0.5, 1.0, -0.5)
    assert (row["ours_evaluated"], row["theirs_evaluated"], row["matched"]) == (2, 2, 2)
    assert row["mean_abs_value_difference"] == pytest.approx(0.5)
    table = pd.read_parquet(eval_home / "batch_evaluations" / job_id / "calibration.parquet")
    assert table.loc[0, "difference"] == -0.5
