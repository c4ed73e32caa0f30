"""Batch-evaluation jobs: validation before a job is accepted, unique names, the status machine (driven by the
client's step hook, no sleeps), stop, delete, pagination, unknown ids, and jobs left behind by a dead process.

Span files are written here in the flat ADOT shape (``tests.cloudwatch_spans.turn_records``) and ingested through
the real ``files`` source; the evaluators are the programmatic trajectory ones (no judge)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from eval_pipeline.errors import EvalInputError
from eval_pipeline.traces.batch import (
    BatchEvaluationClient,
    ConflictException,
    ResourceNotFoundException,
    ValidationException,
)
from tests.clocks import SettableClock
from tests.cloudwatch_spans import hex_id, turn_records

TRAJECTORY = [{"evaluatorId": "Builtin.TrajectoryExactOrderMatch"}, {"evaluatorId": "Builtin.TrajectoryAnyOrderMatch"}]
START_NS = 1_767_000_000 * 1_000_000_000
SESSIONS = {"sess-a": ["search_flights", "book_flight"], "sess-b": ["book_flight"], "sess-c": ["search_flights"]}
"""Each session's tool calls, one turn per call."""
TRUTH = {"sess-a": ["search_flights", "book_flight"], "sess-b": ["search_flights", "book_flight"],
         "sess-c": ["search_flights"]}



def job_clock() -> SettableClock:
    """The jobs' injected clock, at 2026-01-01T00:00:00Z."""
    return SettableClock(1_767_225_600.0)


def write_spans(path: Path, sessions: dict[str, list[str]] = SESSIONS, *, start_ns: int = START_NS) -> Path:
    """One JSONL file of span and event records: session i starts i minutes after ``start_ns``, one trace per
    tool call."""
    lines = []
    trace_n, span_n = 1, 1
    for index, (session, tools) in enumerate(sessions.items()):
        for turn, tool in enumerate(tools):
            spans, events = turn_records(session=session, service="travel.DEFAULT", group="/agents/travel",
                                         trace=hex_id(trace_n, 32), first_span=span_n,
                                         start_ns=start_ns + (index * 60 + turn * 10) * 1_000_000_000,
                                         name_group=False, prompt=f"{session} turn {turn}", tool=tool)
            lines += [json.dumps(record) for record in spans + events]
            trace_n, span_n = trace_n + 1, span_n + 4
    path.write_text("\n".join(lines) + "\n")
    return path


def metadata(truth: dict[str, list[str]] = TRUTH) -> dict[str, object]:
    return {"sessionMetadata": [{"sessionId": session, "testScenarioId": f"scenario-{session}",
                                 "groundTruth": {"inline": {"expectedTrajectory": {"toolNames": tools}}}}
                                for session, tools in truth.items()]}


def request(spans: Path, name: str = "nightly", **extra: object) -> dict[str, object]:
    return {"batchEvaluationName": name, "evaluators": TRAJECTORY,
            "dataSourceConfig": {"files": {"paths": [str(spans)]}}, "evaluationMetadata": metadata(), **extra}


def quiet_client(home: Path, root: Path, **options: object) -> BatchEvaluationClient:
    """A client without MLflow logging (its store's first migration costs seconds; the API tests cover it)."""
    return BatchEvaluationClient(home=home, root=root, log_to_mlflow=False, **options)  # type: ignore[arg-type]


@pytest.fixture
def spans(tmp_path: Path) -> Path:
    return write_spans(tmp_path / "spans.jsonl")


@pytest.fixture
def client(eval_home: Path, tmp_path: Path) -> BatchEvaluationClient:
    return quiet_client(eval_home, tmp_path, background=False, clock=job_clock())


# --- validation before acceptance --------------------------------------------------------------------------


def session_entry(i: int, assertions: int = 1) -> dict[str, object]:
    return {"sessionId": f"s-{i}", "groundTruth": {"inline": {"assertions": [{"text": f"a{j}"}
                                                                              for j in range(assertions)]}}}


