"""Calibration against managed AgentCore: the job sent through the real boto3 client to the fake data plane,
polled with an injected clock, its per-session results read back from moto's CloudWatch Logs, and both sides put
next to each other with numbers checked by hand."""

from __future__ import annotations

import math

import boto3
import pandas as pd
import pytest

from eval_pipeline.errors import EvalInputError
from eval_pipeline.traces.managed import (
    CALIBRATION_COLUMNS,
    ManagedBatchEvaluation,
    ManagedEvaluationError,
    ManagedEvaluationTimeout,
    calibration_table,
    managed_client,
    managed_evaluate,
    per_session_results,
    service_request,
)
from tests.fakes.agentcore_eval import FakeAgentCoreEvaluations, JobScript, ScriptedResult

REQUEST = {
    "batchEvaluationName": "calibration",
    "evaluators": [{"evaluatorId": "Builtin.Helpfulness"}, {"evaluatorId": "Builtin.TrajectoryInOrderMatch"}],
    "dataSourceConfig": {"cloudWatchLogs": {"serviceNames": ["my_agent.DEFAULT"],
                                            "logGroupNames": ["/aws/bedrock-agentcore/runtimes/my_agent-DEFAULT"],
                                            "filterConfig": {"sessionIds": ["s1", "s2"]},
                                            "region": "us-east-1"}},
    "evaluationMetadata": {"sessionMetadata": [
        {"sessionId": "s1", "testScenarioId": "book-01", "metadata": {"split": "dev"},
         "groundTruth": {"inline": {"expectedTrajectory": {"toolNames": ["search", "book"]}}}}]},
}


