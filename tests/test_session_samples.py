"""Recorded sessions as a traces suite's samples table, and their ground truth read back from it."""

from __future__ import annotations

import json

import pandas as pd

from eval_pipeline.data.schemas import SAMPLES
from eval_pipeline.traces.ground_truth import ExpectedTurn, GroundTruth, SessionMetadata
from eval_pipeline.traces.session_samples import (
    missing_row,
    missing_sessions,
    sample_truths,
    service_sessions,
    session_row,
)
from eval_pipeline.traces.sessions import Session, Turn

TRUTH = SessionMetadata("s-1", "book-01", {"split": "dev", "service": "theirs"},
                        GroundTruth(assertions=("books one flight",), expected_tool_names=("search", "book"),
                                    turns=(ExpectedTurn("Book it", "Booked."), ExpectedTurn(None, None))))


def session(session_id: str, service: str) -> Session:
    turn = Turn(trace_id="a" * 32, root_span_id="b" * 16, prompt="Book it", response="Booked.")
    return Session(session_id, (turn,), service=service, span_count=4, sources=("spans.jsonl",))


def test_rows_carry_the_ground_truth_and_give_it_back() -> None:
    rows = [session_row(session("s-1", "agent_a"), TRUTH), session_row(session("s-2", "agent_b"), None),
            missing_row(SessionMetadata("s-3", "lost-01", {}, GroundTruth(assertions=("x",))))]
    samples = pd.DataFrame(rows, columns=SAMPLES.names)
    first = samples.iloc[0]
    assert (first["input"], first["reference"], first["category"]) == ("Book it", "Booked.", "book-01")
    metadata = json.loads(first["metadata"])
    assert metadata["service"] == "agent_a" and metadata["split"] == "dev"  # our key wins over the truth's own
    truths = sample_truths(samples)
    assert truths["s-1"] == SessionMetadata("s-1", "book-01", {"split": "dev"}, TRUTH.ground_truth)
    assert "s-2" not in truths and truths["s-3"].ground_truth.assertions == ("x",)
    assert missing_sessions(samples) == ["s-3"]
    assert service_sessions(samples, "agent_b") == {"s-2"} and service_sessions(samples, None) == {"s-1", "s-2"}
    assert len(set(samples["row_hash"])) == 3
