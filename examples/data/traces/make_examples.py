"""Writes the example trace data of this folder (deterministic: the same files every run).

Usage: python examples/data/traces/make_examples.py [--out examples/data/traces]

- ``travel_agent_spans.jsonl``: eight sessions of a Strands travel agent on AgentCore, as the two CloudWatch log
  groups hold them: the span records of ``aws/spans`` first, then the event records (message bodies) of the
  runtime log group. One session has no event records.
- ``travel_agent_ground_truth.json``: their ``evaluationMetadata`` (assertions, expected tools, expected replies).
- ``travel_agent_otlp.json``: two of the sessions as one OTLP/JSON export (``resourceSpans`` + ``resourceLogs``).

``strands_session_records`` builds the records of any scripted session (``bench/trace_ingest.py`` uses it too).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCOPE = {"name": "strands.telemetry.tracer", "version": ""}
SERVICE = "travel_agent.DEFAULT"
LOG_GROUP = "/aws/bedrock-agentcore/runtimes/travel_agent-Tr4vE1a9Nt-DEFAULT"
MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
TOOLS = ("search_flights", "book_flight", "get_weather", "cancel_booking")
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
MS = 1_000_000


@dataclass(frozen=True)
class ToolUse:
    name: str
    arguments: dict[str, Any]
    result: str
    status: str = "success"


@dataclass(frozen=True)
class TurnScript:
    """One turn: the user's prompt, the model's tool calls cycle by cycle (each cycle one model call that asks
    for these tools), the final reply (one more model call), and the reply ground truth expects."""

    prompt: str
    cycles: tuple[tuple[ToolUse, ...], ...]
    reply: str
    expected: str | None = None


@dataclass(frozen=True)
class SessionScript:
    slug: str
    turns: tuple[TurnScript, ...]
    expected_tools: tuple[str, ...]
    assertions: tuple[str, ...]
    with_events: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def session_id(self) -> str:
        return f"travel-{self.slug}-{uuid.uuid5(uuid.NAMESPACE_URL, 'travel-agent/' + self.slug).hex[:16]}"


def _id(*parts: object, size: int) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:size]


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat()


def _tokens(value: object) -> int:
    return 12 + len(json.dumps(value)) // 4


class _SessionWriter:
    """Builds span and event records in the shape the Strands tracer and ADOT write them."""

    def __init__(self, session_id: str, *, service: str, log_group: str, with_events: bool) -> None:
        self.session_id, self.service, self.with_events = session_id, service, with_events
        self.resource = {"attributes": {"service.name": service, "aws.service.type": "gen_ai_agent",
                                        "cloud.platform": "aws_bedrock_agentcore",
                                        "aws.log.group.names": log_group, "telemetry.sdk.language": "python"}}
        self.spans: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    def span(self, trace_id: str, span_id: str, parent: str | None, name: str, kind: str, start: int, end: int,
             attributes: dict[str, Any], body: dict[str, Any] | None) -> None:
        record: dict[str, Any] = {"resource": self.resource, "scope": SCOPE, "traceId": trace_id, "spanId": span_id}
        if parent:
            record["parentSpanId"] = parent
        record |= {"flags": 256, "name": name, "kind": kind, "startTimeUnixNano": start, "endTimeUnixNano": end,
                   "durationNano": end - start,
                   "attributes": {"session.id": self.session_id, **attributes, "aws.local.service": self.service,
                                  "PlatformType": "AWS::BedrockAgentCore"},
                   "status": {"code": "OK"}}
        self.spans.append(record)
        if body is not None and self.with_events:
            self.events.append({"resource": self.resource, "scope": SCOPE, "timeUnixNano": end,
                                "observedTimeUnixNano": end + MS, "severityNumber": 9, "traceId": trace_id,
                                "spanId": span_id, "attributes": {"event.name": SCOPE["name"]}, "body": body})


def _messages_body(history: list[dict[str, Any]], content: list[dict[str, Any]], finish: str) -> dict[str, Any]:
    """A model call's event body: the conversation it was sent, and its reply."""
    return {"input": {"messages": [{"role": m["role"], "content": {"content": json.dumps(m["content"])}}
                                   for m in history]},
            "output": {"messages": [{"role": "assistant", "content": {"message": json.dumps(content),
                                                                       "finish_reason": finish}}]}}


