"""Span files: flat JSONL, Collector-style JSONL (one OTLP document a line), OTLP/JSON documents, OTLP protobuf;
folders and globs; errors naming file, line and field; the example data in examples/data/traces."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from eval_pipeline.errors import EvalInputError
from eval_pipeline.traces.files import read_span_files
from eval_pipeline.traces.request import EvaluationMetadata, FilesSource, validated

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "data" / "traces"
TRACE = "5b8efff798038103d269b633813fc60c"


def _span(span_id: str, session: str = "s-1", **fields: object) -> dict[str, object]:
    return {"resource": {"attributes": {"service.name": "agent.DEFAULT"}},
            "scope": {"name": "strands.telemetry.tracer"}, "traceId": TRACE, "spanId": span_id,
            "name": "chat", "kind": "INTERNAL",
            "startTimeUnixNano": 1795165200000000000, "endTimeUnixNano": 1795165201000000000,
            "attributes": {"session.id": session, "gen_ai.operation.name": "chat"}, "status": {"code": "OK"}} | fields


def _event(span_id: str) -> dict[str, object]:
    return {"resource": {"attributes": {}}, "scope": {"name": "strands.telemetry.tracer"},
            "timeUnixNano": 1795165201000000000, "traceId": TRACE, "spanId": span_id,
            "attributes": {"event.name": "strands.telemetry.tracer"},
            "body": {"input": {"messages": []}, "output": {"messages": []}}}


def _otlp(span_id: str) -> dict[str, object]:
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name",
                                                            "value": {"stringValue": "agent.DEFAULT"}}]},
                               "scopeSpans": [{"scope": {"name": "strands.telemetry.tracer"}, "spans": [
                                   {"traceId": TRACE, "spanId": span_id, "name": "chat", "kind": 1,
                                    "startTimeUnixNano": "1795165200000000000",
                                    "endTimeUnixNano": "1795165201000000000",
                                    "attributes": [{"key": "session.id", "value": {"stringValue": "s-1"}}]}]}]}]}


def _write_lines(path: Path, lines: list[object | str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_flat_jsonl_records_keep_their_file_and_line_and_skip_blank_lines(tmp_path: Path) -> None:
    _write_lines(tmp_path / "spans.jsonl", [_span("0000000000000001"), "", "   ", _event("0000000000000001"),
                                            _span("0000000000000002")])
    records = list(read_span_files(["spans.jsonl"], tmp_path))
    assert [(r.source, r.line, r.is_span) for r in records] == [("spans.jsonl", 1, True), ("spans.jsonl", 4, False),
                                                                ("spans.jsonl", 5, True)]
    assert records[0].data == _span("0000000000000001")


def test_collector_jsonl_has_a_whole_otlp_document_on_each_line(tmp_path: Path) -> None:
    _write_lines(tmp_path / "collector.jsonl", [_otlp("0000000000000001"), _otlp("0000000000000002"),
                                                _span("0000000000000003")])
    records = list(read_span_files([str(tmp_path / "collector.jsonl")], tmp_path))
    assert [(r.line, r.data["spanId"], r.data["kind"]) for r in records] == [
        (1, "0000000000000001", "INTERNAL"), (2, "0000000000000002", "INTERNAL"), (3, "0000000000000003", "INTERNAL")]
    assert records[0].data["attributes"] == {"session.id": "s-1"}
    assert records[0].data["resource"] == {"attributes": {"service.name": "agent.DEFAULT"}}


def test_a_pretty_printed_document_and_a_json_list(tmp_path: Path) -> None:
    (tmp_path / "export.json").write_text(json.dumps(_otlp("0000000000000001"), indent=2))
    (tmp_path / "list.json").write_text(json.dumps([_span("0000000000000002"), _otlp("0000000000000003")],
                                                   indent=1))
    records = list(read_span_files(["export.json", "list.json"], tmp_path))
    assert [(r.source, r.line, r.data["spanId"]) for r in records] == [
        ("export.json", None, "0000000000000001"), ("list.json", None, "0000000000000002"),
        ("list.json", None, "0000000000000003")]


def test_a_line_may_hold_a_list_of_records(tmp_path: Path) -> None:
    _write_lines(tmp_path / "spans.jsonl", [[_span("0000000000000001"), _otlp("0000000000000002")]])
    records = list(read_span_files(["spans.jsonl"], tmp_path))
    assert [(r.line, r.data["spanId"]) for r in records] == [(1, "0000000000000001"), (1, "0000000000000002")]


def test_protobuf_files(tmp_path: Path) -> None:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    scope.spans.add(trace_id=bytes.fromhex(TRACE), span_id=bytes.fromhex("00000000000000aa"), name="chat", kind=3)
    (tmp_path / "a.pb").write_bytes(request.SerializeToString())
    (tmp_path / "b.binpb").write_bytes(request.SerializeToString())
    records = list(read_span_files(["a.pb", "b.binpb"], tmp_path))
    assert [(r.source, r.data["spanId"], r.data["kind"]) for r in records] == [
        ("a.pb", "00000000000000aa", "CLIENT"), ("b.binpb", "00000000000000aa", "CLIENT")]


def test_folders_and_globs_expand_sorted_each_file_once(tmp_path: Path) -> None:
    folder = tmp_path / "spans"
    _write_lines(folder / "b.jsonl", [_span("000000000000000b")])
    _write_lines(folder / "a.jsonl", [_span("000000000000000a")])
    _write_lines(folder / "notes.txt", ["not spans"])
    _write_lines(folder / "deep" / "c.jsonl", [_span("000000000000000c")])
    (folder / "ground_truth.json").write_text(json.dumps({"sessionMetadata": [{"sessionId": "s-1"}]}, indent=2))
    (folder / "compact_truth.json").write_text(json.dumps({"sessionMetadata": []}))

    def ids(paths: list[str]) -> list[str]:
        return [r.data["spanId"][-1] for r in read_span_files(paths, tmp_path)]

    assert ids(["spans"]) == ["a", "b"]
    assert ids(["spans/*.jsonl"]) == ["a", "b"]
    assert ids(["spans/**/*.jsonl"]) == ["a", "b", "c"]
    assert ids([str(folder / "b.jsonl"), "spans"]) == ["b", "a"]
    assert ids(["spans/deep", "spans/deep/c.jsonl"]) == ["c"]


def test_a_path_that_names_nothing_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for path, words in [("missing.jsonl", "no such file"), ("nothing/*.jsonl", "matches no file"),
                        ("empty", "no span file")]:
        with pytest.raises(EvalInputError) as caught:
            list(read_span_files([path], tmp_path))
        assert (caught.value.file, caught.value.field) == (path, "paths") and words in str(caught.value)


def test_a_named_json_file_that_is_not_span_data_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "truth.json").write_text(json.dumps({"sessionMetadata": []}, indent=2))
    with pytest.raises(EvalInputError) as caught:
        list(read_span_files(["truth.json"], tmp_path))
    assert (caught.value.file, caught.value.field) == ("truth.json", "traceId")


@pytest.mark.parametrize(("line", "at", "field", "words"), [
    ("{not json", 3, None, "not JSON"),
    ("[1, 2]", 3, "[0]", "not a number"),
    (json.dumps([_span("0000000000000003"), {"spanId": "0000000000000004"}]), 3, "[1].traceId", "needs a traceId"),
    ('"text"', 3, None, "not a string"),
    (json.dumps({"spanId": "0000000000000001", "name": "chat"}), 3, "traceId", "needs a traceId"),
    (json.dumps(_span("0000000000000001", traceId=7)), 3, "traceId", "hex id"),
    (json.dumps(_span("0000000000000001", attributes=["x"])), 3, "attributes", "JSON object"),
    (json.dumps(_otlp("0000000000000001") | {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}),
     3, "resourceSpans[0].scopeSpans[0].spans[0].traceId", "hex id"),
])
def test_a_bad_line_names_the_file_the_line_and_the_field(tmp_path: Path, line: str, at: int, field: str | None,
                                                          words: str) -> None:
    _write_lines(tmp_path / "spans.jsonl", [_span("0000000000000001"), "", line, _span("0000000000000002")])
    with pytest.raises(EvalInputError) as caught:
        list(read_span_files(["spans.jsonl"], tmp_path))
    error = caught.value
    assert (error.file, error.line, error.field) == ("spans.jsonl", at, field)
    assert words in str(error) and str(error).startswith(f"spans.jsonl:{at}: ")


def test_records_stream_line_by_line(tmp_path: Path) -> None:
    """The first record comes out before a bad later line is read: the file is not loaded whole first."""
    _write_lines(tmp_path / "spans.jsonl", [_span("0000000000000001"), "{broken"])
    records = read_span_files(["spans.jsonl"], tmp_path)
    assert next(records).line == 1
    with pytest.raises(EvalInputError, match=r"spans\.jsonl:2"):
        next(records)


def test_a_files_source_is_read_into_a_traces_table(tmp_path: Path) -> None:
    pytest.importorskip("eval_pipeline.traces.otel_records")
    from eval_pipeline.data.schemas import TRACES
    from eval_pipeline.traces.files import read_files_source
    from eval_pipeline.traces.ingest import TRACE_SOURCES

    _write_lines(tmp_path / "spans.jsonl", [_span("0000000000000001"), _event("0000000000000001")])
    frame = TRACE_SOURCES.get("files")(FilesSource(paths=["spans.jsonl"]), root=tmp_path, client=None)
    assert list(frame.columns) == TRACES.names
    assert frame[["session_id", "span_id", "source", "line"]].values.tolist() == [
        ["s-1", "0000000000000001", "spans.jsonl", 1]]
    assert read_files_source(FilesSource(paths=["spans.jsonl"]), root=tmp_path).equals(frame)


# --- the example data ---------------------------------------------------------------------------------------------

SESSIONS = 8
SPAN_RECORDS, EVENT_RECORDS = 81, 50
OTLP_SPANS, OTLP_EVENTS = 21, 14
VERDICTS = {  # testScenarioId: (exact, in order, any order); None: the session is an error (no event records)
    "happy-booking": (True, True, True), "weather-then-flights": (True, True, True),
    "book-before-search": (False, False, True), "search-without-booking": (False, False, False),
    "repeated-search": (False, True, True), "weather-without-tool": (False, False, False),
    "cancel-and-rebook": (True, True, True), "missing-event-records": None}


def _make_examples() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_examples"] = module
    spec.loader.exec_module(module)
    return module


def _in_order(expected: list[str], actual: list[str]) -> bool:
    remaining = iter(actual)
    return all(name in remaining for name in expected)


def test_the_example_files_read_with_the_counts_the_readme_states() -> None:
    spans = list(read_span_files(["travel_agent_spans.jsonl"], EXAMPLES))
    otlp = list(read_span_files(["travel_agent_otlp.json"], EXAMPLES))
    assert (sum(r.is_span for r in spans), sum(not r.is_span for r in spans)) == (SPAN_RECORDS, EVENT_RECORDS)
    assert (sum(r.is_span for r in otlp), sum(not r.is_span for r in otlp)) == (OTLP_SPANS, OTLP_EVENTS)
    sessions = {r.data["attributes"]["session.id"] for r in spans if r.is_span}
    assert len(sessions) == SESSIONS
    spans_with_events = {r.data["spanId"] for r in spans if not r.is_span}
    without = {r.data["attributes"]["session.id"] for r in spans if r.is_span} - \
        {r.data["attributes"]["session.id"] for r in spans if r.is_span and r.data["spanId"] in spans_with_events}
    assert len(without) == 1 and next(iter(without)).startswith("travel-missing-event-records-")
    readme = (EXAMPLES / "README.md").read_text()
    for figure in (f"{SESSIONS} sessions", f"{SPAN_RECORDS} span records", f"{EVENT_RECORDS} event records",
                   f"{OTLP_SPANS} span records and {OTLP_EVENTS} event records"):
        assert figure in readme
    folder = list(read_span_files(["."], EXAMPLES))  # the ground truth beside the spans is not span data
    assert len(folder) == len(spans) + len(otlp)


def test_the_otlp_export_holds_the_same_records_as_the_jsonl() -> None:
    jsonl = {(r.data["spanId"], r.is_span): r.data for r in read_span_files(["travel_agent_spans.jsonl"], EXAMPLES)}
    otlp = list(read_span_files(["travel_agent_otlp.json"], EXAMPLES))
    assert otlp and all(r.data == jsonl[(r.data["spanId"], r.is_span)] for r in otlp)
    sessions = {r.data["attributes"]["session.id"] for r in otlp if r.is_span}
    assert {s.split("-", 1)[1].rsplit("-", 1)[0] for s in sessions} == {"happy-booking", "book-before-search"}


def test_the_ground_truth_matches_the_sessions_and_the_readme_verdicts() -> None:
    truth = validated(EvaluationMetadata, json.loads((EXAMPLES / "travel_agent_ground_truth.json").read_text()))
    records = [r for r in read_span_files(["travel_agent_spans.jsonl"], EXAMPLES) if r.is_span]
    by_session = {s.sessionId: s for s in truth.sessionMetadata}
    assert set(by_session) == {r.data["attributes"]["session.id"] for r in records}
    readme = (EXAMPLES / "README.md").read_text()
    for session_id, meta in by_session.items():
        tools = [r.data["attributes"]["gen_ai.tool.name"] for r in sorted(records,
                                                                          key=lambda r: r.data["startTimeUnixNano"])
                 if r.data["attributes"]["session.id"] == session_id and "gen_ai.tool.name" in r.data["attributes"]]
        expected = meta.groundTruth.inline.expectedTrajectory.toolNames
        verdict = VERDICTS[meta.testScenarioId]
        if verdict is not None:
            assert (tools == expected, _in_order(expected, tools), set(expected) <= set(tools)) == verdict, session_id
        marks = "error" if verdict is None else " \\| ".join("yes" if v else "no" for v in verdict)
        [row] = [line for line in readme.splitlines() if line.startswith(f"| `{meta.testScenarioId}` |")]
        assert f"| {marks} |" in row, row


def test_the_example_script_is_deterministic(tmp_path: Path) -> None:
    counts = _make_examples().write_examples(tmp_path)
    assert counts == {"sessions": SESSIONS, "spans": SPAN_RECORDS, "events": EVENT_RECORDS,
                      "otlp_records": OTLP_SPANS + OTLP_EVENTS}
    for name in ("travel_agent_spans.jsonl", "travel_agent_ground_truth.json", "travel_agent_otlp.json"):
        assert (tmp_path / name).read_bytes() == (EXAMPLES / name).read_bytes(), name


def test_the_example_sessions_read_through_the_whole_ingest() -> None:
    pytest.importorskip("eval_pipeline.traces.otel_records")
    sessions_module = pytest.importorskip("eval_pipeline.traces.sessions")
    if not hasattr(sessions_module, "sessions_from_traces"):
        pytest.skip("sessions_from_traces is not there yet")
    from eval_pipeline.traces.files import read_files_source

    frame = read_files_source(FilesSource(paths=["travel_agent_spans.jsonl"]), root=EXAMPLES)
    assert len(frame) == SPAN_RECORDS and frame["session_id"].nunique() == SESSIONS
    sessions = {s.session_id.split("-", 1)[1].rsplit("-", 1)[0]: s
                for s in sessions_module.sessions_from_traces(frame)}
    assert sessions["missing-event-records"].error_code == "LogEventMissingException"
    assert [name for name, s in sessions.items() if s.error] == ["missing-event-records"]
    assert sessions["repeated-search"].tool_names == ["search_flights", "search_flights", "book_flight"]
    assert {name: len(s.turns) for name, s in sessions.items()} == {
        "happy-booking": 2, "weather-then-flights": 1, "book-before-search": 1, "search-without-booking": 2,
        "repeated-search": 2, "weather-without-tool": 1, "cancel-and-rebook": 3, "missing-event-records": 1}


def test_the_examples_ingest_as_a_files_data_source_with_filters() -> None:
    pytest.importorskip("eval_pipeline.traces.otel_records")
    from eval_pipeline.traces.ingest import ingest
    from eval_pipeline.traces.request import DataSourceConfig

    def rows(**files: object) -> int:
        config = validated(DataSourceConfig, {"files": {"paths": ["travel_agent_spans.jsonl"]} | files})
        return len(ingest(config, root=EXAMPLES))

    assert rows() == SPAN_RECORDS
    assert rows(serviceNames=["travel_agent.DEFAULT"]) == SPAN_RECORDS
    assert rows(serviceNames=["another_agent.DEFAULT"]) == 0
    happy = next(s for s in json.loads((EXAMPLES / "travel_agent_ground_truth.json").read_text())["sessionMetadata"]
                 if s["testScenarioId"] == "happy-booking")["sessionId"]
    assert rows(filterConfig={"sessionIds": [happy]}) == 12


def test_the_bench_runs_at_a_tiny_size(tmp_path: Path) -> None:
    for module in ("eval_pipeline.traces.otel_records", "eval_pipeline.traces.evaluation",
                   "eval_pipeline.traces.evaluators.trajectory"):
        pytest.importorskip(module)
    result = subprocess.run([sys.executable, str(REPO / "bench" / "trace_ingest.py"), "--spans", "120",
                             "--sessions", "6", "--json"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
    rows = {row["phase"]: row for row in map(json.loads, result.stdout.strip().splitlines()[-3:])}
    assert set(rows) == {"baseline", "ingest", "evaluate"}
    assert rows["baseline"]["spans"] == rows["ingest"]["spans"] == rows["evaluate"]["spans"] == 120
    assert rows["evaluate"]["sessions"] == 6 and rows["evaluate"]["results"] == 18
    assert rows["evaluate"]["errors"] == 0
    spec = importlib.util.spec_from_file_location("trace_ingest_bench", REPO / "bench" / "trace_ingest.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    plans = [bench.session_plan(index, 20) for index in range(6)]
    called = [[use.name for turn in turns for cycle in turn.cycles for use in cycle] for turns, _ in plans]
    assert all(sum(3 + 2 * len(t.cycles) + sum(map(len, t.cycles)) for t in turns) == 20 for turns, _ in plans)
    expected = [plan[1] for plan in plans]
    means = {"Builtin.TrajectoryExactOrderMatch": [c == e for c, e in zip(called, expected, strict=True)],
             "Builtin.TrajectoryInOrderMatch": [_in_order(e, c) for c, e in zip(called, expected, strict=True)],
             "Builtin.TrajectoryAnyOrderMatch": [set(e) <= set(c) for c, e in zip(called, expected, strict=True)]}
    assert rows["evaluate"]["mean_scores"] == {k: round(sum(v) / len(v), 4) for k, v in means.items()}
    from eval_pipeline.traces.files import read_files_source

    bench.generate(tmp_path / "spans.jsonl", 120, 6)
    frame = read_files_source(FilesSource(paths=["spans.jsonl"]), root=tmp_path)
    table = sum(int(frame[name].memory_usage(deep=True, index=False)) for name in frame.columns) / 2**20
    assert rows["ingest"]["table_mb"] == rows["evaluate"]["table_mb"] == round(table, 1) > 0