class FakeClock:
    """A clock that only the injected sleep moves; the sleeps are recorded."""

    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def endpoint(monkeypatch):
    """The fake data plane, with boto3 pointed at it through the standard endpoint variable."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)
    with FakeAgentCoreEvaluations() as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", fake.url)
        yield fake


def managed(clock: FakeClock, **options) -> ManagedBatchEvaluation:
    return ManagedBatchEvaluation(region="us-east-1", sleep=clock.sleep, clock=clock, **options)


def test_run_polls_until_completed_with_injected_waits(endpoint) -> None:
    endpoint.script = JobScript(pending_polls=2, running_polls=3, results=[
        ScriptedResult("s1", "Builtin.Helpfulness", 0.83, "Very Helpful", trace_id="a" * 32),
        ScriptedResult("s1", "Builtin.TrajectoryInOrderMatch", 1.0, "Match")])
    clock = FakeClock()
    response = managed(clock, poll_s=20.0).run(REQUEST)
    assert response["status"] == "COMPLETED"
    # gets: PENDING, PENDING, IN_PROGRESS x3, COMPLETED; a wait between each
    assert endpoint.calls["GetBatchEvaluation"] == 6 and clock.sleeps == [20.0] * 5
    summaries = response["evaluationResults"]["evaluatorSummaries"]
    assert [(s["evaluatorId"], s["statistics"]["averageScore"]) for s in summaries] == [
        ("Builtin.Helpfulness", 0.83), ("Builtin.TrajectoryInOrderMatch", 1.0)]
    operation, sent = endpoint.requests[0]
    assert operation == "StartBatchEvaluation"
    assert sent["dataSourceConfig"] == {"cloudWatchLogs": {
        "serviceNames": ["my_agent.DEFAULT"], "logGroupNames": ["/aws/bedrock-agentcore/runtimes/my_agent-DEFAULT"],
        "filterConfig": {"sessionIds": ["s1", "s2"]}}}  # our own fields (region, spansLogGroupName) stay home
    assert sent["evaluationMetadata"]["sessionMetadata"][0]["metadata"] == {"split": "dev"}
    assert len(sent["clientToken"]) >= 33


def test_the_same_request_again_reuses_the_managed_job(endpoint) -> None:
    endpoint.script = JobScript(pending_polls=0, running_polls=0)
    clock = FakeClock()
    first = managed(clock).run(REQUEST)
    second = managed(clock).run(REQUEST)
    assert second["batchEvaluationId"] == first["batchEvaluationId"]
    assert endpoint.started == 1 and endpoint.calls["StartBatchEvaluation"] == 2
    assert service_request(REQUEST)["clientToken"] == service_request(dict(REQUEST))["clientToken"]
    changed = REQUEST | {"description": "another"}
    assert service_request(changed)["clientToken"] != service_request(REQUEST)["clientToken"]
    given = REQUEST | {"clientToken": "x" * 40}
    assert service_request(given)["clientToken"] == "x" * 40


def test_a_failed_job_raises_with_the_service_error_details(endpoint) -> None:
    endpoint.script = JobScript(pending_polls=1, running_polls=0, final_status="FAILED",
                                error_details=["LogEventMissingException: sessions s1, s2 have no event records"])
    clock = FakeClock()
    with pytest.raises(ManagedEvaluationError, match="ended FAILED: LogEventMissingException: sessions s1, s2") \
            as caught:
        managed(clock, poll_s=5.0).run(REQUEST)
    assert caught.value.status == "FAILED"
    assert caught.value.error_details == ["LogEventMissingException: sessions s1, s2 have no event records"]
    assert caught.value.job_id.startswith("calibration-") and clock.sleeps == [5.0]


def test_a_job_past_its_timeout_is_stopped(endpoint) -> None:
    endpoint.script = JobScript(pending_polls=10_000)
    clock = FakeClock()
    with pytest.raises(ManagedEvaluationTimeout, match=r"still PENDING after 120 s \(timeout_s=100\); stopped it"):
        managed(clock, poll_s=30.0, timeout_s=100.0).run(REQUEST)
    # gets at t = 0, 30, 60, 90, 120; the one at 120 is past the timeout
    assert endpoint.calls["GetBatchEvaluation"] == 5 and clock.sleeps == [30.0] * 4
    assert endpoint.calls["StopBatchEvaluation"] == 1
    (job,) = endpoint.jobs.values()
    assert job["status"] == "STOPPING"


def test_throttling_is_retried_with_backoff(endpoint) -> None:
    endpoint.script = JobScript(pending_polls=0, running_polls=0)
    endpoint.service.fail_next("throttle")
    response = managed(FakeClock()).run(REQUEST)
    assert response["status"] == "COMPLETED"
    assert [a["operation"] for a in endpoint.service.attempts[:2]] == ["StartBatchEvaluation"] * 2
    assert endpoint.started == 1


def test_the_client_follows_the_standard_endpoint_variable(endpoint) -> None:
    client = managed_client("us-east-1")
    assert client.meta.endpoint_url == endpoint.url
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 5}
    endpoint.script = JobScript(pending_polls=0, running_polls=0)
    source = REQUEST["dataSourceConfig"]["cloudWatchLogs"] | {"region": "eu-west-1"}
    job = ManagedBatchEvaluation(sleep=lambda s: None, clock=FakeClock())
    job.run(REQUEST | {"dataSourceConfig": {"cloudWatchLogs": source}})
    assert job.client.meta.region_name == "eu-west-1"  # the request's region, where no client or region is given


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"dataSourceConfig": {"files": {"paths": ["examples/data/traces/spans.jsonl"]}}}, "dataSourceConfig.files",
     "'files' is a self-hosted data source"),
    ({"dataSourceConfig": {"rollouts": {"path": "rollouts.parquet"}}}, "dataSourceConfig.rollouts",
     "'rollouts' is a self-hosted data source"),
    ({"dataSourceConfig": {"cloudWatchLogs": {"serviceNames": ["a"], "spansLogGroupName": "my/spans"}}},
     "dataSourceConfig.cloudWatchLogs.spansLogGroupName", "reads spans from 'aws/spans' only"),
    ({"evaluators": [{"evaluatorId": "Builtin.Helpfulness"}, {"evaluatorId": "my_python_check"}]},
     "evaluators[1].evaluatorId", "not an id the managed service knows"),
    ({"evaluationMetadata": {"sessionMetadata": [{"sessionId": "s1", "metadata": {"attempt": 3}}]}},
     "evaluationMetadata.sessionMetadata[0].metadata.attempt", "string metadata values only"),
    ({"evaluators": [{"evaluatorId": f"Builtin.E{n}"} for n in range(11)]}, "evaluators", "at most 10"),
])
def test_what_the_service_cannot_take_is_refused_before_sending(endpoint, change, field, message) -> None:
    with pytest.raises(EvalInputError) as caught:
        managed(FakeClock()).run(REQUEST | change)
    assert caught.value.field == field and message in str(caught.value)
    assert not endpoint.service.attempts  # nothing reached the service


def test_per_session_results_are_read_back_from_the_output_log_group(aws_env, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", aws_env)
    scripted = [ScriptedResult("s2", "Builtin.Helpfulness", 0.5, "Somewhat Helpful", "partly", trace_id="b" * 32,
                               span_id="f" * 16),
                ScriptedResult("s1", "Builtin.Helpfulness", 0.83, "Very Helpful", "good", trace_id="a" * 32,
                               span_id="e" * 16),
                ScriptedResult("s1", "Builtin.TrajectoryInOrderMatch", 1.0, "Match"),
                ScriptedResult("s2", "Builtin.TrajectoryInOrderMatch", error_code="MissingGroundTruth",
                               error_message="no expectedTrajectory")]
    shared = {"outputConfig": {"cloudWatchConfig": {"logGroupName": "/calibration/results",
                                                    "logStreamName": "all-jobs"}}}
    with FakeAgentCoreEvaluations(logs_endpoint=aws_env) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", fake.url)
        fake.scripts["other_job"] = JobScript(pending_polls=0, running_polls=0, results=[
            ScriptedResult("s9", "Builtin.Helpfulness", 0.0, "Not Helpful")])
        fake.script = JobScript(pending_polls=0, running_polls=1, results=scripted)
        job = ManagedBatchEvaluation(sleep=lambda s: None, clock=FakeClock())
        job.run(REQUEST | {"batchEvaluationName": "other_job"} | shared)  # shares the group and stream
        response = job.run(REQUEST | shared)
    frame = job.per_session_results(response)
    expected = pd.DataFrame({
        "session_id": ["s1", "s2", "s1", "s2"],
        "trace_id": ["a" * 32, "b" * 32, None, None], "span_id": ["e" * 16, "f" * 16, None, None],
        "evaluator_id": ["Builtin.Helpfulness"] * 2 + ["Builtin.TrajectoryInOrderMatch"] * 2,
        "value": [0.83, 0.5, 1.0, None], "label": ["Very Helpful", "Somewhat Helpful", "Match", None],
        "explanation": ["good", "partly", None, None],
        "error_code": [None, None, None, "MissingGroundTruth"], "error": [None, None, None, "no expectedTrajectory"]})
    got = frame[expected.columns].astype(object).where(frame[expected.columns].notna(), None)
    pd.testing.assert_frame_equal(got, expected.astype(object).where(expected.notna(), None))
    assert set(frame["model"]) == {"my_agent.DEFAULT"}
    assert list(frame.columns) == list(__import__("eval_pipeline.data.schemas", fromlist=["x"]).TRACE_EVALUATIONS
                                       .names)


def test_per_session_results_read_our_own_result_events_too(aws_env, monkeypatch) -> None:
    """What our result-event writer puts in CloudWatch reads back as the same rows (one layout both ways)."""
    result_events = pytest.importorskip("eval_pipeline.traces.result_events")
    from eval_pipeline.traces.request import CloudWatchOutput

    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", aws_env)
    ours = pd.DataFrame({"session_id": ["s1", "s1"], "trace_id": ["a" * 32, None], "span_id": [None, None],
                         "model": ["my_agent.DEFAULT"] * 2,
                         "evaluator_id": ["Builtin.Helpfulness", "Builtin.GoalSuccessRate"],
                         "evaluator_name": ["Builtin.Helpfulness", "Builtin.GoalSuccessRate"],
                         "level": ["TRACE", "SESSION"], "value": [0.83, None], "label": ["Very Helpful", None],
                         "explanation": ["fine", None], "error_code": [None, "MissingGroundTruth"],
                         "error": [None, "no assertions"]})
    logs = boto3.client("logs", region_name="us-east-1")
    job = {"batchEvaluationId": "ours-0123456789", "batchEvaluationName": "ours"}
    written = result_events.write_result_events(ours, CloudWatchOutput(logGroupName="/ours", logStreamName="r"),
                                                job=job, client=logs)
    assert written == 2
    frame = per_session_results({"batchEvaluationId": "ours-0123456789", "outputConfig": {
        "cloudWatchConfig": {"logGroupName": "/ours", "logStreamName": "r"}}}, logs_client=logs)
    assert list(frame["evaluator_id"]) == ["Builtin.GoalSuccessRate", "Builtin.Helpfulness"]
    assert list(frame["level"]) == ["SESSION", "TRACE"]
    assert frame["value"].iloc[1] == 0.83 and frame["label"].iloc[1] == "Very Helpful"
    assert frame["trace_id"].iloc[1] == "a" * 32 and pd.isna(frame["trace_id"].iloc[0])
    assert (frame["error_code"].iloc[0], frame["error"].iloc[0]) == ("MissingGroundTruth", "no assertions")


def test_a_job_without_an_output_log_group_is_a_clear_error() -> None:
    with pytest.raises(ManagedEvaluationError, match="no output log group"):
        per_session_results({"batchEvaluationId": "x-0123456789"}, logs_client=object())


def test_managed_evaluate_calls_the_data_plane(endpoint) -> None:
    spans = [{"traceId": "c" * 32, "spanId": "d" * 16, "attributes": {"session.id": "s1"}}]
    results = managed_evaluate("Builtin.Helpfulness", spans, evaluationTarget={"traceIds": ["c" * 32]},
                               region="us-east-1")
    assert [(r["evaluatorId"], r["value"], r["context"]["spanContext"]) for r in results] == [
        ("Builtin.Helpfulness", 1.0, {"sessionId": "s1", "traceId": "c" * 32})]
    operation, params = endpoint.requests[-1]
    assert operation == "Evaluate" and params["evaluatorId"] == "Builtin.Helpfulness"
    assert params["evaluationInput"] == {"sessionSpans": spans}
    with pytest.raises(EvalInputError, match="sessionSpans"):
        managed_evaluate("Builtin.Helpfulness", [], region="us-east-1")


# --- the side-by-side table, against numbers worked out by hand ---------------------------------------------------

OURS = [{"evaluatorId": "Builtin.Helpfulness", "statistics": {"averageScore": 0.75}, "totalEvaluated": 4,
         "totalFailed": 0},
        {"evaluatorId": "Builtin.Correctness", "statistics": {"averageScore": 0.5}, "totalEvaluated": 2,
         "totalFailed": 1},
        {"evaluatorId": "Builtin.TrajectoryExactOrderMatch", "statistics": {"averageScore": 1.0},
         "totalEvaluated": 2, "totalFailed": 0}]
THEIRS = [{"evaluatorId": "Builtin.Helpfulness", "statistics": {"averageScore": 0.625}, "totalEvaluated": 4,
           "totalFailed": 1},
          {"evaluatorId": "Builtin.Correctness", "statistics": {"averageScore": 0.5}, "totalEvaluated": 3,
           "totalFailed": 0},
          {"evaluatorId": "Builtin.GoalSuccessRate", "statistics": {}, "totalEvaluated": 0, "totalFailed": 5}]


def results(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["evaluator_id", "session_id", "trace_id", "value", "label", "error_code"])


H, C, T = "Builtin.Helpfulness", "Builtin.Correctness", "Builtin.TrajectoryExactOrderMatch"
OURS_RESULTS = results([
    (H, "s1", "t1", 1.0, "Yes", None), (H, "s1", "t2", 1.0, "Yes", None), (H, "s2", "t3", 0.0, "No", None),
    (H, "s3", "t4", 0.0, "No", None), (H, "s4", "t5", 1.0, "Yes", None),    # t5: their result is an error
    (C, "s1", None, 1.0, None, None), (C, "s2", None, 0.0, None, None),     # SESSION level: no trace on our side
    (C, "s3", None, None, None, "MissingGroundTruth"),
    (T, "s1", None, 1.0, "Match", None), (T, "s2", None, 1.0, "Match", None)])
THEIRS_RESULTS = results([
    (H, "s1", "t1", 1.0, "Yes", None), (H, "s1", "t2", 0.5, "No", None), (H, "s2", "t3", 0.0, "No", None),
    (H, "s3", "t4", 0.0, "No", None), (H, "s4", "t5", None, None, "InternalError"),
    (H, "s5", "t6", 1.0, "Yes", None),                                      # t6: ours has none
    (C, "s1", "t1", 1.0, None, None), (C, "s2", "t3", 1.0, None, None), (C, "s3", "t4", 0.0, None, None)])


def test_calibration_table_side_by_side_with_agreement() -> None:
    table = calibration_table(OURS, THEIRS, ours_results=OURS_RESULTS, theirs_results=THEIRS_RESULTS)
    assert list(table.columns) == CALIBRATION_COLUMNS
    rows = table.set_index("evaluator_id").astype(object)  # a row of mixed dtypes: missing is pd.NA
    assert list(rows.index) == ["Builtin.Correctness", "Builtin.GoalSuccessRate", "Builtin.Helpfulness",
                                "Builtin.TrajectoryExactOrderMatch"]
    helpful = rows.loc[H]
    # summaries: 0.75 vs 0.625
    assert (helpful.ours_average, helpful.theirs_average) == (0.75, 0.625)
    assert helpful.difference == pytest.approx(0.125)
    assert (helpful.ours_evaluated, helpful.ours_failed, helpful.theirs_evaluated, helpful.theirs_failed) == \
        (4, 0, 4, 1)
    # matched on (session, trace): t1..t4 (t5 is an error on their side, t6 only theirs)
    # labels ours Y Y N N, theirs Y N N N: agree 3/4; p_e = (2*1 + 2*3)/16 = 0.5; kappa = (0.75-0.5)/0.5 = 0.5
    # values |1-1|, |1-0.5|, |0-0|, |0-0| -> mean 0.125
    assert helpful.matched == 4
    assert helpful.label_agreement == pytest.approx(0.75) and helpful.kappa == pytest.approx(0.5)
    assert helpful.mean_abs_value_difference == pytest.approx(0.125)
    correct = rows.loc[C]
    # SESSION results: ours name no trace, so targets match by session: s1 (1 vs 1), s2 (0 vs 1); s3 errored on ours
    assert correct.difference == 0.0 and correct.matched == 2
    assert correct.mean_abs_value_difference == pytest.approx(0.5)
    assert pd.isna(correct.label_agreement) and pd.isna(correct.kappa)  # no labels to compare
    only_ours = rows.loc[T]
    assert only_ours.ours_average == 1.0 and pd.isna(only_ours.theirs_average)
    assert pd.isna(only_ours.difference) and pd.isna(only_ours.theirs_evaluated)
    assert only_ours.matched == 0 and pd.isna(only_ours.mean_abs_value_difference)
    only_theirs = rows.loc["Builtin.GoalSuccessRate"]
    assert pd.isna(only_theirs.ours_average) and pd.isna(only_theirs.theirs_average)  # no averageScore
    assert only_theirs.theirs_failed == 5 and pd.isna(only_theirs.ours_evaluated)


def test_calibration_kappa_agrees_with_an_independent_computation() -> None:
    sklearn = pytest.importorskip("sklearn.metrics")
    table = calibration_table(OURS, THEIRS, ours_results=OURS_RESULTS, theirs_results=THEIRS_RESULTS)
    kappa = table.set_index("evaluator_id").loc[H, "kappa"]
    assert kappa == pytest.approx(sklearn.cohen_kappa_score(["Yes", "Yes", "No", "No"], ["Yes", "No", "No", "No"]))


def test_calibration_table_from_summaries_alone() -> None:
    table = calibration_table(OURS[:1], THEIRS[:1])
    assert len(table) == 1 and table.loc[0, "difference"] == pytest.approx(0.125)
    assert pd.isna(table.loc[0, "matched"]) and math.isnan(table.loc[0, "kappa"])
    with pytest.raises(ValueError, match="together"):
        calibration_table(OURS, THEIRS, ours_results=OURS_RESULTS)


def test_a_target_scored_twice_cannot_be_matched() -> None:
    twice = pd.concat([THEIRS_RESULTS, results([(H, "s1", "t1", 0.0, "No", None)])])
    with pytest.raises(ValueError, match=r"theirs: evaluator 'Builtin.Helpfulness' has 2 results for target"):
        calibration_table(OURS, THEIRS, ours_results=OURS_RESULTS, theirs_results=twice)


def test_summaries_must_name_each_evaluator_once() -> None:
    with pytest.raises(EvalInputError, match=r"ours\[1\].evaluatorId"):
        calibration_table([OURS[0], OURS[0]], THEIRS)


def test_our_summaries_feed_the_table_as_they_come() -> None:
    """``traces.summary.evaluator_summaries`` (ours, in the service's shape) goes into the table unchanged."""
    summary = pytest.importorskip("eval_pipeline.traces.summary")
    ours_results = OURS_RESULTS.assign(error=OURS_RESULTS["error_code"])
    table = calibration_table(summary.evaluator_summaries(ours_results), THEIRS,
                              ours_results=ours_results, theirs_results=THEIRS_RESULTS).set_index("evaluator_id")
    # Helpfulness: ours 1, 1, 0, 0, 1 -> 0.6 over 5 results; theirs 0.625 (their summary)
    assert table.loc[H, "ours_average"] == pytest.approx(0.6) and table.loc[H, "ours_evaluated"] == 5
    assert table.loc[H, "difference"] == pytest.approx(0.6 - 0.625)
    # Correctness: ours 1, 0 and one error -> 0.5, 2 evaluated, 1 failed
    assert (table.loc[C, "ours_average"], table.loc[C, "ours_evaluated"], table.loc[C, "ours_failed"]) == (0.5, 2, 1)
    assert table.loc[H, "kappa"] == pytest.approx(0.5)
