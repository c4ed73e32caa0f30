"""`eval-pipeline batch-evaluation`: the batch-evaluation API on the command line, through ``cli.main`` on the
example travel-agent traces (examples/data/traces/) with the programmatic evaluators (no model).

The expected figures come from the examples' README, counted by hand from the sessions' tool calls: over the
seven evaluable sessions, exact order 3/7, in order 4/7, any order 5/7; the eighth session has spans without event
records and is an error for every evaluator."""

from __future__ import annotations

import io
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from eval_pipeline.cli import main
from eval_pipeline.cli_batch import SessionProgress, field_path, progress_line
from eval_pipeline.traces.batch import BatchEvaluationClient

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "examples" / "data" / "traces"
SPANS = DATA / "travel_agent_spans.jsonl"
TRUTH = DATA / "travel_agent_ground_truth.json"
TRAJECTORY = ["Builtin.TrajectoryExactOrderMatch", "Builtin.TrajectoryInOrderMatch", "Builtin.TrajectoryAnyOrderMatch"]
EXPECTED = {"Builtin.TrajectoryExactOrderMatch": 3 / 7, "Builtin.TrajectoryInOrderMatch": 4 / 7,
            "Builtin.TrajectoryAnyOrderMatch": 5 / 7}
"""The README's verdicts: 3, 4 and 5 of the 7 evaluable sessions."""
BROKEN = "travel-missing-event-records-237a5fc6bb9a53dc"
TOOL_CALLS = {"happy-booking": 2, "weather-then-flights": 2, "book-before-search": 2, "search-without-booking": 1,
              "repeated-search": 3, "weather-without-tool": 0, "cancel-and-rebook": 3}
"""Tool calls per evaluable session (the README's "tools called" column)."""
TOKEN = "cli-token-2026-12-02-000000000000000000"


def tool_calls(event: dict[str, Any]) -> dict[str, Any]:
    """A code evaluator: how many tool calls the session made."""
    calls = sum(len(turn["toolCalls"]) for turn in event["evaluationInput"]["session"]["turns"])
    return {"value": float(calls), "label": "calls"}


@pytest.fixture(autouse=True)
def _in_repo(eval_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The state folder from EVAL_PIPELINE_HOME, relative paths from the project root."""
    monkeypatch.chdir(REPO)


def request_file(folder: Path, name: str = "travel", *, evaluators: list[str] = TRAJECTORY, yaml: bool = False,
                 **extra: Any) -> Path:
    """A start_batch_evaluation request in the service's names, one key a line (JSON) or as YAML."""
    data: dict[str, Any] = {"batchEvaluationName": name, "evaluators": [{"evaluatorId": e} for e in evaluators],
                            "dataSourceConfig": {"files": {"paths": [str(SPANS)]}},
                            "evaluationMetadata": str(TRUTH), **extra}
    path = folder / f"{name}.{'yaml' if yaml else 'json'}"
    if yaml:
        import yaml as pyyaml

        path.write_text(pyyaml.safe_dump(data, sort_keys=False))
    else:
        path.write_text(json.dumps(data, indent=2))
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["batch-evaluation", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def evaluable_sessions() -> list[str]:
    return [s["sessionId"] for s in json.loads(TRUTH.read_text())["sessionMetadata"] if s["sessionId"] != BROKEN]


def test_start_wait_prints_the_summaries_and_exits_1_for_completed_with_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "start", "--request", str(request_file(tmp_path)), "--wait", "--no-mlflow")
    assert code == 1
    assert "COMPLETED_WITH_ERRORS" in err.splitlines()[-1]
    assert "): COMPLETED_WITH_ERRORS" in out.splitlines()[0]
    assert "sessions: 8 total, 7 completed, 1 failed, 0 in progress, 0 ignored" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("Builtin.")}
    assert rows == {evaluator: [f"{score:.4f}", "7", "1"] for evaluator, score in EXPECTED.items()}
    assert "sessions 8/8" in err  # the progress line