BAD_REQUESTS = [
    ("eleven evaluators", {"evaluators": [{"evaluatorId": f"Builtin.X{i}"} for i in range(11)]}, "evaluators"),
    ("501 sessions", {"evaluationMetadata": {"sessionMetadata": [session_entry(i) for i in range(501)]}},
     "evaluationMetadata.sessionMetadata"),
    ("101 assertions", {"evaluationMetadata": {"sessionMetadata": [session_entry(0, assertions=101)]}},
     "evaluationMetadata.sessionMetadata[0].groundTruth.inline.assertions"),
    ("time range ends before it starts",
     {"dataSourceConfig": {"files": {"paths": ["x.jsonl"], "filterConfig": {"timeRange": {
         "startTime": datetime(2026, 1, 2, tzinfo=UTC), "endTime": datetime(2026, 1, 1, tzinfo=UTC)}}}}},
     "dataSourceConfig.files.filterConfig.timeRange"),
    ("unknown evaluator", {"evaluators": [{"evaluatorId": "Builtin.TrajectoryExactOrderMatch"},
                                          {"evaluatorId": "Builtin.Nonsense"}]}, "evaluators[1].evaluatorId"),
    ("bad name", {"batchEvaluationName": "1-starts-with-a-digit"}, "batchEvaluationName"),
    ("short clientToken", {"clientToken": "too-short"}, "clientToken"),
]


@pytest.mark.parametrize(("case", "change", "field"), BAD_REQUESTS, ids=[case for case, _, _ in BAD_REQUESTS])
def test_bad_requests_are_refused_naming_the_field_before_any_job_exists(
        client: BatchEvaluationClient, spans: Path, case: str, change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationException) as caught:
        client.start_batch_evaluation(**{**request(spans), **change})
    assert isinstance(caught.value, EvalInputError)
    assert caught.value.field == field, (case, str(caught.value))
    assert client.list_batch_evaluations()["batchEvaluations"] == []


def test_a_metadata_file_that_does_not_parse_is_named_with_its_line(client: BatchEvaluationClient, spans: Path,
                                                                     tmp_path: Path) -> None:
    bad = tmp_path / "truth.json"
    bad.write_text('{"sessionMetadata": [\n  {"sessionId": "s-1",}\n]}\n')
    with pytest.raises(ValidationException) as caught:
        client.start_batch_evaluation(**{**request(spans), "evaluationMetadata": str(bad)})
    assert (caught.value.file, caught.value.line, caught.value.field) == (str(bad), 2, "evaluationMetadata")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"sessionMetadata": [session_entry(0, assertions=101)]}))
    with pytest.raises(ValidationException) as caught:
        client.start_batch_evaluation(**{**request(spans), "evaluationMetadata": "wrong.json"})  # from the root
    assert caught.value.field == "evaluationMetadata.sessionMetadata[0].groundTruth.inline.assertions"
    assert client.list_batch_evaluations()["batchEvaluations"] == []


def test_a_metadata_file_is_read_into_the_job(client: BatchEvaluationClient, spans: Path, tmp_path: Path) -> None:
    (tmp_path / "truth.json").write_text(json.dumps(metadata()))
    job = client.start_batch_evaluation(**{**request(spans), "evaluationMetadata": "truth.json"})
    got = client.get_batch_evaluation(batchEvaluationId=job["batchEvaluationId"])
    assert got["status"] == "COMPLETED_WITH_ERRORS" or got["status"] == "COMPLETED"
    summaries = {s["evaluatorId"]: s for s in got["evaluationResults"]["evaluatorSummaries"]}
    assert summaries["Builtin.TrajectoryExactOrderMatch"]["statistics"]["averageScore"] == pytest.approx(2 / 3)


# --- names, ids, the status machine -------------------------------------------------------------------------------


def test_names_are_unique_among_jobs_not_deleted(client: BatchEvaluationClient, spans: Path) -> None:
    first = client.start_batch_evaluation(**request(spans))
    with pytest.raises(ConflictException) as caught:
        client.start_batch_evaluation(**request(spans))
    assert caught.value.field == "batchEvaluationName" and first["batchEvaluationId"] in str(caught.value)
    client.delete_batch_evaluation(batchEvaluationId=first["batchEvaluationId"])
    second = client.start_batch_evaluation(**request(spans))
    assert second["batchEvaluationId"] != first["batchEvaluationId"]


