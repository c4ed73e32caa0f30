"""The streaming span reader gives exactly what the reader before it gave: the same Span values in the same order,
and the same ``traces`` table, on the fixtures, the example data, a bench-shaped sample and records built in
memory. What the reader before it gave is recorded in ``tests/fixtures/trace_spans_golden.json`` (the fixtures)
and ``tests/fixtures/trace_ingest_golden.json`` (the rest, tables' dtypes included); the rest is invariance that
needs no old code: the same spans and table whatever the order of span and event records, whatever the chunk size
of ``traces_frame``, with span records repeated. And the reader never holds the parsed records all at once."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import random
import re
import weakref
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from eval_pipeline.data.schemas import TRACES
from eval_pipeline.traces import otel_records
from eval_pipeline.traces.files import read_span_files
from eval_pipeline.traces.records import RawRecord
from eval_pipeline.traces.scopes import content, memo
from eval_pipeline.traces.spans import Span, spans_frame

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "traces"
EXAMPLES = REPO / "examples" / "data" / "traces"
GOLDEN = REPO / "tests" / "fixtures" / "trace_spans_golden.json"
INGEST_GOLDEN = REPO / "tests" / "fixtures" / "trace_ingest_golden.json"
BENCH_SAMPLE = REPO / "tests" / "fixtures" / "trace_bench_sample.jsonl"
CHUNKS = (1, 3, 7, 10_000)
ORDERS = ("as read", "events first", "reversed", "shuffled 11", "shuffled 12", "shuffled 13", "interleaved")


@cache
def golden() -> dict[str, Any]:
    return json.loads(INGEST_GOLDEN.read_text())


@cache
def fixture_golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


def fixture_records(path: Path) -> list[RawRecord]:
    lines = path.read_text().splitlines()
    return [RawRecord(json.loads(text), path.name, number) for number, text in enumerate(lines, 1) if text.strip()]


def bench_records() -> list[RawRecord]:
    """A sample that ``bench/trace_ingest.py``'s ``generate`` wrote (24 spans, 3 sessions)."""
    return list(read_span_files([BENCH_SAMPLE.name], BENCH_SAMPLE.parent))


unpicklable = lambda: None  # noqa: E731 - the point is that it cannot be pickled (no importable name)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def in_memory_records() -> list[RawRecord]:
    """Records built in memory may hold tuples, non-text keys or objects that cannot be pickled."""
    trace, agent, tool = "ab" * 16, "a" * 16, "c" * 16
    return [
        RawRecord({"traceId": trace, "spanId": agent, "name": "invoke_agent a", "startTimeUnixNano": 1,
                   "scope": {"name": "strands.telemetry.tracer"},
                   "attributes": {"gen_ai.operation.name": "invoke_agent", "session.id": "s",
                                  "gen_ai.agent.tools": ("search", "book"), "odd": {1: (2, 3)},
                                  "callable": unpicklable}}, "mem", 1),
        RawRecord({"traceId": trace, "spanId": tool, "name": "execute_tool search", "startTimeUnixNano": 2,
                   "parentSpanId": agent, "attributes": {"gen_ai.operation.name": "execute_tool",
                                                         "gen_ai.tool.name": "search"}}, "mem", 2),
        RawRecord({"traceId": trace, "spanId": "d" * 16, "name": "chat", "startTimeUnixNano": 4,
                   "parentSpanId": agent.upper(), "status": {"code": 2, "message": "Städte: 東京"},
                   "attributes": {"gen_ai.operation.name": "chat", "städte": "東京"}}, "mem", 4),
        RawRecord({"traceId": trace, "spanId": "e" * 16, "name": "chat", "startTimeUnixNano": "5",
                   "endTimeUnixNano": "6", "parentSpanId": "0" * 16, "status": {"code": "STATUS_CODE_OK"},
                   "resource": {"attributes": {"service.name": "svc"}}}, "mem", 5),
        RawRecord({"traceId": trace, "spanId": tool, "timeUnixNano": 3,
                   "attributes": {"event.name": "x", "odd": (1, unpicklable)},
                   "body": {"input": {"messages": [{"role": "tool", "content": "a", 5: ("b",)}]},
                            "output": {"messages": [{"role": "assistant", "content": "c"}]}}}, "mem", 3),
    ]