def test_filtering_out_the_broken_session_completes_with_exit_0(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    sessions = evaluable_sessions()
    path = request_file(tmp_path, dataSourceConfig={"files": {"paths": [str(SPANS)],
                                                              "filterConfig": {"sessionIds": sessions}}})
    code, out, _ = cli(capsys, "start", "--request", str(path), "--wait", "--json", "--no-mlflow")
    assert code == 0
    job = json.loads(out)
    assert job["status"] == "COMPLETED"
    results = job["evaluationResults"]
    assert (results["totalNumberOfSessions"], results["numberOfSessionsCompleted"],
            results["numberOfSessionsFailed"]) == (7, 7, 0)
    got = {s["evaluatorId"]: (s["statistics"]["averageScore"], s["totalEvaluated"], s["totalFailed"])
           for s in results["evaluatorSummaries"]}
    assert got == {e: (pytest.approx(score, rel=1e-12), 7, 0) for e, score in EXPECTED.items()}


def test_json_round_trips_the_api_response(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           eval_home: Path) -> None:
    code, out, _ = cli(capsys, "start", "--request", str(request_file(tmp_path, yaml=True)), "--wait", "--json",
                       "--no-mlflow")
    assert code == 1
    started = json.loads(out)
    job_id = started["batchEvaluationId"]
    code, out, _ = cli(capsys, "get", job_id, "--json")
    assert code == 1 and json.loads(out) == started
    # the client's own response, its datetimes as ISO strings
    reference = BatchEvaluationClient(home=eval_home, log_to_mlflow=False).get_batch_evaluation(
        batchEvaluationId=job_id)
    assert isinstance(reference["createdAt"], datetime)
    assert started == json.loads(json.dumps(reference, default=lambda v: v.isoformat()))
    assert datetime.fromisoformat(started["updatedAt"]) == reference["updatedAt"]
    code, out, _ = cli(capsys, "list", "--json")
    assert code == 0
    assert [job["batchEvaluationId"] for job in json.loads(out)["batchEvaluations"]] == [job_id]


def test_get_list_and_delete(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = []
    for name in ("first", "second"):
        code, out, _ = cli(capsys, "start", "--request", str(request_file(tmp_path, name)), "--wait", "--json",
                           "--no-mlflow")
        ids.append(json.loads(out)["batchEvaluationId"])
    code, out, err = cli(capsys, "get", ids[0])
    assert code == 1 and f"batch evaluation {ids[0]} (first): COMPLETED_WITH_ERRORS" in out
    assert f"batch evaluation {ids[0]}: COMPLETED_WITH_ERRORS" in err
    code, out, _ = cli(capsys, "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["id", "name", "status", "created", "sessions", "evaluators"]
    assert [line.split()[:3] for line in lines[2:]] == [[ids[1], "second", "COMPLETED_WITH_ERRORS"],
                                                        [ids[0], "first", "COMPLETED_WITH_ERRORS"]]
    assert all("8/8 (1 failed)" in line for line in lines[2:])
    code, out, _ = cli(capsys, "delete", ids[0])
    assert (code, out.strip()) == (0, f"batch evaluation {ids[0]}: DELETING")
    code, out, err = cli(capsys, "get", ids[0])
    assert code == 2 and err.startswith("error: field 'batchEvaluationId': ")
    code, out, _ = cli(capsys, "list", "--json")
    assert [job["batchEvaluationId"] for job in json.loads(out)["batchEvaluations"]] == [ids[1]]
    code, _, err = cli(capsys, "stop", ids[1])  # it has ended: nothing to stop
    assert code == 2 and "field 'batchEvaluationId'" in err and "COMPLETED_WITH_ERRORS" in err


def test_stop_a_running_job(tmp_path: Path, eval_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A job run by a client in this process; the CLI stops it before its evaluation step, then reports it."""
    said: list[tuple[int, str]] = []

    def step(job_id: str, name: str) -> None:
        if name == "evaluate":
            said.append(cli(capsys, "stop", job_id)[:2])

    client = BatchEvaluationClient(home=eval_home, background=False, log_to_mlflow=False, on_step=step)
    data = json.loads(request_file(tmp_path).read_text())
    job_id = client.start_batch_evaluation(**data)["batchEvaluationId"]
    assert said and said[0][0] == 0 and said[0][1].startswith(f"batch evaluation {job_id}: STOPP")
    code, out, err = cli(capsys, "get", job_id)
    assert code == 1 and f"({data['batchEvaluationName']}): STOPPED" in out
    assert err.strip().endswith(f"batch evaluation {job_id}: STOPPED")


def test_an_interrupted_wait_exits_130(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(job_id: str) -> Any:
        def progress(job: Any) -> None:
            raise KeyboardInterrupt

        return progress

    monkeypatch.setattr("eval_pipeline.cli_batch._progress_for", interrupted)
    code, _, err = cli(capsys, "start", "--request", str(request_file(tmp_path)), "--wait", "--no-mlflow")
    assert code == 130 and err.strip().endswith("interrupted")


def test_eleven_evaluators_exit_2_naming_the_field_and_its_line(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = request_file(tmp_path, evaluators=[TRAJECTORY[i % 3] for i in range(11)])
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if '"evaluators"' in text)
    code, out, err = cli(capsys, "start", "--request", str(path), "--wait", "--no-mlflow")
    assert code == 2 and out == ""
    assert err.startswith(f"error: {path}:{line}: field 'evaluators': ")
    assert "10" in err
    code, out, _ = cli(capsys, "list", "--json")
    assert (code, json.loads(out)) == (0, {"batchEvaluations": []})  # nothing was accepted


def test_an_unknown_evaluator_names_its_list_item_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = request_file(tmp_path, yaml=True, evaluators=[TRAJECTORY[0], "Builtin.NoSuchThing"])
    lines = path.read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if "Builtin.NoSuchThing" in text)
    code, _, err = cli(capsys, "start", "--request", str(path), "--wait", "--no-mlflow")
    assert code == 2 and err.startswith(f"error: {path}:{line}: field 'evaluators[1].evaluatorId': unknown evaluator")


def test_bad_request_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "batchEvaluationName": "x",\n  "evaluators": [,]\n}\n')
    code, _, err = cli(capsys, "start", "--request", str(broken), "--wait")
    assert code == 2 and err.startswith(f"error: {broken}:3: not valid JSON")
    extra = request_file(tmp_path, evaluationTarget={"traceIds": ["x"]})
    line = next(n for n, text in enumerate(extra.read_text().splitlines(), 1) if "evaluationTarget" in text)
    code, _, err = cli(capsys, "start", "--request", str(extra), "--wait")
    assert code == 2 and err.startswith(f"error: {extra}:{line}: field 'evaluationTarget': not a start_batch")
    code, _, err = cli(capsys, "start", "--request", str(request_file(tmp_path)), "--name", "bad name!", "--wait")
    assert code == 2 and err.startswith("error: field '--name': ")


def test_the_same_client_token_gives_the_same_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = request_file(tmp_path, clientToken=TOKEN)
    first = json.loads(cli(capsys, "start", "--request", str(path), "--wait", "--json", "--no-mlflow")[1])
    again = json.loads(cli(capsys, "start", "--request", str(path), "--wait", "--json", "--no-mlflow")[1])
    assert again["batchEvaluationId"] == first["batchEvaluationId"] and again == first
    code, out, _ = cli(capsys, "list", "--json")
    assert len(json.loads(out)["batchEvaluations"]) == 1
    code, _, err = cli(capsys, "start", "--request", str(path), "--name", "other", "--wait", "--no-mlflow")
    assert code == 2 and "field 'clientToken'" in err and first["batchEvaluationId"] in err


def test_a_custom_code_evaluator_created_listed_used_and_deleted(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "evaluator.yaml"
    config.write_text("evaluatorName: tool_calls\nlevel: SESSION\nevaluatorConfig:\n  codeBased:\n"
                      "    python: tests.test_cli_batch_evaluation:tool_calls\n")
    code, out, _ = cli(capsys, "create-evaluator", "--config", str(config), "--json")
    assert code == 0
    evaluator_id = json.loads(out)["evaluatorId"]
    code, out, _ = cli(capsys, "list-evaluators")
    listed = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert listed[evaluator_id][:3] == ["CustomCode", "SESSION", "ACTIVE"]
    assert listed["Builtin.TrajectoryInOrderMatch"][0] == "Builtin"
    path = request_file(tmp_path, evaluators=[evaluator_id])
    code, out, _ = cli(capsys, "start", "--request", str(path), "--wait", "--json", "--no-mlflow")
    summary = json.loads(out)["evaluationResults"]["evaluatorSummaries"][0]
    assert code == 1 and summary["statistics"]["averageScore"] == pytest.approx(sum(TOOL_CALLS.values()) / 7)
    assert (summary["totalEvaluated"], summary["totalFailed"]) == (7, 1)
    assert cli(capsys, "delete-evaluator", evaluator_id)[:2] == (0, f"evaluator {evaluator_id}: DELETING\n")
    code, out, _ = cli(capsys, "list-evaluators", "--json")
    assert evaluator_id not in {e["evaluatorId"] for e in json.loads(out)["evaluators"]}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"evaluatorName": "x", "level": "NOPE", "evaluatorConfig": {}}, indent=2))
    code, _, err = cli(capsys, "create-evaluator", "--config", str(bad))
    assert code == 2 and err.startswith(f"error: {bad}:3: field 'level': ")


def test_judge_options_reach_the_client(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--judge-backend/--judge-model/--judge-base-url: a judged builtin answered by a scripted judge behind the fake
    OpenAI server ("Very Helpful" is 5 of the 7-level scale's 0..6), one call per trace of the evaluable sessions."""
    from tests.fakes import FakeLLMServer
    from tests.fakes.judge import ModelRouter, scripted_judge

    sessions = evaluable_sessions()
    traces = {(record["attributes"]["session.id"], record["traceId"])
              for record in map(json.loads, SPANS.read_text().splitlines())
              if (record.get("attributes") or {}).get("session.id") in sessions}
    router = ModelRouter({"judge-model": scripted_judge(lambda blocks, prompt: "Very Helpful")})
    path = request_file(tmp_path, evaluators=["Builtin.Helpfulness"],
                        dataSourceConfig={"files": {"paths": [str(SPANS)], "filterConfig": {"sessionIds": sessions}}})
    with FakeLLMServer(answer=router) as server:
        code, out, _ = cli(capsys, "start", "--request", str(path), "--wait", "--json", "--no-mlflow",
                           "--judge-backend", "openai", "--judge-model", "judge-model",
                           "--judge-base-url", f"{server.url}/v1")
    summary = json.loads(out)["evaluationResults"]["evaluatorSummaries"][0]
    assert code == 0 and router.calls == {"judge-model": len(traces)} and len(traces) == 12
    assert summary["statistics"]["averageScore"] == pytest.approx(5 / 6)
    assert (summary["totalEvaluated"], summary["totalFailed"]) == (len(traces), 0)


def one_session(tmp_path: Path, scenario: str) -> tuple[Path, str]:
    """The example's records of one session: its spans (they carry the session id) and the event records of
    their traces."""
    session = next(s for s in evaluable_sessions() if s.startswith(f"travel-{scenario}-"))
    lines = SPANS.read_text().splitlines()
    traces = {json.loads(line)["traceId"] for line in lines if session in line}
    path = tmp_path / f"{scenario}.jsonl"
    path.write_text("".join(line + "\n" for line in lines if json.loads(line).get("traceId") in traces))
    return path, session


def test_evaluate_one_session(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spans, session = one_session(tmp_path, "repeated-search")  # search, search, book
    references = tmp_path / "references.json"
    for expected, exact, in_order in ((["search_flights", "book_flight"], 0.0, 1.0),
                                      (["search_flights", "search_flights", "book_flight"], 1.0, 1.0)):
        references.write_text(json.dumps([{"context": {"spanContext": {"sessionId": session}},
                                           "expectedTrajectory": {"toolNames": expected}}]))
        got = []
        for evaluator in TRAJECTORY[:2]:
            code, out, _ = cli(capsys, "evaluate", "--evaluator-id", evaluator, "--spans", str(spans),
                               "--reference-inputs", str(references), "--json")
            results = json.loads(out)["evaluationResults"]
            assert code == 0 and [r["context"]["spanContext"]["sessionId"] for r in results] == [session]
            got.append(results[0]["value"])
        assert got == [exact, in_order]
    code, out, _ = cli(capsys, "evaluate", "--evaluator-id", TRAJECTORY[0], "--spans", str(spans),
                       "--reference-inputs", str(references))
    assert code == 0 and out.splitlines()[2].split()[:2] == [TRAJECTORY[0], session]
    assert "1.0000" in out.splitlines()[2]


def test_evaluate_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spans, _ = one_session(tmp_path, "happy-booking")
    lines = spans.read_text().splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join([*lines[:4], '{"traceId": ', *lines[4:]]) + "\n")
    code, _, err = cli(capsys, "evaluate", "--evaluator-id", TRAJECTORY[0], "--spans", str(broken))
    assert code == 2 and err.startswith(f"error: {broken}:5: field 'sessionSpans': not a JSON record")
    code, _, err = cli(capsys, "evaluate", "--evaluator-id", "Builtin.Nope", "--spans", str(spans))
    assert code == 2 and err.startswith("error: field '--evaluator-id': unknown evaluator")
    ids = [f"t{i}" for i in range(11)]
    code, _, err = cli(capsys, "evaluate", "--evaluator-id", TRAJECTORY[0], "--spans", str(spans),
                       *[arg for i in ids for arg in ("--trace-id", i)])
    assert code == 2 and err.startswith("error: field '--trace-id': ")


def test_start_without_wait_returns_at_once_and_the_job_runs_in_a_worker(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], eval_home: Path) -> None:
    code, out, _ = cli(capsys, "start", "--request", str(request_file(tmp_path)), "--json", "--no-mlflow")
    started = json.loads(out)
    assert code == 0 and started["status"] == "PENDING"
    job_id = started["batchEvaluationId"]
    deadline = time.monotonic() + 120
    while True:
        code, out, _ = cli(capsys, "get", job_id, "--json")
        job = json.loads(out)
        if job["status"] not in ("PENDING", "IN_PROGRESS") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert job["status"] == "COMPLETED_WITH_ERRORS" and code == 1
    assert {s["evaluatorId"]: s["statistics"]["averageScore"] for s in job["evaluationResults"][
        "evaluatorSummaries"]} == pytest.approx(EXPECTED, rel=1e-12)
    log = eval_home / "batch_evaluations" / "logs" / f"{job_id}.log"
    assert log.read_text().strip().endswith(f"batch evaluation {job_id}: COMPLETED_WITH_ERRORS")
    code, _, err = cli(capsys, "start", "--request", str(request_file(tmp_path, evaluators=TRAJECTORY * 4)))
    assert code == 2 and "field 'evaluators'" in err  # the worker's refusal comes back


def test_progress_line_sessions_rate_and_time_left() -> None:
    assert progress_line("j", "PENDING", 0, 0, 0.0) == "j: PENDING"
    assert progress_line("j", "IN_PROGRESS", 0, 8, 1.0) == "j: IN_PROGRESS, sessions 0/8"
    assert progress_line("j", "IN_PROGRESS", 4, 8, 2.0) == ("j: IN_PROGRESS, sessions 4/8, 2.00 sessions/s, "
                                                            "about 2 s left")
    assert progress_line("j", "IN_PROGRESS", 3, 8, 2.0) == ("j: IN_PROGRESS, sessions 3/8, 1.50 sessions/s, "
                                                            "about 4 s left")
    assert progress_line("j", "COMPLETED", 8, 8, 4.0) == "j: COMPLETED, sessions 8/8, 2.00 sessions/s, done in 4.0 s"


def test_session_progress_prints_a_line_per_change_with_an_injected_clock() -> None:
    now = [100.0]
    stream = io.StringIO()
    progress = SessionProgress("j", stream=stream, clock=lambda: now[0], bar=False)

    def job(status: str, done: int, failed: int, total: int) -> dict[str, Any]:
        return {"status": status, "evaluationResults": {"numberOfSessionsCompleted": done,
                                                        "numberOfSessionsFailed": failed,
                                                        "totalNumberOfSessions": total}}

    now[0] = 101.0
    progress({"status": "IN_PROGRESS"})
    progress({"status": "IN_PROGRESS"})  # no change: no line
    now[0] = 104.0
    progress(job("IN_PROGRESS", 5, 1, 8))
    now[0] = 105.0
    progress(job("COMPLETED_WITH_ERRORS", 7, 1, 8))
    assert stream.getvalue().splitlines() == [
        "j: IN_PROGRESS", "j: IN_PROGRESS, sessions 6/8, 1.50 sessions/s, about 2 s left",
        "j: COMPLETED_WITH_ERRORS, sessions 8/8, 1.60 sessions/s, done in 5.0 s"]


def test_field_path() -> None:
    assert field_path("evaluators[10].evaluatorId") == ["evaluators", 10, "evaluatorId"]
    assert field_path("dataSourceConfig.files.filterConfig.sessionIds[0]") == [
        "dataSourceConfig", "files", "filterConfig", "sessionIds", 0]