def test_the_status_sequence_and_the_start_response(eval_home: Path, tmp_path: Path, spans: Path) -> None:
    clock = job_clock()
    seen: list[tuple[str, str, datetime]] = []

    def hook(job_id: str, step: str) -> None:
        got = client.get_batch_evaluation(batchEvaluationId=job_id)
        seen.append((step, got["status"], got["updatedAt"]))
        clock.now += 10

    client = quiet_client(eval_home, tmp_path, background=False, clock=clock, on_step=hook, region="eu-west-1")
    started = client.start_batch_evaluation(**request(spans, description="three sessions"))
    job_id = started["batchEvaluationId"]
    assert started["status"] == "PENDING" and started["batchEvaluationName"] == "nightly"
    assert job_id.startswith("nightly-") and len(job_id) == len("nightly-") + 10
    arn = f"arn:aws:bedrock-agentcore:eu-west-1:000000000000:batch-evaluation/{job_id}"
    assert started["batchEvaluationArn"] == arn
    assert started["createdAt"] == datetime.fromtimestamp(1_767_225_600.0, tz=UTC)
    assert started["evaluators"] == TRAJECTORY and started["description"] == "three sessions"
    assert "outputConfig" not in started
    assert [(step, status) for step, status, _ in seen] == [
        ("ingest", "IN_PROGRESS"), ("sessions", "IN_PROGRESS"), ("evaluate", "IN_PROGRESS"),
        ("outputs", "IN_PROGRESS")]
    final = client.get_batch_evaluation(batchEvaluationId=job_id)
    assert final["status"] == "COMPLETED", final.get("errorDetails")  # every result has a value (sess-b's is 0.0)
    assert final["updatedAt"] == datetime.fromtimestamp(clock.now, tz=UTC)
    assert final["evaluationResults"]["totalNumberOfSessions"] == 3
    assert final["evaluationResults"]["numberOfSessionsCompleted"] == 3
    assert final["evaluationResults"]["numberOfSessionsIgnored"] == 0
    assert "errorDetails" not in final


def test_results_match_hand_computed_trajectory_verdicts(client: BatchEvaluationClient, spans: Path,
                                                          eval_home: Path) -> None:
    job_id = client.start_batch_evaluation(**request(spans))["batchEvaluationId"]
    results = pd.read_parquet(eval_home / "batch_evaluations" / job_id / "results.parquet")
    got = {(r.evaluator_id, r.session_id): r.value for r in results.itertuples()}
    # sess-a: [search, book] vs [search, book]; sess-b: [book] vs [search, book]; sess-c: [search] vs [search]
    assert got == {("Builtin.TrajectoryExactOrderMatch", "sess-a"): 1.0,
                   ("Builtin.TrajectoryExactOrderMatch", "sess-b"): 0.0,
                   ("Builtin.TrajectoryExactOrderMatch", "sess-c"): 1.0,
                   ("Builtin.TrajectoryAnyOrderMatch", "sess-a"): 1.0,
                   ("Builtin.TrajectoryAnyOrderMatch", "sess-b"): 0.0,
                   ("Builtin.TrajectoryAnyOrderMatch", "sess-c"): 1.0}
    summaries = client.get_batch_evaluation(batchEvaluationId=job_id)["evaluationResults"]["evaluatorSummaries"]
    assert summaries == [{"evaluatorId": e, "statistics": {"averageScore": pytest.approx(2 / 3)},
                          "totalEvaluated": 3, "totalFailed": 0}
                         for e in ("Builtin.TrajectoryExactOrderMatch", "Builtin.TrajectoryAnyOrderMatch")]


def test_missing_ground_truth_completes_with_errors(client: BatchEvaluationClient, spans: Path) -> None:
    req = request(spans, evaluationMetadata=metadata({"sess-a": ["search_flights", "book_flight"]}))
    job_id = client.start_batch_evaluation(**req)["batchEvaluationId"]
    got = client.get_batch_evaluation(batchEvaluationId=job_id)
    assert got["status"] == "COMPLETED_WITH_ERRORS"
    counts = got["evaluationResults"]
    assert (counts["numberOfSessionsCompleted"], counts["numberOfSessionsFailed"]) == (1, 2)
    assert [s["totalFailed"] for s in counts["evaluatorSummaries"]] == [2, 2]


def test_ingestion_that_fails_is_a_failed_job_saying_why(client: BatchEvaluationClient, tmp_path: Path) -> None:
    job_id = client.start_batch_evaluation(**request(tmp_path / "nowhere.jsonl"))["batchEvaluationId"]
    got = client.get_batch_evaluation(batchEvaluationId=job_id)
    assert got["status"] == "FAILED"
    assert got["errorDetails"][0].startswith("ingestion failed") and "nowhere.jsonl" in got["errorDetails"][0]
    assert "evaluationResults" not in got