def _tool_body(use: ToolUse, call_id: str, result: list[dict[str, Any]]) -> dict[str, Any]:
    """A tool call's event body: its arguments, and its result."""
    return {"input": {"messages": [{"role": "tool", "content": {"role": "tool", "content": json.dumps(use.arguments),
                                                                "id": call_id}}]},
            "output": {"messages": [{"role": "assistant", "content": {"message": json.dumps(result),
                                                                       "id": call_id}}]}}


def strands_session_records(session_id: str, turns: Sequence[TurnScript], *, start_ns: int,
                            service: str = SERVICE, log_group: str = LOG_GROUP, model: str = MODEL,
                            tools: Sequence[str] = TOOLS, with_events: bool = True,
                            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(span records, event records) of one session: per turn a trace ``invoke_agent`` > ``execute_event_loop_cycle``
    > ``chat`` and ``execute_tool <name>`` spans, in the order they end, each agent/chat/tool span with one event
    record holding its input and output messages (none when ``with_events`` is false)."""
    writer = _SessionWriter(session_id, service=service, log_group=log_group, with_events=with_events)
    history: list[dict[str, Any]] = []
    cursor = start_ns
    for number, turn in enumerate(turns, start=1):
        trace_id = _id(session_id, "turn", number, size=32)
        agent_id = _id(trace_id, "agent", size=16)
        turn_start, cursor = cursor, cursor + MS
        history.append({"role": "user", "content": [{"text": turn.prompt}]})
        spans: list[tuple[Any, ...]] = []
        tokens_in = tokens_out = 0
        for index, asked in enumerate((*turn.cycles, ())):
            cycle_id, cycle_start = _id(trace_id, "cycle", index, size=16), cursor
            uses = [{"toolUse": {"toolUseId": f"tooluse_{_id(trace_id, index, i, size=22)}", "name": use.name,
                                 "input": use.arguments}} for i, use in enumerate(asked)]
            content = uses or [{"text": turn.reply}]
            finish = "tool_use" if uses else "end_turn"
            chat_in, chat_out = _tokens(history), _tokens(content)
            tokens_in, tokens_out = tokens_in + chat_in, tokens_out + chat_out
            chat_start = cursor + MS
            chat_end = chat_start + 700 * MS + 3 * MS * len(json.dumps(content))
            spans.append((_id(trace_id, "chat", index, size=16), cycle_id, "chat", "CLIENT", chat_start, chat_end,
                          {"gen_ai.operation.name": "chat", "gen_ai.system": "strands-agents",
                           "gen_ai.request.model": model, "gen_ai.usage.input_tokens": chat_in,
                           "gen_ai.usage.output_tokens": chat_out, "gen_ai.usage.total_tokens": chat_in + chat_out,
                           "gen_ai.server.time_to_first_token": 310,
                           "gen_ai.server.request.duration": (chat_end - chat_start) // MS,
                           "gen_ai.response.finish_reasons": [finish]},
                          _messages_body(history, content, finish)))
            cursor = chat_end + MS
            history.append({"role": "assistant", "content": content})
            results = []
            for i, (use, block) in enumerate(zip(asked, uses, strict=True)):
                call_id = block["toolUse"]["toolUseId"]
                result = [{"text": use.result}]
                results.append({"toolResult": {"toolUseId": call_id, "status": use.status, "content": result}})
                spans.append((_id(trace_id, "tool", index, i, size=16), cycle_id, f"execute_tool {use.name}",
                              "INTERNAL", cursor, cursor + 240 * MS,
                              {"gen_ai.operation.name": "execute_tool", "gen_ai.system": "strands-agents",
                               "gen_ai.tool.name": use.name, "gen_ai.tool.call.id": call_id,
                               "gen_ai.tool.status": use.status},
                              _tool_body(use, call_id, result)))
                cursor += 241 * MS
            if results:
                history.append({"role": "user", "content": results})
            spans.append((cycle_id, agent_id, "execute_event_loop_cycle", "INTERNAL", cycle_start, cursor,
                          {"event_loop.cycle_id": str(uuid.UUID(_id(trace_id, "cycle-uuid", index, size=32)))},
                          None))
            cursor += MS
        spans.append((agent_id, None, "invoke_agent Strands Agents", "INTERNAL", turn_start, cursor,
                      {"gen_ai.operation.name": "invoke_agent", "gen_ai.system": "strands-agents",
                       "gen_ai.agent.name": "Strands Agents", "gen_ai.request.model": model,
                       "gen_ai.agent.tools": json.dumps(list(tools)), "gen_ai.usage.input_tokens": tokens_in,
                       "gen_ai.usage.output_tokens": tokens_out, "gen_ai.usage.total_tokens": tokens_in + tokens_out,
                       "gen_ai.event.start_time": _iso(turn_start), "gen_ai.event.end_time": _iso(cursor)},
                      {"input": {"messages": [{"role": "user",
                                               "content": {"content": json.dumps([{"text": turn.prompt}])}}]},
                       "output": {"messages": [{"role": "assistant",
                                                "content": {"message": turn.reply, "finish_reason": "end_turn"}}]}}))
        for span_id, parent, name, kind, start, end, attributes, body in sorted(spans, key=lambda s: s[5]):
            writer.span(trace_id, span_id, parent, name, kind, start, end, attributes, body)
        cursor += 30_000 * MS
    return writer.spans, writer.events


# --- the eight example sessions -----------------------------------------------------------------------------------


def _flights(*rows: tuple[str, str, int]) -> str:
    return json.dumps([{"flight": f, "departs": d, "price_usd": p} for f, d, p in rows])


SESSIONS: tuple[SessionScript, ...] = (
    SessionScript(
        "happy-booking",
        (TurnScript("Find me a flight from Seattle to Boston on March 14.",
                    ((ToolUse("search_flights", {"origin": "SEA", "destination": "BOS", "date": "2027-03-14"},
                              _flights(("AS 12", "08:05", 289), ("DL 634", "13:40", 312))),),),
                    "I found two flights on March 14: AS 12 departing 08:05 for $289 and DL 634 departing 13:40 for "
                    "$312. Which one would you like?",
                    "There are two flights: AS 12 at 08:05 for $289 and DL 634 at 13:40 for $312."),
         TurnScript("Book AS 12 for me, please. The passenger is Jordan Lee.",
                    ((ToolUse("book_flight", {"flight": "AS 12", "date": "2027-03-14", "passenger": "Jordan Lee"},
                              json.dumps({"confirmation": "QX7P2M", "status": "confirmed"})),),),
                    "Done: AS 12 on March 14 is booked for Jordan Lee. Your confirmation code is QX7P2M.",
                    "AS 12 on March 14 is booked for Jordan Lee, confirmation QX7P2M.")),
        ("search_flights", "book_flight"),
        ("The agent books flight AS 12 on March 14 for Jordan Lee",
         "The agent gives the user the booking confirmation code"),
        metadata={"split": "dev", "expectation": "correct"}),
    SessionScript(
        "weather-then-flights",
        (TurnScript("I'm thinking of a weekend in Denver. What's the weather on Saturday, and which flights leave "
                    "Chicago that morning?",
                    ((ToolUse("get_weather", {"city": "Denver", "date": "2027-04-10"},
                              json.dumps({"forecast": "sunny", "high_c": 18, "low_c": 4})),),
                     (ToolUse("search_flights", {"origin": "ORD", "destination": "DEN", "date": "2027-04-10"},
                              _flights(("UA 455", "07:10", 178), ("F9 1203", "09:55", 96))),)),
                    "Saturday in Denver looks sunny, 4 to 18 °C. Morning flights from Chicago: UA 455 at 07:10 "
                    "($178) and F9 1203 at 09:55 ($96).",
                    "Sunny in Denver on Saturday (4–18 °C); flights UA 455 at 07:10 for $178 and F9 1203 at 09:55 "
                    "for $96."),),
        ("get_weather", "search_flights"),
        ("The agent reports Saturday's weather in Denver", "The agent lists morning flights from Chicago to Denver"),
        metadata={"split": "dev", "expectation": "correct"}),
    SessionScript(
        "book-before-search",
        (TurnScript("Book the cheapest flight from New York to Miami on April 2 for Sam Ortiz.",
                    ((ToolUse("book_flight", {"flight": "B6 1101", "date": "2027-04-02", "passenger": "Sam Ortiz"},
                              json.dumps({"confirmation": "LM4T9A", "status": "confirmed"})),),
                     (ToolUse("search_flights", {"origin": "JFK", "destination": "MIA", "date": "2027-04-02"},
                              _flights(("NK 307", "06:45", 74), ("B6 1101", "11:20", 129))),)),
                    "I booked B6 1101 on April 2 for Sam Ortiz (confirmation LM4T9A). Note that NK 307 at 06:45 "
                    "was cheaper at $74.",
                    "NK 307 at 06:45 for $74 is the cheapest flight; it is booked for Sam Ortiz."),),
        ("search_flights", "book_flight"),
        ("The agent searches for flights before booking", "The agent books the cheapest flight"),
        metadata={"split": "dev", "expectation": "wrong tool order"}),
    SessionScript(
        "search-without-booking",
        (TurnScript("What flights are there from Austin to Denver on May 5?",
                    ((ToolUse("search_flights", {"origin": "AUS", "destination": "DEN", "date": "2027-05-05"},
                              _flights(("WN 2231", "09:00", 141), ("UA 1789", "15:25", 203))),),),
                    "On May 5 there is WN 2231 at 09:00 for $141 and UA 1789 at 15:25 for $203.",
                    "WN 2231 at 09:00 ($141) and UA 1789 at 15:25 ($203)."),
         TurnScript("Great, book the 9am one for Priya Shah.",
                    (),
                    "You're all set: WN 2231 on May 5 is booked for Priya Shah.",
                    "WN 2231 on May 5 is booked for Priya Shah, with a confirmation code.")),
        ("search_flights", "book_flight"),
        ("The agent books WN 2231 on May 5 for Priya Shah", "The agent gives the user the booking confirmation code"),
        metadata={"split": "dev", "expectation": "missing tool"}),
    SessionScript(
        "repeated-search",
        (TurnScript("Any flights from San Francisco to Los Angeles on June 1?",
                    ((ToolUse("search_flights", {"origin": "SFO", "destination": "LAX", "date": "2027-06-01"},
                              "[]"),),
                     (ToolUse("search_flights", {"origin": "SFO", "destination": "LAX", "date": "2027-06-02"},
                              _flights(("UA 1516", "10:30", 119))),)),
                    "Nothing is left on June 1. On June 2 there is UA 1516 at 10:30 for $119.",
                    "No flights on June 1; UA 1516 on June 2 at 10:30 for $119."),
         TurnScript("OK, book the United one for Alex Kim.",
                    ((ToolUse("book_flight", {"flight": "UA 1516", "date": "2027-06-02", "passenger": "Alex Kim"},
                              json.dumps({"confirmation": "ZR2K8D", "status": "confirmed"})),),),
                    "UA 1516 on June 2 is booked for Alex Kim; confirmation ZR2K8D.",
                    "UA 1516 on June 2 is booked for Alex Kim, confirmation ZR2K8D.")),
        ("search_flights", "book_flight"),
        ("The agent books UA 1516 on June 2 for Alex Kim",),
        metadata={"split": "dev", "expectation": "repeated tool"}),
    SessionScript(
        "weather-without-tool",
        (TurnScript("What's the weather going to be in Lisbon tomorrow?",
                    (),
                    "Lisbon is usually mild and sunny this time of year, around 17 °C.",
                    "Tomorrow in Lisbon: partly cloudy, 14 to 19 °C."),),
        ("get_weather",),
        ("The agent looks up tomorrow's forecast for Lisbon instead of guessing",),
        metadata={"split": "dev", "expectation": "no tool calls"}),
    SessionScript(
        "cancel-and-rebook",
        (TurnScript("Please cancel my booking QX7P2M.",
                    ((ToolUse("cancel_booking", {"confirmation": "QX7P2M"},
                              json.dumps({"confirmation": "QX7P2M", "status": "cancelled", "refund_usd": 289})),),),
                    "Booking QX7P2M is cancelled and $289 will be refunded.",
                    "QX7P2M is cancelled with a $289 refund."),
         TurnScript("Now find me a flight from Seattle to Boston on March 21 instead.",
                    ((ToolUse("search_flights", {"origin": "SEA", "destination": "BOS", "date": "2027-03-21"},
                              _flights(("AS 12", "08:05", 265), ("B6 498", "22:50", 199))),),),
                    "On March 21: AS 12 at 08:05 for $265, or the B6 498 red-eye at 22:50 for $199.",
                    "AS 12 at 08:05 ($265) and B6 498 at 22:50 ($199)."),
         TurnScript("The morning one, for Jordan Lee.",
                    ((ToolUse("book_flight", {"flight": "AS 12", "date": "2027-03-21", "passenger": "Jordan Lee"},
                              json.dumps({"confirmation": "HV3N6W", "status": "confirmed"})),),),
                    "AS 12 on March 21 is booked for Jordan Lee; confirmation HV3N6W.",
                    "AS 12 on March 21 is booked for Jordan Lee, confirmation HV3N6W.")),
        ("cancel_booking", "search_flights", "book_flight"),
        ("The agent cancels booking QX7P2M", "The agent books AS 12 on March 21 for Jordan Lee"),
        metadata={"split": "dev", "expectation": "correct, three turns"}),
    SessionScript(
        "missing-event-records",
        (TurnScript("What's the weather in Paris on Friday?",
                    ((ToolUse("get_weather", {"city": "Paris", "date": "2027-02-12"},
                              json.dumps({"forecast": "rain", "high_c": 9, "low_c": 3})),),),
                    "Friday in Paris: rain, 3 to 9 °C.",
                    "Rain in Paris on Friday, 3–9 °C."),),
        ("get_weather",),
        ("The agent reports Friday's weather in Paris",),
        with_events=False,
        metadata={"split": "dev", "expectation": "error: no event records"}),
)
OTLP_SESSIONS = ("happy-booking", "book-before-search")
"""The sessions also written as an OTLP/JSON export."""


def example_records() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """(all span records, all event records, each session's span+event records by slug)."""
    spans, events, by_slug = [], [], {}
    for index, script in enumerate(SESSIONS):
        start = int(START.timestamp() * 1e9) + index * 600_000 * MS
        session_spans, session_events = strands_session_records(script.session_id, script.turns, start_ns=start,
                                                                with_events=script.with_events)
        spans += session_spans
        events += session_events
        by_slug[script.slug] = session_spans + session_events
    return spans, events, by_slug


def ground_truth() -> dict[str, Any]:
    """The sessions' ``evaluationMetadata``."""
    return {"sessionMetadata": [
        {"sessionId": script.session_id, "testScenarioId": script.slug, "metadata": script.metadata,
         "groundTruth": {"inline": {
             "assertions": [{"text": text} for text in script.assertions],
             "expectedTrajectory": {"toolNames": list(script.expected_tools)},
             "turns": [{"input": {"prompt": turn.prompt}, "expectedResponse": {"text": turn.expected}}
                       for turn in script.turns if turn.expected]}}}
        for script in SESSIONS]}


# --- flat records -> OTLP/JSON -------------------------------------------------------------------------------------

_KINDS = {"UNSPECIFIED": 0, "INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
_CODES = {"UNSET": 0, "OK": 1, "ERROR": 2}


def any_value(value: Any) -> dict[str, Any]:
    """A plain JSON value as an OTLP/JSON AnyValue."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [any_value(item) for item in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": key_values(value)}}
    return {}


def key_values(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": any_value(value)} for key, value in attributes.items()]


def otlp_document(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Flat span and event records as one OTLP/JSON export, grouped by resource and scope."""
    span_groups: dict[str, dict[str, Any]] = {}
    log_groups: dict[str, dict[str, Any]] = {}
    for record in records:
        is_span = "body" not in record
        groups = span_groups if is_span else log_groups
        key = json.dumps([record["resource"], record["scope"]], sort_keys=True)
        group = groups.setdefault(key, {"resource": {"attributes": key_values(record["resource"]["attributes"])},
                                        "scope": dict(record["scope"]), "items": []})
        group["items"].append(_otlp_span(record) if is_span else _otlp_log(record))
    document: dict[str, Any] = {}
    if span_groups:
        document["resourceSpans"] = [{"resource": g["resource"], "scopeSpans": [{"scope": g["scope"],
                                                                                 "spans": g["items"]}]}
                                     for g in span_groups.values()]
    if log_groups:
        document["resourceLogs"] = [{"resource": g["resource"], "scopeLogs": [{"scope": g["scope"],
                                                                               "logRecords": g["items"]}]}
                                    for g in log_groups.values()]
    return document


def _otlp_span(record: dict[str, Any]) -> dict[str, Any]:
    span = {"traceId": record["traceId"], "spanId": record["spanId"], "parentSpanId": record.get("parentSpanId", ""),
            "flags": record.get("flags", 0), "name": record["name"], "kind": _KINDS[record["kind"]],
            "startTimeUnixNano": str(record["startTimeUnixNano"]), "endTimeUnixNano": str(record["endTimeUnixNano"]),
            "attributes": key_values(record["attributes"]), "status": {"code": _CODES[record["status"]["code"]]}}
    if record.get("events"):
        span["events"] = [{"timeUnixNano": str(e["timeUnixNano"]), "name": e["name"],
                           "attributes": key_values(e["attributes"])} for e in record["events"]]
    return span


def _otlp_log(record: dict[str, Any]) -> dict[str, Any]:
    return {"timeUnixNano": str(record["timeUnixNano"]), "observedTimeUnixNano": str(record["observedTimeUnixNano"]),
            "severityNumber": record["severityNumber"], "traceId": record["traceId"], "spanId": record["spanId"],
            "attributes": key_values(record["attributes"]), "body": any_value(record["body"])}


def write_examples(out: Path) -> dict[str, int]:
    """Write the three example files into ``out``; their counts (sessions, span and event records)."""
    spans, events, by_slug = example_records()
    out.mkdir(parents=True, exist_ok=True)
    with (out / "travel_agent_spans.jsonl").open("w", encoding="utf-8") as handle:
        for record in sorted(spans, key=lambda r: r["endTimeUnixNano"]) + \
                sorted(events, key=lambda r: r["timeUnixNano"]):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    (out / "travel_agent_ground_truth.json").write_text(json.dumps(ground_truth(), indent=2, ensure_ascii=False)
                                                        + "\n", encoding="utf-8")
    chosen = [record for slug in OTLP_SESSIONS for record in by_slug[slug]]
    (out / "travel_agent_otlp.json").write_text(json.dumps(otlp_document(chosen), indent=1, ensure_ascii=False)
                                                + "\n", encoding="utf-8")
    return {"sessions": len(SESSIONS), "spans": len(spans), "events": len(events),
            "otlp_records": len(chosen)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    counts = write_examples(parser.parse_args().out)
    print(", ".join(f"{value} {name}" for name, value in counts.items()))


if __name__ == "__main__":
    main()
