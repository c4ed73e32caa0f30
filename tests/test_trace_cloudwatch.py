"""CloudWatch Logs ingestion through boto3 against a real moto server on 127.0.0.1: span records in aws/spans,
event records in runtime log groups, each filter, pagination, plain log lines, throttling retries."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from eval_pipeline.errors import EvalInputError
from eval_pipeline.traces import cloudwatch
from eval_pipeline.traces.cloudwatch import cloudwatch_records, log_events, logs_client
from eval_pipeline.traces.request import CloudWatchLogsSource
from tests.cloudwatch_spans import GROUP_A, GROUP_B, SERVICE_A, SERVICE_B, SPANS, record_sessions


@pytest.fixture
def logs_env(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", aws_env)
    return aws_env


@pytest.fixture
def recorded(logs_env: str):
    from tests.cloudwatch_spans import base_ms

    start = base_ms()
    return start, record_sessions(logs_client(), start)


def _source(**fields: Any) -> CloudWatchLogsSource:
    return CloudWatchLogsSource.model_validate(fields)


def _read(source: CloudWatchLogsSource, messages: list[str] | None = None):
    records = cloudwatch_records(source, client=logs_client(), log=(messages.append if messages is not None
                                                                    else None))
    spans = {(r.data["traceId"], r.data["spanId"]) for r in records if r.source == SPANS}
    events = {(r.source, r.data["traceId"], r.data["spanId"]) for r in records if r.source != SPANS}
    return records, spans, events


def _expected_events(rec, sessions: list[str]) -> set[tuple[str, str, str]]:
    return {(group, e["traceId"], e["spanId"]) for group, items in rec.events.items() for e in items
            if any(e["traceId"] in rec.traces[s] for s in sessions)}


def _expected_spans(rec, sessions: list[str]) -> set[tuple[str, str]]:
    return set().union(*(rec.span_ids(s) for s in sessions))


def test_service_filter_reads_spans_and_events_of_that_service(recorded) -> None:
    _, rec = recorded
    records, spans, events = _read(_source(serviceNames=[SERVICE_A], logGroupNames=[GROUP_A]))
    assert spans == _expected_spans(rec, ["sess-1", "sess-10"])
    assert len(spans) == 12                                     # 3 turns x 4 spans
    assert events == _expected_events(rec, ["sess-1", "sess-10"])
    assert len(events) == 6                                     # agent + chat bodies per turn
    assert all(r.line is None for r in records)
    # RawRecords are the parsed JSON objects as put
    by_id = {(s["traceId"], s["spanId"]): s for s in rec.spans}
    assert all(r.data == by_id[(r.data["traceId"], r.data["spanId"])] for r in records if r.source == SPANS)


def test_span_named_log_groups_are_read_without_log_group_names(recorded) -> None:
    _, rec = recorded
    _, spans, events = _read(_source(serviceNames=[SERVICE_B]))
    assert spans == _expected_spans(rec, ["sess-2", "sess-3"])
    assert events == _expected_events(rec, ["sess-2"])          # sess-3 has no event records
    assert {group for group, _, _ in events} == {GROUP_B}


def test_without_log_groups_agent_a_has_spans_but_no_events(recorded) -> None:
    _, rec = recorded
    _, spans, events = _read(_source(serviceNames=[SERVICE_A]))
    assert spans == _expected_spans(rec, ["sess-1", "sess-10"]) and events == set()


def test_log_group_prefixes(recorded) -> None:
    _, rec = recorded
    _, spans, events = _read(_source(serviceNames=[SERVICE_A, SERVICE_B],
                                     logGroupNamePrefixes=["/aws/bedrock-agentcore/runtimes/agent_a"]))
    assert spans == _expected_spans(rec, ["sess-1", "sess-10", "sess-2", "sess-3"])
    assert events == _expected_events(rec, ["sess-1", "sess-10", "sess-2"])


def test_session_ids_match_exactly_not_as_substrings(recorded) -> None:
    _, rec = recorded
    _, spans, events = _read(_source(serviceNames=[SERVICE_A], logGroupNames=[GROUP_A],
                                     filterConfig={"sessionIds": ["sess-1"]}))
    assert spans == _expected_spans(rec, ["sess-1"]) and len(spans) == 8
    assert events == _expected_events(rec, ["sess-1"])
    _, spans, _ = _read(_source(serviceNames=[SERVICE_A, SERVICE_B], logGroupNames=[GROUP_A],
                                filterConfig={"sessionIds": ["sess-10", "sess-2"]}))
    assert spans == _expected_spans(rec, ["sess-10", "sess-2"])


def test_session_of_another_service_is_not_read(recorded) -> None:
    _, spans, _ = _read(_source(serviceNames=[SERVICE_A], filterConfig={"sessionIds": ["sess-2"]}))
    assert spans == set()


def test_time_range_keeps_sessions_starting_inside_it_whole(recorded) -> None:
    start, rec = recorded
    # sess-1 starts at +0 min (turns at +0 and +2), sess-10 at +10, sess-2 at +20, sess-3 at +30.
    # A range from +1 to +11 minutes holds spans of sess-1's second turn and sess-10's only turn: both whole.
    window = {"startTime": datetime.fromtimestamp((start + 60_000) / 1000, UTC),
              "endTime": datetime.fromtimestamp((start + 11 * 60_000) / 1000, UTC)}
    _, spans, events = _read(_source(serviceNames=[SERVICE_A, SERVICE_B], logGroupNames=[GROUP_A],
                                     filterConfig={"timeRange": window}))
    assert spans == _expected_spans(rec, ["sess-1", "sess-10"])
    assert events == _expected_events(rec, ["sess-1", "sess-10"])
    # from +21 to +40 minutes: sess-3 only (sess-2's spans start between +20:00 and +20:08)
    window = {"startTime": datetime.fromtimestamp((start + 21 * 60_000) / 1000, UTC),
              "endTime": datetime.fromtimestamp((start + 40 * 60_000) / 1000, UTC)}
    _, spans, _ = _read(_source(serviceNames=[SERVICE_B], filterConfig={"timeRange": window}))
    assert spans == _expected_spans(rec, ["sess-3"])


def test_pagination_reads_every_page(recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    _, rec = recorded
    client = logs_client()
    calls: list[dict] = []
    client.meta.events.register("before-call.cloudwatch-logs.FilterLogEvents",
                                lambda params, **_: calls.append(params))
    all_spans = list(log_events(client, SPANS, None, None, None, required=True, field="x"))
    paged = list(log_events(client, SPANS, None, None, None, required=True, field="x", limit=7))
    assert len(all_spans) == len(rec.spans) == 20
    assert [e["eventId"] for e in paged] == [e["eventId"] for e in all_spans]
    assert len(calls) == 1 + 3                                  # 20 events in pages of 7
    monkeypatch.setattr(cloudwatch, "PAGE_SIZE", 3)
    records = cloudwatch_records(_source(serviceNames=[SERVICE_A, SERVICE_B], logGroupNames=[GROUP_A]),
                                 client=client)
    assert {(r.data["traceId"], r.data["spanId"]) for r in records if r.source == SPANS} == \
        {(s["traceId"], s["spanId"]) for s in rec.spans}


def test_plain_log_lines_are_skipped_and_reported(recorded) -> None:
    messages: list[str] = []
    _read(_source(serviceNames=[SERVICE_A], logGroupNames=[GROUP_A]), messages)
    assert len(messages) == 1
    assert "12 span records of 3 traces, 6 event records" in messages[0]
    # moto ignores the ?-alternatives pattern, so both plain lines of the runtime group come back and are skipped
    assert f"{GROUP_A}: 8 read, 2 skipped" in messages[0]


def test_a_malformed_span_line_is_an_error_naming_the_group(logs_env: str) -> None:
    from tests.cloudwatch_spans import base_ms, put_records

    client = logs_client()
    put_records(client, SPANS, [], stream="default",
                extra_lines=[(base_ms(), '{"traceId": "ab", "spanId": "cd", "name": "chat", "attributes": {')])
    with pytest.raises(EvalInputError, match=r"aws/spans/default.*span-shaped record is not valid JSON"):
        cloudwatch_records(_source(serviceNames=[SERVICE_A]), client=client)


def test_a_missing_log_group_is_an_input_error(recorded) -> None:
    with pytest.raises(EvalInputError, match=r"logGroupNames.*'/aws/nowhere' does not exist"):
        _read(_source(serviceNames=[SERVICE_A], logGroupNames=["/aws/nowhere"]))
    with pytest.raises(EvalInputError, match="spansLogGroupName"):
        _read(_source(serviceNames=[SERVICE_A], spansLogGroupName="no/spans"))


def test_endpoint_from_aws_endpoint_url_logs(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_LOGS", aws_env)
    client = logs_client()
    assert client.meta.endpoint_url == aws_env
    assert client.describe_log_groups()["logGroups"] == []
    assert logs_client("eu-west-1").meta.region_name == "eu-west-1"


class _ThrottlingProxy:
    """Answers the first ``throttles`` FilterLogEvents calls with ThrottlingException (HTTP 400, JSON protocol)
    and forwards everything else to moto."""

    def __init__(self, upstream: str, throttles: int) -> None:
        self.upstream, self.remaining, self.throttled = upstream, throttles, 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                target = self.headers.get("X-Amz-Target", "")
                if target.endswith("FilterLogEvents") and proxy.remaining != 0:
                    proxy.remaining -= 1
                    proxy.throttled += 1
                    payload = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
                    self.send_response(400)
                    self.send_header("Content-Type", "application/x-amz-json-1.1")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                reply = requests.post(proxy.upstream + self.path, data=body, headers=headers, timeout=30)
                self.send_response(reply.status_code)
                for key in ("Content-Type", "x-amzn-RequestId"):
                    if key in reply.headers:
                        self.send_header(key, reply.headers[key])
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_throttling_is_retried_then_reads_everything(recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    _, rec = recorded
    proxy = _ThrottlingProxy(os.environ["AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"], 2)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", proxy.url)
        records = cloudwatch_records(_source(serviceNames=[SERVICE_A], logGroupNames=[GROUP_A]),
                                     client=logs_client(max_attempts=4))
        assert proxy.throttled == 2
        assert {(r.data["traceId"], r.data["spanId"]) for r in records if r.source == SPANS} == \
            _expected_spans(rec, ["sess-1", "sess-10"])
    finally:
        proxy.close()


def test_throttling_after_every_retry_is_an_error(recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    proxy = _ThrottlingProxy(os.environ["AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"], -1)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", proxy.url)
        with pytest.raises(ClientError, match="ThrottlingException"):
            cloudwatch_records(_source(serviceNames=[SERVICE_A]), client=logs_client(max_attempts=3))
        assert proxy.throttled == 3                             # 3 calls in all, then the error
    finally:
        proxy.close()


def test_read_cloudwatch_source_gives_the_traces_table(recorded) -> None:
    pytest.importorskip("eval_pipeline.traces.otel_records", reason="engineer 1's span reader")
    from eval_pipeline.data.schemas import TRACES
    from eval_pipeline.traces.cloudwatch import read_cloudwatch_source

    _, rec = recorded
    frame = read_cloudwatch_source(_source(serviceNames=[SERVICE_A, SERVICE_B], logGroupNames=[GROUP_A],
                                           filterConfig={"sessionIds": ["sess-1", "sess-2", "sess-3"]}))
    assert list(frame.columns) == TRACES.names
    assert set(frame["session_id"]) == {"sess-1", "sess-2", "sess-3"}
    assert set(zip(frame["trace_id"], frame["span_id"], strict=True)) == \
        _expected_spans(rec, ["sess-1", "sess-2", "sess-3"])
    assert set(frame["source"]) == {SPANS}
    bodies = dict(zip(zip(frame["trace_id"], frame["span_id"], strict=True), frame["has_body"], strict=True))
    with_events = {(e["traceId"], e["spanId"]) for items in rec.events.values() for e in items}
    wanted = {t for sid in ("sess-1", "sess-2", "sess-3") for t in rec.traces[sid]}
    roots = {(s["traceId"], s["spanId"]) for s in rec.spans
             if s["name"].startswith("invoke_agent") and s["traceId"] in wanted}
    assert len(roots) == 4
    for key in roots:
        assert bool(bodies[key]) is (key in with_events)        # sess-3's root span: no event record, no body
    assert not any(bodies[k] for k in roots if k[0] in rec.traces["sess-3"])
