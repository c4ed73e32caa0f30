"""Which sessions of a log group are complete: the logic under the online-evaluation sensor (the self-hosted form
of AgentCore's online evaluation, ``sessionConfig.sessionTimeoutMinutes``).

A session is complete once no new span of it has ended for ``timeout_minutes``. The cursor state (JSON, small)
holds each open session's last span end and the sessions already handed out, so a session is handed out once;
handed-out ids are forgotten after ``horizon_ms``, which bounds the state. All times are passed in (epoch ms):
nothing here reads the clock.

CloudWatch makes spans searchable minutes after they are written: poll with an overlap (``since_ms`` a few minutes
before the last high-water mark); ``observe`` is idempotent, so spans seen twice change nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

DEFAULT_HORIZON_MS = 7 * 24 * 3_600_000
"""Handed-out session ids are remembered for a week (a late span of such a session is ignored, not re-evaluated)."""
MAX_HANDED_OUT = 100_000
"""At most this many handed-out ids are kept (the oldest are forgotten first)."""

Observation = tuple[str, str | None, int]
"""(session id, service name, span end in epoch ms)."""


@dataclass(frozen=True)
class ActivityState:
    """The sensor's cursor: open sessions' last span end (and service), handed-out sessions with when they were
    handed out, and the high-water mark of the spans read so far."""

    open: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    handed_out: dict[str, int] = field(default_factory=dict)
    high_water_ms: int | None = None

    def to_cursor(self) -> str:
        return json.dumps({"open": {sid: [last, service] for sid, (last, service) in sorted(self.open.items())},
                           "handed_out": dict(sorted(self.handed_out.items())),
                           "high_water_ms": self.high_water_ms}, separators=(",", ":"))

    @classmethod
    def from_cursor(cls, cursor: str | None) -> ActivityState:
        """The state a cursor holds; an empty state for no cursor."""
        if not cursor:
            return cls()
        data = json.loads(cursor)
        return cls(open={sid: (int(last), service) for sid, (last, service) in data.get("open", {}).items()},
                   handed_out={sid: int(at) for sid, at in data.get("handed_out", {}).items()},
                   high_water_ms=data.get("high_water_ms"))


def observe(state: ActivityState, spans: Iterable[Observation], *,
            high_water_ms: int | None = None) -> ActivityState:
    """The state after seeing ``spans``: each open session's last span end is the latest seen; spans of sessions
    already handed out are ignored."""
    open_ = dict(state.open)
    for session_id, service, end_ms in spans:
        if not session_id or session_id in state.handed_out:
            continue
        last, known = open_.get(session_id, (None, None))
        if last is None or end_ms > last:
            open_[session_id] = (int(end_ms), service or known)
        elif known is None and service:
            open_[session_id] = (last, service)
    mark = state.high_water_ms
    if high_water_ms is not None:
        mark = high_water_ms if mark is None else max(mark, high_water_ms)
    return replace(state, open=open_, high_water_ms=mark)


def ready_sessions(state: ActivityState, now_ms: int, timeout_minutes: float) -> list[str]:
    """The open sessions complete at ``now_ms`` (no span ended in the last ``timeout_minutes``), oldest first."""
    timeout_ms = int(timeout_minutes * 60_000)
    return [sid for _, sid in sorted((last, sid) for sid, (last, _) in state.open.items()
                                     if now_ms - last >= timeout_ms)]


def hand_out(state: ActivityState, session_ids: Iterable[str], now_ms: int, *,
             horizon_ms: int = DEFAULT_HORIZON_MS) -> ActivityState:
    """The state with ``session_ids`` handed out (never handed out again); handed-out ids older than
    ``horizon_ms`` are forgotten."""
    taken = set(session_ids)
    open_ = {sid: entry for sid, entry in state.open.items() if sid not in taken}
    handed = {sid: at for sid, at in state.handed_out.items() if now_ms - at <= horizon_ms}
    handed |= dict.fromkeys(sorted(taken), now_ms)
    if len(handed) > MAX_HANDED_OUT:
        handed = dict(sorted(handed.items(), key=lambda item: (item[1], item[0]))[-MAX_HANDED_OUT:])
    return replace(state, open=open_, handed_out=handed)


def complete_sessions(state: ActivityState, now_ms: int, timeout_minutes: float, *,
                      horizon_ms: int = DEFAULT_HORIZON_MS) -> tuple[list[str], ActivityState]:
    """The sessions complete at ``now_ms``, oldest first, and the state with them handed out."""
    complete = ready_sessions(state, now_ms, timeout_minutes)
    return complete, hand_out(state, complete, now_ms, horizon_ms=horizon_ms)


def poll_spans(client: Any, log_group: str, service_names: Iterable[str], since_ms: int,
               until_ms: int | None = None) -> tuple[list[Observation], int]:
    """The (session id, service, span end ms) of span records in ``log_group`` written from ``since_ms`` to
    ``until_ms`` (all pages), of ``service_names`` (all services when empty), and the high-water mark: the latest
    event timestamp read (``since_ms`` when none)."""
    from eval_pipeline.traces.cloudwatch import log_events

    services = set(service_names)
    observations: list[Observation] = []
    high_water = since_ms
    for event in log_events(client, log_group, None, since_ms, until_ms, required=True,
                                field="logGroupNames"):
        high_water = max(high_water, int(event["timestamp"]))
        observation = _observation(event)
        if observation is not None and (not services or observation[1] in services):
            observations.append(observation)
    return observations, high_water


def _observation(event: dict[str, Any]) -> Observation | None:
    try:
        data = json.loads(event.get("message", ""))
    except ValueError:
        return None
    if not isinstance(data, dict) or "spanId" not in data:
        return None
    session = (data.get("attributes") or {}).get("session.id")
    if not session:
        return None
    service = ((data.get("resource") or {}).get("attributes") or {}).get("service.name")
    try:
        end_ms = int(data["endTimeUnixNano"]) // 1_000_000
    except (KeyError, TypeError, ValueError):
        end_ms = int(event["timestamp"])
    return str(session), service, end_ms
