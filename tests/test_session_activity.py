"""Session completion for the online-evaluation sensor, on an injected clock (epoch ms passed in), and polling
span records from CloudWatch Logs (moto on 127.0.0.1)."""

from __future__ import annotations

import json

import pytest

from eval_pipeline.traces.cloudwatch import logs_client
from eval_pipeline.traces.session_activity import (
    ActivityState,
    complete_sessions,
    observe,
    poll_spans,
)
from tests.cloudwatch_spans import SERVICE_A, SERVICE_B, SPANS, record_sessions

MIN = 60_000
T0 = 1_800_000_000_000


def _round_trip(state: ActivityState) -> ActivityState:
    again = ActivityState.from_cursor(json.loads(json.dumps(state.to_cursor())))
    assert again == state
    return again


def test_a_session_is_complete_after_the_timeout_and_handed_out_once() -> None:
    state = ActivityState.from_cursor(None)
    state = _round_trip(observe(state, [("s1", SERVICE_A, T0), ("s2", SERVICE_A, T0 + 1 * MIN),
                                        ("s1", SERVICE_A, T0 + 3 * MIN)], high_water_ms=T0 + 3 * MIN))
    assert state.open == {"s1": (T0 + 3 * MIN, SERVICE_A), "s2": (T0 + MIN, SERVICE_A)}

    # at +5:59 neither is 5 minutes quiet; s2 becomes complete at exactly +6:00
    done, state = complete_sessions(state, T0 + 6 * MIN - 1, timeout_minutes=5)
    assert done == []
    done, state = complete_sessions(_round_trip(state), T0 + 6 * MIN, timeout_minutes=5)
    assert done == ["s2"]
    assert state.handed_out == {"s2": T0 + 6 * MIN} and set(state.open) == {"s1"}

    # s1 has a late span (ended at +7), so it is not complete at +8
    state = observe(_round_trip(state), [("s1", SERVICE_A, T0 + 7 * MIN), ("s2", SERVICE_A, T0 + 7 * MIN)])
    assert state.open == {"s1": (T0 + 7 * MIN, SERVICE_A)}       # s2 was handed out: its late span is ignored
    done, state = complete_sessions(state, T0 + 8 * MIN, timeout_minutes=5)
    assert done == []
    done, state = complete_sessions(_round_trip(state), T0 + 12 * MIN, timeout_minutes=5)
    assert done == ["s1"]
    done, state = complete_sessions(state, T0 + 60 * MIN, timeout_minutes=5)
    assert done == [] and state.open == {}
    assert state.high_water_ms == T0 + 3 * MIN


def test_observing_the_same_spans_twice_changes_nothing() -> None:
    spans = [("s1", SERVICE_A, T0 + 2 * MIN), ("s1", SERVICE_A, T0)]
    once = observe(ActivityState(), spans)
    assert observe(once, spans) == once and once.open == {"s1": (T0 + 2 * MIN, SERVICE_A)}


def test_several_complete_sessions_oldest_first() -> None:
    state = observe(ActivityState(), [("b", None, T0 + MIN), ("a", SERVICE_B, T0 + 2 * MIN), ("c", None, T0)])
    done, _ = complete_sessions(state, T0 + 30 * MIN, timeout_minutes=15)
    assert done == ["c", "b", "a"]


def test_handed_out_ids_are_forgotten_after_the_horizon() -> None:
    state = observe(ActivityState(), [("s1", None, T0)])
    _, state = complete_sessions(state, T0 + 10 * MIN, timeout_minutes=5, horizon_ms=60 * MIN)
    _, state = complete_sessions(state, T0 + 70 * MIN, timeout_minutes=5, horizon_ms=60 * MIN)
    assert "s1" in state.handed_out
    _, state = complete_sessions(state, T0 + 71 * MIN, timeout_minutes=5, horizon_ms=60 * MIN)
    assert state.handed_out == {}


def test_the_number_of_handed_out_ids_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from eval_pipeline.traces import session_activity

    monkeypatch.setattr(session_activity, "MAX_HANDED_OUT", 3)
    state = observe(ActivityState(), [(f"s{i}", None, T0 + i * MIN) for i in range(5)])
    for i in range(5):
        _, state = complete_sessions(state, T0 + (i + 10) * MIN, timeout_minutes=10)
    assert set(state.handed_out) == {"s2", "s3", "s4"}


@pytest.fixture
def logs_env(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", aws_env)
    return aws_env


def test_poll_spans_reads_new_span_records(logs_env: str) -> None:
    from tests.cloudwatch_spans import base_ms

    start = base_ms()
    rec = record_sessions(logs_client(), start)
    ends = {}
    for span in rec.spans:
        if rec.service[span["attributes"]["session.id"]] == SERVICE_B:
            ends.setdefault(span["attributes"]["session.id"], []).append(span["endTimeUnixNano"] // 1_000_000)
    observations, high_water = poll_spans(logs_client(), SPANS, [SERVICE_B], start, None)
    assert sorted(observations) == sorted((sid, SERVICE_B, end) for sid, items in ends.items() for end in items)
    every_end = [s["endTimeUnixNano"] // 1_000_000 for s in rec.spans]
    assert high_water == max(every_end)                         # the latest record read, of any service

    # a later poll from the high-water mark sees only what was written after it
    later, mark = poll_spans(logs_client(), SPANS, [], high_water + 1, None)
    assert later == [] and mark == high_water + 1
    state = observe(ActivityState(), observations, high_water_ms=high_water)
    done, _ = complete_sessions(state, high_water + 30 * MIN, timeout_minutes=15)
    assert done == ["sess-2", "sess-3"]
