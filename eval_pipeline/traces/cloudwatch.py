"""Spans and their event records read from CloudWatch Logs, where AgentCore observability (ADOT) writes them:
span records in ``aws/spans``, event records (the message bodies) in the agent's runtime log group.

The reader narrows on the server (time range, quoted-term filter patterns of session and trace ids) and filters
again in Python, since a filter pattern matches substrings (``sess-1`` also matches ``sess-10``) and moto ignores
``?``-alternatives. A failure after botocore's retries raises: never a silently shorter table.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from eval_pipeline.errors import EvalInputError
from eval_pipeline.traces.records import RawRecord
from eval_pipeline.traces.request import CloudWatchLogsSource, FilterConfig

MAX_ATTEMPTS = 8
"""Calls per request in all (botocore adaptive retries with backoff on throttling and 5xx)."""
MAX_PATTERN_CHARS = 1024
"""CloudWatch's limit on a filter pattern."""
MAX_PATTERN_QUERIES = 8
"""Above this many pattern chunks per group, read the time window whole and filter in Python instead."""
EVENT_SLACK_MS = 3_600_000
"""Event records are read from an hour before the first span starts to an hour after the last one ends."""
PAGE_SIZE: int | None = None
"""Events per ``filter_log_events`` page (None: the service's default, up to 10,000)."""
LOG_GROUPS_ATTRIBUTE = "aws.log.group.names"

logger = logging.getLogger(__name__)


