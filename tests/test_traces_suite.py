"""``task: traces`` suites end to end: recorded sessions through the real Dagster assets, Parquet, MLflow (traces with
assessments), a scripted judge, CloudWatch Logs at moto, and the completed-sessions sensor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from scipy import stats

from eval_pipeline.automation.sensors import completed_sessions_sensor
from eval_pipeline.cli import main
from eval_pipeline.errors import EvalInputError
from eval_pipeline.execution import run_suite
from eval_pipeline.instance import local_instance
from eval_pipeline.suite_definitions import build_definitions, default_resources
from eval_pipeline.suites import load_suite
from eval_pipeline.traces.cloudwatch import logs_client
from eval_pipeline.tracking import default_tracking_uri
from tests.cloudwatch_spans import GROUP_A, GROUP_B, SERVICE_A, SERVICE_B, base_ms, record_sessions
from tests.fakes import FakeLLMServer
from tests.fakes.judge import ModelRouter, scripted_judge

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "data" / "traces"
SPANS = str(EXAMPLES / "travel_agent_spans.jsonl")
TRUTH = str(EXAMPLES / "travel_agent_ground_truth.json")
TRAJECTORY = ["Builtin.TrajectoryExactOrderMatch", "Builtin.TrajectoryInOrderMatch",
              "Builtin.TrajectoryAnyOrderMatch"]
JUDGE = "anthropic.claude-judge-v1"
NO_BODIES = "travel-missing-event-records-237a5fc6bb9a53dc"


def write_suite(folder: Path, name: str = "agent_traces", **overrides: Any) -> Path:
    spec: dict[str, Any] = {
        "suite": name, "task": "traces", "schedule": None, "max_error_rate": 0.2,
        "traces": {"evaluators": TRAJECTORY, "dataSourceConfig": {"files": {"paths": [SPANS]}},
                   "evaluationMetadata": TRUTH},
        "models": [{"name": "travel_agent", "backend": "recorded", "model": "travel_agent.DEFAULT"}]}
    for key, value in overrides.items():
        if key == "traces":
            spec["traces"] = {**spec["traces"], **value}
        else:
            spec[key] = value
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def overall(metrics: pd.DataFrame) -> dict[str, pd.Series]:
    rows = metrics[metrics["breakdown_key"].isna()]
    return {row.metric: row for row in rows.itertuples(index=False)}


def test_trajectory_evaluators_through_the_pipeline_with_mlflow_traces_and_the_gate(eval_home: Path,
                                                                                    tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path))
    result = run_suite(suite, local_instance())
    [run] = result.models
    assert run.success, run.error
    metrics = overall(run.metrics)
    # the example folder's README: over the 7 evaluable sessions exact 3/7, in order 4/7, any order 5/7
    for evaluator, successes in zip(TRAJECTORY, (3, 4, 5), strict=True):
        row = metrics[evaluator]
        assert (row.n, row.errors) == (7, 1) and row.value == pytest.approx(successes / 7)
        low = stats.beta.ppf(0.025, successes, 7 - successes + 1)
        high = stats.beta.ppf(0.975, successes + 1, 7 - successes)
        assert (row.ci_low, row.ci_high) == (pytest.approx(low), pytest.approx(high))
        assert row.ci_method == "clopper_pearson"
    assert run.gates[0].observed == pytest.approx(3 / 24)  # the no-body session's row per evaluator

    samples = pd.read_parquet(run.outputs["samples"])
    assert len(samples) == 8 and NO_BODIES in set(samples["sample_id"])
    spans = pd.read_parquet(run.outputs["traces"])
    assert len(spans) == 81 and set(spans["agent"]) == {"travel_agent"}
    scores = pd.read_parquet(run.outputs["scores"])
    assert len(scores) == 24 and set(scores["level"]) == {"SESSION"}
    failed = scores[scores["error"].notna()]
    assert set(failed["session_id"]) == {NO_BODIES} and set(failed["error_code"]) == {"LogEventMissingException"}
    ignored = {json.dumps(sorted(json.loads(v))) for v in scores["ignored_reference_fields"]}
    assert ignored == {json.dumps(["assertions", "expectedResponse"])}  # given, but not read by a trajectory

    client = MlflowClient(default_tracking_uri())
    mlflow_run = client.get_run(run.mlflow_run_id)
    assert mlflow_run.data.metrics["Builtin.TrajectoryAnyOrderMatch"] == pytest.approx(5 / 7)
    experiment = mlflow_run.info.experiment_id
    traces = client.search_traces(locations=[experiment], max_results=100)
    sessions = {trace.info.tags.get("session_id") for trace in traces}
    assert sessions == set(samples["sample_id"])
    happy = next(t for t in traces if t.info.tags["session_id"].startswith("travel-happy-booking"))
    assert {a.name for a in happy.info.assessments} == set(TRAJECTORY)

    strict = load_suite(write_suite(tmp_path / "strict", max_error_rate=0.0))
    [failed_run] = run_suite(strict, local_instance()).models
    assert not failed_run.success and "error_rate" in (failed_run.error or "")


def test_judged_evaluator_with_a_scripted_judge_and_no_new_calls_on_a_rerun(eval_home: Path, tmp_path: Path,
                                                                            aws_env: str,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def booked(fields: dict[str, str], prompt: str) -> str:
        return "Yes" if "Action: book_flight(" in fields.get("context", "") else "No"

    router = ModelRouter({JUDGE: scripted_judge(booked)})
    with FakeLLMServer(answer=router, known_models={JUDGE}) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
        path = write_suite(tmp_path, traces={"evaluators": ["Builtin.GoalSuccessRate"]},
                           judge={"model": {"backend": "bedrock", "model": JUDGE}})
        suite = load_suite(path)
        [run] = run_suite(suite, local_instance()).models
        assert run.success, run.error
        row = overall(run.metrics)["Builtin.GoalSuccessRate"]
        # booked: happy-booking, book-before-search, repeated-search, cancel-and-rebook; not: the other three
        assert (row.value, row.n, row.errors) == (pytest.approx(4 / 7), 7, 1)
        assert router.calls[JUDGE] == 7
        judgments = pd.read_parquet(run.outputs["judgments"])
        happy = judgments[judgments["session_id"].str.startswith("travel-happy-booking")].iloc[0]
        assert (happy["label"], happy["score"], happy["level"]) == ("Yes", 1.0, "SESSION")
        assert happy["judge_model"] == f"bedrock:{JUDGE}"
        [again] = run_suite(suite, local_instance()).models
        assert again.success and router.calls[JUDGE] == 7  # every judgment from the judge cache
        assert again.judging["sent"] == 0 and again.judging["cached"] == 7


@pytest.mark.parametrize(("traces", "field", "message"), [
    ({"evaluators": ["Builtin.TrajectoryInOrderMatch", "Builtin.Helpfullness"]}, "traces.evaluators.1",
     "did you mean 'Builtin.Helpfulness'"),
    ({"evaluators": [f"Builtin.Custom{i}" for i in range(11)]}, "traces.evaluators",
     "at most 10 items"),
    ({"dataSourceConfig": {"files": {"paths": [SPANS], "filterConfig": {"timeRange": {
        "startTime": "2026-05-02T00:00:00Z", "endTime": "2026-05-01T00:00:00Z"}}}}},
     "traces.dataSourceConfig.files.filterConfig.timeRange", "is before startTime"),
])
def test_bad_suites_are_refused_at_load_naming_the_field(tmp_path: Path, traces: dict[str, Any], field: str,
                                                         message: str) -> None:
    with pytest.raises(EvalInputError) as caught:
        load_suite(write_suite(tmp_path, traces=traces))
    assert caught.value.field == field and message in str(caught.value)


def test_bad_ground_truth_is_refused_at_load_naming_its_file_and_field(tmp_path: Path) -> None:
    truth = json.loads(Path(TRUTH).read_text())
    truth["sessionMetadata"][2]["groundTruth"]["inline"]["assertions"] = [{"text": f"a{i}"} for i in range(101)]
    too_many = tmp_path / "truth.json"
    too_many.write_text(json.dumps(truth))
    with pytest.raises(EvalInputError) as caught:
        load_suite(write_suite(tmp_path, traces={"evaluationMetadata": str(too_many)}))
    assert caught.value.file == str(too_many)
    assert caught.value.field == "sessionMetadata[2].groundTruth.inline.assertions"
    sessions = {"sessionMetadata": [{"sessionId": f"s{i}"} for i in range(501)]}
    with pytest.raises(EvalInputError) as caught:
        load_suite(write_suite(tmp_path, traces={"evaluationMetadata": sessions}))
    assert caught.value.field == "traces.evaluationMetadata.sessionMetadata" and "at most 500" in str(caught.value)


def test_a_malformed_span_line_fails_the_run_with_exit_2_naming_file_and_line(eval_home: Path, tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture) -> None:
    lines = Path(SPANS).read_text().splitlines()
    lines[4] = lines[4][:40]  # a line cut short
    broken = tmp_path / "spans.jsonl"
    broken.write_text("\n".join(lines) + "\n")
    path = write_suite(tmp_path, traces={"dataSourceConfig": {"files": {"paths": [str(broken)]}}})
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "error: spans.jsonl:5: not JSON" in err


def test_sensor_evaluates_complete_sessions_once_per_agent(eval_home: Path, tmp_path: Path, aws_env: str,
                                                           moto_endpoint: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", moto_endpoint)
    recorded = record_sessions(logs_client(), base_ms())
    expected = {"sess-1": ["tool_0", "tool_0"], "sess-10": ["tool_1"], "sess-2": ["tool_2"], "sess-3": ["tool_3"]}
    truth = {"sessionMetadata": [{"sessionId": sid, "groundTruth": {"inline": {
        "expectedTrajectory": {"toolNames": tools}}}} for sid, tools in expected.items()]}
    path = write_suite(tmp_path, name="online", max_error_rate=0.5, traces={
        "evaluators": ["Builtin.TrajectoryExactOrderMatch"], "evaluationMetadata": truth, "sessionTimeoutMinutes": 15,
        "dataSourceConfig": {"cloudWatchLogs": {"serviceNames": [SERVICE_A, SERVICE_B],
                                                "logGroupNames": [GROUP_A, GROUP_B]}}},
        models=[{"name": "agent_a", "backend": "recorded", "model": SERVICE_A},
                {"name": "agent_b", "backend": "recorded", "model": SERVICE_B}])
    suite = load_suite(path)
    last_end_ms = {sid: max(int(s["endTimeUnixNano"]) for s in recorded.spans
                            if s["attributes"]["session.id"] == sid) // 1_000_000 for sid in expected}
    now = {"ms": last_end_ms["sess-3"] + 10 * 60_000}  # sess-3 ended 10 minutes ago: still open
    assert last_end_ms["sess-2"] + 15 * 60_000 <= now["ms"]
    definitions = build_definitions([suite], default_resources())
    job = definitions.resolve_job_def("online_eval")
    sensor = completed_sessions_sensor(suite, job, clock=lambda: now["ms"] / 1000)
    instance = local_instance()

    def requested(result: dg.SensorResult) -> list[tuple[str | None, list[str]]]:
        return [(r.partition_key, r.run_config["ops"]["online__samples"]["config"]["sample_ids"])
                for r in result.run_requests]

    first = sensor(dg.build_sensor_context(instance=instance, cursor=None))
    assert requested(first) == [("agent_a", ["sess-1", "sess-10"])]  # one agent's sessions per tick
    in_flight = instance.create_run_for_job(job_def=job, tags={"dagster/partition": "agent_a"})
    waiting = sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert isinstance(waiting, dg.SkipReason) and in_flight.run_id in waiting.skip_message  # runs share samples
    instance.report_run_canceled(in_flight)
    now["ms"] += 6 * 60_000  # sess-3 complete now too
    second = sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert requested(second) == [("agent_b", ["sess-2", "sess-3"])]
    third = sensor(dg.build_sensor_context(instance=instance, cursor=second.cursor))
    assert third.run_requests == []  # each session evaluated once

    instance.add_dynamic_partitions("online_models", ["agent_a", "agent_b"])
    for request in [*first.run_requests, *second.run_requests]:
        result = job.execute_in_process(instance=instance, partition_key=request.partition_key,
                                        run_config=request.run_config, raise_on_error=False)
        assert result.success or request.partition_key == "agent_b"
        scores = result.asset_value(dg.AssetKey(["online", "scores"]))
        ids = request.run_config["ops"]["online__samples"]["config"]["sample_ids"]
        assert sorted(scores["session_id"]) == sorted(ids)
        values = dict(zip(scores["session_id"], scores["score"], strict=True))
        for sid in ids:
            if sid == "sess-3":  # spans without event records
                assert pd.isna(values[sid])
            else:
                assert values[sid] == 1.0


def test_breakdown_by_a_ground_truth_metadata_field(eval_home: Path, tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path, breakdown_keys=["expectation"]))
    [run] = run_suite(suite, local_instance()).models
    rows = run.metrics[(run.metrics["breakdown_key"] == "expectation")
                       & (run.metrics["metric"] == "Builtin.TrajectoryAnyOrderMatch")]
    values = dict(zip(rows["breakdown_value"], rows["value"], strict=True))
    # any order: correct (happy-booking, weather-then-flights) 2/2; wrong order 1; missing tool 0; no tool calls 0
    assert values["correct"] == 1.0 and values["wrong tool order"] == 1.0
    assert values["missing tool"] == 0.0 and values["no tool calls"] == 0.0
    assert rows[rows["breakdown_value"] == "error: no event records"]["n"].iloc[0] == 0
    with pytest.raises(EvalInputError, match="breakdown key 'splt'"):
        run_suite(load_suite(write_suite(tmp_path / "typo", breakdown_keys=["splt"])), local_instance())


def test_result_events_go_to_cloudwatch_when_the_suite_asks(eval_home: Path, tmp_path: Path, aws_env: str,
                                                            moto_endpoint: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", moto_endpoint)
    suite = load_suite(write_suite(tmp_path, traces={
        "outputConfig": {"cloudWatchConfig": {"logGroupName": "/eval/results", "logStreamName": "nightly"}}}))
    [run] = run_suite(suite, local_instance()).models
    assert run.success, run.error
    events = logs_client().get_log_events(logGroupName="/eval/results", logStreamName="nightly",
                                          startFromHead=True)["events"]
    records = [json.loads(event["message"]) for event in events]
    assert len(records) == 24  # 3 evaluators x 8 sessions
    scores = pd.read_parquet(run.outputs["scores"])
    expected = {(r.session_id, r.evaluator_id): (None if pd.isna(r.value) else r.value)
                for r in scores.itertuples(index=False)}
    written = {(r["body"]["context"]["spanContext"]["sessionId"], r["body"]["evaluatorId"]): r["body"].get("value")
               for r in records}
    assert written == expected
    failed = [r for r in records if r["body"]["context"]["spanContext"]["sessionId"] == NO_BODIES]
    assert {r["body"]["errorCode"] for r in failed} == {"LogEventMissingException"}
    assert all(r["attributes"]["aws.bedrock_agentcore.batch_evaluation.name"] == "agent_traces" for r in records)


@pytest.mark.slow
def test_the_traces_quickstart_on_the_embedded_judge(eval_home: Path) -> None:
    """evals/traces_quickstart.yaml as shipped: the trajectory figures of the examples' README, and GoalSuccessRate
    judged by likelihood on every evaluable session (no claim on the small judge's skill)."""
    result = run_suite(load_suite(ROOT / "evals" / "traces_quickstart.yaml"), local_instance())
    [run] = result.models
    assert run.success, run.error
    metrics = overall(run.metrics)
    for evaluator, successes in zip(TRAJECTORY, (3, 4, 5), strict=True):
        assert metrics[evaluator].value == pytest.approx(successes / 7)
    goal = metrics["Builtin.GoalSuccessRate"]
    assert (goal.n, goal.errors) == (7, 1) and 0.0 <= goal.value <= 1.0
    judgments = pd.read_parquet(run.outputs["judgments"])
    answered = judgments[judgments["error"].isna()]
    assert set(answered["label"]) <= {"Yes", "No"} and len(answered) == 7
    assert answered["explanation"].str.startswith("verdict by likelihood").all()
    assert goal.value == pytest.approx((answered["label"] == "Yes").mean())