def test_only_the_500_most_recent_sessions_are_evaluated(tmp_path: Path, eval_home: Path) -> None:
    client = quiet_client(eval_home, tmp_path, background=False)
    many = {f"s{i:03d}": ["search_flights"] for i in range(502)}
    spans = write_spans(tmp_path / "many.jsonl", many)
    job_id = client.start_batch_evaluation(batchEvaluationName="many", evaluators=TRAJECTORY[:1],
                                           dataSourceConfig={"files": {"paths": [str(spans)]}})["batchEvaluationId"]
    counts = client.get_batch_evaluation(batchEvaluationId=job_id)["evaluationResults"]
    assert (counts["totalNumberOfSessions"], counts["numberOfSessionsIgnored"]) == (500, 2)
    results = pd.read_parquet(eval_home / "batch_evaluations" / job_id / "results.parquet")
    assert set(results["session_id"]) == set(many) - {"s000", "s001"}  # the two that started first


# --- stop and delete --------------------------------------------------------------------------------------------


def test_stop_during_the_run_keeps_the_results_so_far(eval_home: Path, tmp_path: Path, spans: Path) -> None:
    def hook(job_id: str, step: str) -> None:
        if step == "evaluate":
            assert client.stop_batch_evaluation(batchEvaluationId=job_id)["status"] == "STOPPING"

    client = quiet_client(eval_home, tmp_path, background=False, clock=job_clock(), on_step=hook)
    job_id = client.start_batch_evaluation(**request(spans))["batchEvaluationId"]
    got = client.get_batch_evaluation(batchEvaluationId=job_id)
    assert got["status"] == "STOPPED"
    assert got["evaluationResults"]["totalNumberOfSessions"] == 3
    assert (eval_home / "batch_evaluations" / job_id / "traces.parquet").is_file()
    with pytest.raises(ConflictException):
        client.stop_batch_evaluation(batchEvaluationId=job_id)


def test_stop_of_a_background_job_waiting_at_a_step(eval_home: Path, tmp_path: Path, spans: Path) -> None:
    reached, release = threading.Event(), threading.Event()

    def hook(job_id: str, step: str) -> None:
        if step == "ingest":
            reached.set()
            assert release.wait(30)

    client = quiet_client(eval_home, tmp_path, background=True, clock=job_clock(), on_step=hook)
    job_id = client.start_batch_evaluation(**request(spans))["batchEvaluationId"]
    assert reached.wait(30)
    assert client.get_batch_evaluation(batchEvaluationId=job_id)["status"] == "IN_PROGRESS"
    stopped = client.stop_batch_evaluation(batchEvaluationId=job_id)
    assert (stopped["status"], stopped["batchEvaluationId"]) == ("STOPPING", job_id)
    release.set()
    assert client.wait_batch_evaluation(batchEvaluationId=job_id, timeout=60) == "STOPPED"


def test_completed_jobs_cannot_be_stopped(client: BatchEvaluationClient, spans: Path) -> None:
    job_id = client.start_batch_evaluation(**request(spans))["batchEvaluationId"]
    with pytest.raises(ConflictException) as caught:
        client.stop_batch_evaluation(batchEvaluationId=job_id)
    assert "COMPLETED" in str(caught.value)


def test_delete_removes_the_job_and_its_outputs(client: BatchEvaluationClient, spans: Path, eval_home: Path) -> None:
    job_id = client.start_batch_evaluation(**request(spans))["batchEvaluationId"]
    folder = eval_home / "batch_evaluations" / job_id
    assert (folder / "results.parquet").is_file()
    deleted = client.delete_batch_evaluation(batchEvaluationId=job_id)
    assert deleted["status"] == "DELETING" and deleted["batchEvaluationId"] == job_id
    assert not folder.exists()
    with pytest.raises(ResourceNotFoundException):
        client.get_batch_evaluation(batchEvaluationId=job_id)