def logs_client(region: str | None = None, *, max_attempts: int = MAX_ATTEMPTS) -> Any:
    """A boto3 ``logs`` client: standard credential chain, region from ``region`` or the environment, the endpoint
    from ``AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`` / ``AWS_ENDPOINT_URL`` (botocore's own variables) or, failing those,
    ``AWS_ENDPOINT_URL_LOGS``; adaptive retries with backoff, ``max_attempts`` calls in all."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "adaptive", "total_max_attempts": max_attempts}, connect_timeout=10,
                    read_timeout=60)
    endpoint = None
    if not os.environ.get("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS") and not os.environ.get("AWS_ENDPOINT_URL"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_LOGS") or None
    return boto3.session.Session().client("logs", region_name=region, config=config, endpoint_url=endpoint)


def read_cloudwatch_source(source: CloudWatchLogsSource, *, root: Path | None = None, client: Any | None = None,
                           log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """The source's spans as a ``traces`` table: span records of ``serviceNames`` from ``spansLogGroupName``,
    narrowed by ``filterConfig`` (whole sessions), with the event records of their traces from ``logGroupNames``,
    the groups matching ``logGroupNamePrefixes`` and the groups the spans name (``aws.log.group.names``)."""
    from eval_pipeline.traces.ingest import filter_spans
    from eval_pipeline.traces.otel_records import traces_frame

    records = cloudwatch_records(source, client=client or logs_client(source.region), log=log)
    frame = traces_frame(records)
    return filter_spans(frame, source.filterConfig or FilterConfig(), list(source.serviceNames))


@dataclass
class ReadStats:
    """What a read saw, for the log line: messages read and skipped per log group."""

    read: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"{group}: {count} read, {self.skipped.get(group, 0)} skipped (not span or event records)"
                 for group, count in self.read.items()]
        return "; ".join(parts) or "nothing read"


def cloudwatch_records(source: CloudWatchLogsSource, *, client: Any,
                       log: Callable[[str], None] | None = None) -> list[RawRecord]:
    """The span records (Python-filtered on service and session id, whole sessions when a time range is given)
    and the event records of their traces, as ``RawRecord``s whose ``source`` is the log group."""
    say = log or log_info
    stats = ReadStats()
    filters = source.filterConfig or FilterConfig()
    services = set(source.serviceNames)
    wanted = set(filters.sessionIds) | {entry.sessionId for entry in filters.sessionTraceIds}
    start_ms, end_ms = _time_range_ms(filters)
    # A span's record may be written after the span starts: look past the range's end for spans starting in it.
    read_until = end_ms + EVENT_SLACK_MS if end_ms is not None else None
    spans = _span_records(client, source.spansLogGroupName, services, wanted, start_ms, read_until, stats)
    if start_ms is not None or end_ms is not None:
        # A session passes the range when one of its spans starts inside it; read such sessions whole.
        sessions = {_session_of(r.data) for r in spans if _starts_inside(r.data, start_ms, end_ms)} - {None}
        if wanted:
            sessions &= wanted
        spans = _span_records(client, source.spansLogGroupName, services, sessions, None, None, stats) \
            if sessions else []
    traces = {r.data["traceId"] for r in spans}
    groups = _event_groups(client, source, spans)
    events: list[RawRecord] = []
    if traces:
        low, high = _span_window_ms(spans)
        for group in groups:
            events += _event_records(client, group, traces, low - EVENT_SLACK_MS, high + EVENT_SLACK_MS, stats,
                                     required=group in source.logGroupNames)
    say(f"CloudWatch Logs: {len(spans)} span records of {len(traces)} traces, {len(events)} event records from "
        f"{len(groups)} log groups; {stats.summary()}")
    return spans + events


def log_info(message: str) -> None:
    logger.info(message)


def _span_records(client: Any, group: str, services: set[str], sessions: set[str], start_ms: int | None,
                  end_ms: int | None, stats: ReadStats) -> list[RawRecord]:
    """Span records of traces with a span of one of ``services`` (and, when ``sessions`` is given, a span of one
    of those sessions), deduplicated by (traceId, spanId)."""
    by_trace: dict[str, dict[str, RawRecord]] = {}
    for pattern in _patterns(sorted(sessions)):
        for event in log_events(client, group, pattern, start_ms, end_ms, required=True,
                                    field="spansLogGroupName"):
            data = _parse(event, group, stats)
            if data is None or not _is_span(data):
                continue
            if sessions and not any(session in event["message"] for session in sessions):
                continue
            by_trace.setdefault(data["traceId"], {})[data["spanId"]] = RawRecord(data, source=group)
    kept: list[RawRecord] = []
    for records in by_trace.values():
        session_ids = {_session_of(r.data) for r in records.values()} - {None}
        if sessions and not session_ids & sessions:
            continue
        if services and not any(_service_of(r.data) in services for r in records.values()):
            continue
        kept += records.values()
    return kept


def _event_records(client: Any, group: str, traces: set[str], start_ms: int, end_ms: int, stats: ReadStats, *,
                   required: bool) -> list[RawRecord]:
    records: dict[tuple[Any, ...], RawRecord] = {}
    for pattern in _patterns(sorted(traces)):
        for event in log_events(client, group, pattern, start_ms, end_ms, required=required,
                                    field="logGroupNames"):
            data = _parse(event, group, stats)
            if data is None or data.get("traceId") not in traces or _is_span(data):
                continue
            records[(event["logStreamName"], event["eventId"])] = RawRecord(data, source=group)
    return list(records.values())


def _event_groups(client: Any, source: CloudWatchLogsSource, spans: Iterable[RawRecord]) -> list[str]:
    """The log groups to read event records from, in a stable order, without duplicates."""
    groups = list(source.logGroupNames)
    for prefix in source.logGroupNamePrefixes:
        groups += _groups_with_prefix(client, prefix)
    for record in spans:
        named = record.data.get("resource", {}).get("attributes", {}).get(LOG_GROUPS_ATTRIBUTE)
        if isinstance(named, str):
            named = [name.strip() for name in named.split(",")]
        groups += [name for name in named or [] if isinstance(name, str) and name]
    return [g for g in dict.fromkeys(groups) if g != source.spansLogGroupName]


def _groups_with_prefix(client: Any, prefix: str) -> list[str]:
    names: list[str] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"logGroupNamePrefix": prefix}
        if token:
            kwargs["nextToken"] = token
        page = client.describe_log_groups(**kwargs)
        names += [group["logGroupName"] for group in page.get("logGroups", [])]
        token = page.get("nextToken")
        if not token:
            return names


def log_events(client: Any, group: str, pattern: str | None, start_ms: int | None, end_ms: int | None, *,
                   required: bool, field: str, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Every event of ``filter_log_events`` over all pages. A missing group is an input error when the request
    names it (``required``), else it has no events."""
    kwargs: dict[str, Any] = {"logGroupName": group}
    if pattern:
        kwargs["filterPattern"] = pattern
    if start_ms is not None:
        kwargs["startTime"] = max(0, start_ms)
    if end_ms is not None:
        kwargs["endTime"] = end_ms
    if limit or PAGE_SIZE:
        kwargs["limit"] = limit or PAGE_SIZE
    while True:
        try:
            page = client.filter_log_events(**kwargs)
        except client.exceptions.ResourceNotFoundException:
            if required:
                raise EvalInputError(f"log group {group!r} does not exist", field=field) from None
            logger.info("log group %s named by a span does not exist: its sessions have no event records", group)
            return
        yield from page.get("events", [])
        token = page.get("nextToken")
        if not token or token == kwargs.get("nextToken"):
            return
        kwargs["nextToken"] = token