def repeated_records() -> list[RawRecord]:
    """A fixture's records, then its span records renamed, then its records again (events twice)."""
    records = fixture_records(FIXTURES / "strands_cloudwatch.jsonl")
    changed = [RawRecord({**r.data, "name": "renamed"}, r.source, 100 + i) for i, r in enumerate(records)
               if r.is_span]
    return records + changed + records


def nullable_spans() -> list[Span]:
    return [Span(session_id=None, trace_id="t" * 32, span_id=str(i) * 16, tokens_in=i if i % 2 else None,
                 start_ns=1_795_165_200_000_000_001 + i, has_body=bool(i % 2), line=i) for i in range(5)]


def mixed_spans() -> list[Span]:
    """Spans whose columns a chunk alone would infer differently: text beside a number, all missing, booleans,
    nullable integers."""
    return [Span(session_id="s" if i == 0 else None, trace_id="e" * 32, span_id=f"{i:016x}", name="n",
                 operation=None if i < 3 else str(i), model=[None, "m", 7, None, None, None][i],
                 error=None, tokens_in=None if i % 2 else i, has_body=i == 4,
                 tool_args=None if i else "{}") for i in range(6)]


def rows_of(spans: list[Span]) -> list[dict[str, Any]]:
    return [span.as_row() for span in spans]


def table_of(frame: pd.DataFrame) -> dict[str, Any]:
    """A ``traces`` table as golden data: its columns' dtypes (in order) and its rows (missing values None)."""
    return {"dtypes": {name: str(dtype) for name, dtype in frame.dtypes.items()},
            "rows": frame.astype(object).where(frame.notna(), None).to_dict("records")}


def without_addresses(value: Any) -> Any:
    """Rows with the memory addresses that ``str`` of an object writes taken out."""
    if isinstance(value, list):
        return [without_addresses(item) for item in value]
    if isinstance(value, dict):
        return {key: without_addresses(item) for key, item in value.items()}
    return _ADDRESS.sub(" at 0x", value) if isinstance(value, str) else value


