"""Realistic AgentCore observability records (the §2.9 shape: Strands scope, ADOT flat JSON) for sessions of two
services, put into CloudWatch Logs at a moto server; shared by the CloudWatch tests."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

SPANS = "aws/spans"
GROUP_A = "/aws/bedrock-agentcore/runtimes/agent_a-AbC123-DEFAULT"
GROUP_B = "/aws/bedrock-agentcore/runtimes/agent_b-XyZ789-DEFAULT"
SERVICE_A, SERVICE_B = "agent_a.DEFAULT", "agent_b.DEFAULT"
SCOPE = "strands.telemetry.tracer"
MINUTE_NS = 60 * 1_000_000_000


def base_ms() -> int:
    """A whole minute three hours ago: recent enough for CloudWatch (and moto) to accept the events."""
    return (int(time.time()) // 60) * 60_000 - 3 * 3_600_000


def hex_id(n: int, width: int) -> str:
    return f"{n:0{width}x}"


@dataclass
class Recorded:
    """What was put: span records by log group, event records by log group, and per session its trace ids."""

    spans: list[dict[str, Any]] = field(default_factory=list)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    traces: dict[str, list[str]] = field(default_factory=dict)
    service: dict[str, str] = field(default_factory=dict)
    span_start_ns: dict[str, list[int]] = field(default_factory=dict)

    def span_ids(self, session: str) -> set[tuple[str, str]]:
        return {(s["traceId"], s["spanId"]) for s in self.spans if s["attributes"].get("session.id") == session}


def turn_records(*, session: str, service: str, group: str, trace: str, first_span: int, start_ns: int,
                 name_group: bool, prompt: str, tool: str, bodies: bool = True) -> tuple[list[dict], list[dict]]:
    """One turn (one trace): invoke_agent → execute_event_loop_cycle → chat, execute_tool; the agent and chat
    spans get event records with the messages (unless ``bodies`` is False)."""
    resource: dict[str, Any] = {"service.name": service, "aws.service.type": "gen_ai_agent",
                                "cloud.platform": "aws_bedrock_agentcore"}
    if name_group:
        resource["aws.log.group.names"] = group
    root, cycle, chat, tool_span = (hex_id(first_span + i, 16) for i in range(4))

    def span(span_id: str, parent: str | None, name: str, offset_s: int, length_s: int,
             attributes: dict[str, Any]) -> dict[str, Any]:
        start = start_ns + offset_s * 1_000_000_000
        record = {"resource": {"attributes": dict(resource)}, "scope": {"name": SCOPE, "version": ""},
                  "traceId": trace, "spanId": span_id, "flags": 256, "name": name, "kind": "INTERNAL",
                  "startTimeUnixNano": start, "endTimeUnixNano": start + length_s * 1_000_000_000,
                  "durationNano": length_s * 1_000_000_000,
                  "attributes": {"session.id": session, **attributes}, "status": {"code": "OK"}}
        if parent:
            record["parentSpanId"] = parent
        return record

    spans = [
        span(root, None, "invoke_agent Strands Agents", 0, 20,
             {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Strands Agents",
              "gen_ai.request.model": "us.anthropic.claude-sonnet-4", "gen_ai.usage.input_tokens": 100,
              "gen_ai.usage.output_tokens": 20, "gen_ai.agent.tools": json.dumps([tool])}),
        span(cycle, root, "execute_event_loop_cycle", 1, 18, {}),
        span(chat, cycle, "chat", 2, 5, {"gen_ai.operation.name": "chat",
                                         "gen_ai.request.model": "us.anthropic.claude-sonnet-4",
                                         "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20}),
        span(tool_span, cycle, f"execute_tool {tool}", 8, 3,
             {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
              "gen_ai.tool.call.id": f"call-{first_span}", "gen_ai.tool.status": "success"}),
    ]
    events = []
    if bodies:
        for span_id, offset_s in ((root, 20), (chat, 7)):
            t = start_ns + offset_s * 1_000_000_000
            events.append({"resource": {"attributes": dict(resource)}, "scope": {"name": SCOPE},
                           "timeUnixNano": t, "observedTimeUnixNano": t, "severityNumber": 9, "traceId": trace,
                           "spanId": span_id, "attributes": {"event.name": SCOPE},
                           "body": {"input": {"messages": [{"role": "user", "content": {
                                        "content": json.dumps([{"text": prompt}])}}]},
                                    "output": {"messages": [{"role": "assistant", "content": {
                                        "message": f"done: {prompt}", "finish_reason": "end_turn"}}]}}})
    return spans, events


def put_records(client: Any, group: str, records: list[dict[str, Any]], *, stream: str = "otel-rt-logs",
                extra_lines: list[tuple[int, str]] = ()) -> None:
    """Put each record as one log event (timestamp: its span's end or its event time, in ms), plus plain lines."""
    exists = client.exceptions.ResourceAlreadyExistsException
    with contextlib.suppress(exists):
        client.create_log_group(logGroupName=group)
    with contextlib.suppress(exists):
        client.create_log_stream(logGroupName=group, logStreamName=stream)
    events = [{"timestamp": int(r.get("endTimeUnixNano") or r["timeUnixNano"]) // 1_000_000,
               "message": json.dumps(r)} for r in records]
    events += [{"timestamp": ts, "message": line} for ts, line in extra_lines]
    events.sort(key=lambda e: e["timestamp"])
    for i in range(0, len(events), 500):
        client.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events[i:i + 500])


def record_sessions(client: Any, start_ms: int) -> Recorded:
    """Four sessions of two services, each session 10 minutes after the previous one:
    ``sess-1`` (agent_a, 2 turns), ``sess-10`` (agent_a, 1 turn: contains ``sess-1`` as a substring),
    ``sess-2`` (agent_b, 1 turn, groups named on the spans), ``sess-3`` (agent_b, 1 turn, no event records).
    agent_a's spans do not name their log group (found only through logGroupNames / prefixes)."""
    recorded = Recorded()
    plan = [("sess-1", SERVICE_A, GROUP_A, False, 2, True), ("sess-10", SERVICE_A, GROUP_A, False, 1, True),
            ("sess-2", SERVICE_B, GROUP_B, True, 1, True), ("sess-3", SERVICE_B, GROUP_B, True, 1, False)]
    events: dict[str, list[dict]] = {GROUP_A: [], GROUP_B: []}
    n_trace, n_span = 1, 1
    for index, (session, service, group, name_group, turns, bodies) in enumerate(plan):
        recorded.service[session] = service
        for turn in range(turns):
            trace = hex_id(n_trace, 32)
            start_ns = (start_ms + index * 10 * 60_000) * 1_000_000 + turn * 2 * MINUTE_NS
            spans, bodies_ = turn_records(session=session, service=service, group=group, trace=trace,
                                          first_span=n_span, start_ns=start_ns, name_group=name_group,
                                          prompt=f"{session} turn {turn}", tool=f"tool_{index}", bodies=bodies)
            recorded.spans += spans
            events[group] += bodies_
            recorded.traces.setdefault(session, []).append(trace)
            recorded.span_start_ns.setdefault(session, []).extend(s["startTimeUnixNano"] for s in spans)
            n_trace, n_span = n_trace + 1, n_span + 4
    recorded.events = events
    put_records(client, SPANS, recorded.spans, stream="default")
    plain = [(start_ms + 1000, "INFO agent started on port 8080"), (start_ms + 2000, "[1.2, 3]")]
    put_records(client, GROUP_A, events[GROUP_A], extra_lines=plain)
    put_records(client, GROUP_B, events[GROUP_B])
    return recorded