def _patterns(terms: list[str]) -> list[str | None]:
    """Filter patterns matching any of ``terms`` (``?"a" ?"b"``), each within CloudWatch's length limit; ``[None]``
    (no pattern) when there are no terms or too many for a few queries."""
    if not terms:
        return [None]
    patterns, current = [], ""
    for term in terms:
        piece = f'?"{term}"' if len(terms) > 1 else f'"{term}"'
        if current and len(current) + 1 + len(piece) > MAX_PATTERN_CHARS:
            patterns.append(current)
            current = ""
        current = f"{current} {piece}" if current else piece
    patterns.append(current)
    return patterns if len(patterns) <= MAX_PATTERN_QUERIES else [None]


def _parse(event: dict[str, Any], group: str, stats: ReadStats) -> dict[str, Any] | None:
    """The event's message as a JSON object; None (counted as skipped) for a plain log line. A span-shaped
    message that is not valid JSON is an error naming the group, stream and event."""
    message = event.get("message", "")
    stats.read[group] = stats.read.get(group, 0) + 1
    try:
        data = json.loads(message)
    except ValueError as exc:
        data, reason = None, f"not valid JSON ({exc})"
    else:
        reason = "not a JSON object"
    if isinstance(data, dict):
        return data
    if '"traceId"' in message and '"spanId"' in message:
        raise EvalInputError(f"span-shaped record is {reason}: {message[:120]!r}",
                             file=f"{group}/{event.get('logStreamName')}", field=f"event {event.get('eventId')}")
    stats.skipped[group] = stats.skipped.get(group, 0) + 1
    return None


def _is_span(data: dict[str, Any]) -> bool:
    return RawRecord(data).is_span and "traceId" in data


def _session_of(data: dict[str, Any]) -> str | None:
    session = (data.get("attributes") or {}).get("session.id")
    return str(session) if session not in (None, "") else None


def _service_of(data: dict[str, Any]) -> str | None:
    return ((data.get("resource") or {}).get("attributes") or {}).get("service.name")


def _nanos(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _starts_inside(data: dict[str, Any], start_ms: int | None, end_ms: int | None) -> bool:
    start = _nanos(data.get("startTimeUnixNano"))
    if start is None:
        return False
    return (start_ms is None or start >= start_ms * 1_000_000) and (end_ms is None or start <= end_ms * 1_000_000)


def _span_window_ms(spans: list[RawRecord]) -> tuple[int, int]:
    starts = [n for r in spans if (n := _nanos(r.data.get("startTimeUnixNano"))) is not None]
    ends = [n for r in spans if (n := _nanos(r.data.get("endTimeUnixNano"))) is not None] or starts
    if not starts:
        return 0, 2**62 // 1_000_000
    return min(starts) // 1_000_000, -(-max(ends) // 1_000_000)


def _time_range_ms(filters: FilterConfig) -> tuple[int | None, int | None]:
    """The filter's time range in epoch milliseconds (a naive datetime is UTC)."""
    if filters.timeRange is None:
        return None, None
    return _ms(filters.timeRange.startTime), _ms(filters.timeRange.endTime)


def _ms(moment: Any) -> int | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