def same(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return rows


def assert_table(frame: pd.DataFrame, expected: dict[str, Any], clean: Any = same) -> None:
    assert frame.columns.tolist() == TRACES.names == list(expected["dtypes"])
    got = table_of(frame)
    assert got["dtypes"] == expected["dtypes"]
    assert clean(got["rows"]) == expected["rows"]


def assert_reads_as(records: list[RawRecord], expected: dict[str, Any], clean: Any = same) -> list[Span]:
    """Both readers give the expected spans and table: ``spans_from_records`` (then ``spans_frame``) and
    ``traces_frame`` at every chunk size."""
    memo.clear()
    spans = otel_records.spans_from_records(iter(records))
    assert clean(rows_of(spans)) == expected["rows"]
    assert_table(spans_frame(spans), expected, clean)
    for chunk_rows in CHUNKS:
        assert_table(otel_records.traces_frame(iter(records), chunk_rows=chunk_rows), expected, clean)
    return spans


def fixture_table(name: str) -> dict[str, Any]:
    return {"dtypes": golden()["fixtures"][name], "rows": fixture_golden()[name]}


@pytest.mark.parametrize("name", sorted(path.name for path in FIXTURES.glob("*.jsonl")))
def test_each_fixture_reads_as_before(name: str) -> None:
    assert_reads_as(fixture_records(FIXTURES / name), fixture_table(name))


def test_the_golden_files_hold_every_fixture() -> None:
    names = sorted(path.name for path in FIXTURES.glob("*.jsonl"))
    assert sorted(fixture_golden()) == sorted(golden()["fixtures"]) == names


@pytest.mark.parametrize("name", ["travel_agent_spans.jsonl", "travel_agent_otlp.json"])
def test_the_example_data_reads_as_before(name: str) -> None:
    spans = assert_reads_as(list(read_span_files([name], EXAMPLES)), golden()["examples"][name])
    assert len(spans) > 20 and any(span.has_body for span in spans)


def test_a_bench_shaped_sample_reads_as_before() -> None:
    spans = assert_reads_as(bench_records(), golden()["bench_sample"])
    assert len(spans) == 24 and len({span.session_id for span in spans}) == 3


def test_values_that_are_not_json_read_as_before() -> None:
    spans = assert_reads_as(in_memory_records(), golden()["in_memory"], without_addresses)
    assert spans[0].available_tools is None, "a tuple is not a list of tool names"
    assert "<function <lambda> at 0x" in spans[0].attributes


def every_record() -> list[RawRecord]:
    """The example spans and every fixture: no two files share a trace."""
    records = list(read_span_files(["travel_agent_spans.jsonl"], EXAMPLES))
    return records + [record for path in sorted(FIXTURES.glob("*.jsonl")) for record in fixture_records(path)]


def every_golden_row() -> dict[tuple[str, str], dict[str, Any]]:
    rows = golden()["examples"]["travel_agent_spans.jsonl"]["rows"]
    rows = rows + [row for name in sorted(fixture_golden()) for row in fixture_golden()[name]]
    by_key = {(row["trace_id"], row["span_id"]): row for row in rows}
    assert len(by_key) == len(rows)
    return by_key


def reordered(records: list[RawRecord], order: str) -> list[RawRecord]:
    records = list(records)
    if order == "events first":
        records.sort(key=lambda record: record.is_span)
    elif order == "reversed":
        records.reverse()
    elif order.startswith("shuffled"):
        random.Random(int(order.split()[1])).shuffle(records)
    elif order == "interleaved":
        spans = [r for r in records if r.is_span]
        events = [r for r in records if not r.is_span]
        records = [r for pair in zip(events, spans, strict=False) for r in pair] + spans[len(events):]
    return records


def key_of(record: RawRecord) -> tuple[str, str]:
    return record.data["traceId"].lower(), record.data["spanId"].lower()


def expected_in_order(records: list[RawRecord]) -> dict[str, Any]:
    """The golden spans, in the order their span records first come, as a table."""
    by_key = every_golden_row()
    keys = list(dict.fromkeys(key_of(record) for record in records if record.is_span))
    assert sorted(keys) == sorted(by_key)
    dtypes = golden()["examples"]["travel_agent_spans.jsonl"]["dtypes"]
    return {"dtypes": dtypes, "rows": [by_key[key] for key in keys]}


@pytest.mark.parametrize("order", ORDERS)
def test_any_order_of_span_and_event_records_reads_the_same_spans(order: str) -> None:
    records = reordered(every_record(), order)
    if order != "as read":
        assert records != every_record()
    spans = assert_reads_as(records, expected_in_order(records))
    assert sum(span.has_body for span in spans) > 50


@pytest.mark.parametrize("order", ["as read", "reversed", "shuffled 11"])
def test_span_records_repeated_read_as_their_first(order: str) -> None:
    """A span record repeated (the same record again, then a changed one last) is kept as it first came."""
    records = reordered(every_record(), order)
    spans_only = [r for r in records if r.is_span]
    changed = [RawRecord({**r.data, "name": "renamed", "startTimeUnixNano": 5}, r.source, 10_000 + i)
               for i, r in enumerate(spans_only)]
    repeated = records + list(reversed(spans_only)) + changed
    assert_reads_as(repeated, expected_in_order(records))


def test_records_repeated_keep_the_first_span_and_every_event() -> None:
    spans = assert_reads_as(repeated_records(), golden()["repeated"])
    assert all(span.name != "renamed" for span in spans)
    assert rows_of(spans) != fixture_golden()["strands_cloudwatch.jsonl"], "events repeated are read twice"


def test_the_reader_and_the_chunked_table_agree_on_any_input() -> None:
    """``traces_frame`` is ``spans_frame(spans_from_records(...))`` (what the call sites used before it)."""
    for records in (every_record(), reordered(every_record(), "shuffled 11"), repeated_records(),
                    in_memory_records()):
        expected = spans_frame(otel_records.spans_from_records(records))
        for chunk_rows in CHUNKS:
            pd.testing.assert_frame_equal(otel_records.traces_frame(records, chunk_rows=chunk_rows), expected)


class Data(dict):
    """A record's data that can be watched (a plain dict takes no weak reference)."""


def test_parsed_records_are_not_all_held_while_reading(tmp_path: Path) -> None:
    """The reader keeps each record only in its compact form: of 600 parsed records, none is alive when the last
    is read (the reader before this one held them all until the end)."""
    spec = importlib.util.spec_from_file_location("trace_ingest_bench", REPO / "bench" / "trace_ingest.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path = tmp_path / "spans.jsonl"
    bench.generate(path, 360, 6)
    alive: list[weakref.ref] = []
    counts: list[int] = []

    def watched() -> Iterator[RawRecord]:
        for record in read_span_files([path.name], tmp_path):
            counts.append(sum(ref() is not None for ref in alive))
            data = Data(record.data)
            alive.append(weakref.ref(data))
            yield RawRecord(data, record.source, record.line)
            del data, record

    spans = otel_records.spans_from_records(watched())
    assert len(alive) == 600 and len(spans) == 360
    assert max(counts) <= 1, counts


def outcome(decode: Any, value: Any, role: str) -> object:
    try:
        return decode(value, role)
    except content.BodyShapeError as error:
        return str(error)


def test_the_memo_decodes_as_the_decoder_does() -> None:
    memo.clear()
    payloads: list[tuple[Any, str]] = [
        ('[{"text": "hi"}]', "user"), ([{"text": "hi"}], "user"), ("hi", "user"),
        ({"text": "hi", "n": (1, 2)}, "user"), ({"text": "hi", "n": [1, 2]}, "user"),
        ("hi", "assistant"), ({"role": "user", "content": "1"}, "user"), ({"role": "user", "content": 1}, "user"),
        ({"role": "user", "content": True}, "user"), ({"role": "user", "content": [1]}, "user"),
        ({"content": '[{"toolUse": {"toolUseId": "t", "name": "n", "input": {"a": 1}}}]'}, "assistant"),
        ({1: "x"}, "user"), ({"1": "x"}, "user"), ("x" * (memo.MAX_KEY_CHARS + 1), "user"),
    ]
    for _ in range(2):
        for value, role in payloads:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(content, "TEXT_MEMO_CHARS", -1)
                expected = outcome(content.decode_messages, value, role)
                container = content.is_container(value)
            assert outcome(memo.decoded_messages, value, role) == expected
            assert outcome(content.decode_messages, value, role) == expected
            if not isinstance(expected, str):
                assert memo.decoded_payload(value, role)[1] in (container, None)
    with pytest.raises(content.BodyShapeError):
        memo.decoded_messages(3, "user")


def test_the_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    memo.clear()
    monkeypatch.setattr(memo, "MAX_ENTRIES", 5)
    monkeypatch.setattr(content, "TEXT_MEMO_ENTRIES", 5)
    for index in range(12):
        assert memo.decoded_messages(f"message {index}", "user")[0].content == f"message {index}"
        assert len(memo._decoded) <= 5 and len(content._text_memo) <= 5
    from eval_pipeline.data.messages import ChatMessage
    for index in range(12):
        memo.messages_json([ChatMessage(role="user", content=str(index))])
        assert len(memo._fragments) <= 5
    monkeypatch.setattr(memo, "MAX_TOTAL_CHARS", 100)
    monkeypatch.setattr(content, "TEXT_MEMO_TOTAL_CHARS", 100)
    memo.clear()
    for index in range(12):
        text = f"{index:03d}" + "x" * 40
        assert memo.decoded_messages(text, "user")[0].content == text
        memo.messages_json([ChatMessage(role="user", content=text)])
        assert memo._total[0] <= 100 + 60 and content._text_memo_chars[0] <= 100 + 60
        assert memo._fragment_total[0] <= 100 + 80
    big = ChatMessage(role="user", content="y" * (memo.MAX_KEY_CHARS + 1))
    assert memo.messages_json([big]) == json.dumps([big.to_dict()])
    assert all(found[0] is not big for found in memo._fragments.values()), "too big to keep"


def test_messages_json_is_messages_to_json() -> None:
    from eval_pipeline.data.messages import ChatMessage, ContentPart, ToolCall, messages_to_json

    memo.clear()
    messages = [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="Grüße, 東京 \"x\""),
                ChatMessage(role="assistant", tool_calls=(ToolCall(id="t1", name="s", arguments='{"q": "ü"}'),)),
                ChatMessage(role="tool", content="ok", tool_call_id="t1", name="s", is_error=True),
                ChatMessage(role="user", parts=(ContentPart(text="a"), ContentPart(type="image", media_type="image/png",
                                                                                  data="AAAA")))]
    for count in range(len(messages) + 1):
        for _ in range(2):
            assert memo.messages_json(messages[:count]) == messages_to_json(messages[:count])
    equal = [ChatMessage(role="user", content="Grüße, 東京 \"x\""), ChatMessage(role="user", content="other")]
    assert memo.messages_json(equal) == messages_to_json(equal)
    for index in range(50):  # new objects, some at addresses of freed ones
        fresh = [ChatMessage(role="user", content=f"fresh {index}")]
        assert memo.messages_json(fresh) == messages_to_json(fresh)
        del fresh


def test_spans_frame_takes_any_iterable_and_makes_the_row_by_row_table() -> None:
    spans = nullable_spans()
    assert_table(spans_frame(spans), golden()["nullable"])
    assert_table(spans_frame(iter(spans)), golden()["nullable"])
    assert_table(spans_frame([]), golden()["empty"])
    assert_table(spans_frame(iter([])), golden()["empty"])


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 100])
def test_the_chunked_table_infers_each_column_as_a_whole_column(chunk_rows: int) -> None:
    """Chunks inferred differently (text beside a number, all missing, booleans, nullable integers) still make the
    table ``spans_frame`` makes of all the spans at once (a trace's session filled in)."""
    from eval_pipeline.traces.traces_table import TracesTable

    table = TracesTable(chunk_rows)
    for span in mixed_spans():
        table.add(span)
    assert_table(table.frame(), golden()["mixed"])
    filled = [dataclasses.replace(span, session_id="s") for span in mixed_spans()]
    assert_table(spans_frame(filled), golden()["mixed"])
    assert TracesTable(chunk_rows).frame().columns.tolist() == TRACES.names