def test_deleting_a_running_job_stops_it_first(eval_home: Path, tmp_path: Path, spans: Path) -> None:
    reached, release = threading.Event(), threading.Event()

    def hook(job_id: str, step: str) -> None:
        if step == "sessions":
            reached.set()
            assert release.wait(30)

    client = quiet_client(eval_home, tmp_path, background=True, clock=job_clock(), on_step=hook)
    job_id = client.start_batch_evaluation(**request(spans))["batchEvaluationId"]
    assert reached.wait(30)
    assert client.delete_batch_evaluation(batchEvaluationId=job_id)["status"] == "DELETING"
    assert client.get_batch_evaluation(batchEvaluationId=job_id)["status"] == "DELETING"
    release.set()
    assert client.wait_batch_evaluation(batchEvaluationId=job_id, timeout=60) is None
    assert not (eval_home / "batch_evaluations" / job_id).exists()


def test_unknown_ids_are_resource_not_found(client: BatchEvaluationClient) -> None:
    for call in (client.get_batch_evaluation, client.stop_batch_evaluation, client.delete_batch_evaluation):
        with pytest.raises(ResourceNotFoundException) as caught:
            call(batchEvaluationId="nothing-0123456789")
        assert caught.value.field == "batchEvaluationId"


def test_list_is_paginated_newest_first(client: BatchEvaluationClient, tmp_path: Path) -> None:
    clock = client.clock
    ids = []
    for i in range(5):
        clock.now += 60
        ids.append(client.start_batch_evaluation(**request(tmp_path / "none.jsonl", name=f"job{i}"))
                   ["batchEvaluationId"])
    pages, token = [], None
    while True:
        page = client.list_batch_evaluations(maxResults=2, **({"nextToken": token} if token else {}))
        pages.append([job["batchEvaluationId"] for job in page["batchEvaluations"]])
        token = page.get("nextToken")
        if token is None:
            break
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]
    first = client.list_batch_evaluations(maxResults=1)["batchEvaluations"][0]
    assert (first["batchEvaluationName"], first["status"]) == ("job4", "FAILED")
    assert first["createdAt"] == datetime.fromtimestamp(1_767_225_600.0 + 300, tz=UTC)
    with pytest.raises(ValidationException):
        client.list_batch_evaluations(maxResults=0)


# --- jobs outlive the process ----------------------------------------------------------------------------------


def dead_owner() -> str:
    """The owner string of a process of this host that has exited."""
    import socket

    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                             text=True, check=True)
    return f"{socket.gethostname()}|{process.stdout.strip()}|dead"


def test_a_job_left_in_progress_by_a_dead_process_is_resumed(eval_home: Path, tmp_path: Path, spans: Path) -> None:
    class Killed(BaseException):
        """Stands for the process dying mid-job."""

    def die(job_id: str, step: str) -> None:
        if step == "evaluate":
            raise Killed

    first = quiet_client(eval_home, tmp_path, background=False, clock=job_clock(), on_step=die)
    with pytest.raises(Killed):
        first.start_batch_evaluation(**request(spans))
    [job] = first.list_batch_evaluations()["batchEvaluations"]
    assert job["status"] == "IN_PROGRESS"
    # a client of a live process leaves it alone ...
    assert quiet_client(eval_home, tmp_path, background=False).resumed == []
    # ... and once its process is gone, the next client runs it again
    first.store.update(job["batchEvaluationId"], owner=dead_owner())
    second = quiet_client(eval_home, tmp_path, background=False, clock=job_clock())
    assert second.resumed == [job["batchEvaluationId"]]
    got = second.get_batch_evaluation(batchEvaluationId=job["batchEvaluationId"])
    assert got["status"] == "COMPLETED" and got["evaluationResults"]["numberOfSessionsCompleted"] == 3


def test_a_job_left_stopping_by_a_dead_process_is_stopped(eval_home: Path, tmp_path: Path, spans: Path) -> None:
    def stop_and_die(job_id: str, step: str) -> None:
        if step == "sessions":
            first.stop_batch_evaluation(batchEvaluationId=job_id)
            raise KeyboardInterrupt

    first = quiet_client(eval_home, tmp_path, background=False, on_step=stop_and_die)
    with pytest.raises(KeyboardInterrupt):
        first.start_batch_evaluation(**request(spans))
    [job] = first.list_batch_evaluations()["batchEvaluations"]
    assert job["status"] == "STOPPING"
    first.store.update(job["batchEvaluationId"], owner=dead_owner())
    second = quiet_client(eval_home, tmp_path, background=False)
    assert second.resumed == []
    assert second.get_batch_evaluation(batchEvaluationId=job["batchEvaluationId"])["status"] == "STOPPED"