def test_no_records_make_the_empty_table() -> None:
    assert_table(spans_frame([]), golden()["empty"])
    assert_table(otel_records.traces_frame([]), golden()["empty"])


def test_the_record_store_gives_back_exactly_what_was_put_and_releases_read_blocks() -> None:
    from eval_pipeline.traces.span_store import RecordStore

    store = RecordStore(block_bytes=200)
    unpicklable = lambda: None  # noqa: E731
    values = [{"n": index, "t": (index, "x" * 40), 1: True} for index in range(12)] + [unpicklable, None]
    references = [store.put(value) for value in values]
    held = store.held_bytes
    assert held >= 200 * 3
    taken = []
    for stored in references[:6]:
        taken.append(store.take(stored))
    assert store.held_bytes < held, "blocks whose records were all read are released"
    taken += [store.take(stored) for stored in references[6:]]
    assert taken[:12] == values[:12] and all(type(t["t"]) is tuple for t in taken[:12])
    assert taken[12] is unpicklable and taken[13] is None
    assert store.held_bytes <= 200, "only the block still being written is held"


def test_resources_equal_in_value_but_not_in_type_are_not_shared() -> None:
    from eval_pipeline.traces.span_store import Resources

    resources = Resources()
    first = resources.shared({"service.name": "a", "n": 1})
    assert resources.shared({"service.name": "a", "n": 1}) is first
    assert resources.shared({"service.name": "a", "n": True})["n"] is True
    assert resources.shared({}) == {}


def test_the_table_holds_the_spans_of_one_chunk_at_most(monkeypatch: pytest.MonkeyPatch) -> None:
    records = list(read_span_files(["travel_agent_spans.jsonl"], EXAMPLES))
    alive: list[weakref.ref] = []
    counts: list[int] = []
    original = otel_records._read_spans

    def watched(given: Any) -> Iterator[Span]:
        for span in original(given):
            counts.append(sum(ref() is not None for ref in alive))
            alive.append(weakref.ref(span))
            yield span

    monkeypatch.setattr(otel_records, "_read_spans", watched)
    frame = otel_records.traces_frame(records, chunk_rows=10)
    assert len(frame) == len(alive) > 50
    assert max(counts) <= 10
