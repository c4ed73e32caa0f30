"""The three trajectory evaluators against verdicts computed by hand."""

from __future__ import annotations

import json

import pytest

from eval_pipeline.traces.evaluators.base import ErrorCode, EvaluationResult, Evaluator, Level
from eval_pipeline.traces.evaluators.registry import resolve_evaluator
from eval_pipeline.traces.evaluators.trajectory import (
    TRAJECTORYANYORDERMATCH,
    TRAJECTORYEXACTORDERMATCH,
    TRAJECTORYINORDERMATCH,
)
from eval_pipeline.traces.ground_truth import ExpectedTurn, GroundTruth
from eval_pipeline.traces.sessions import Session, ToolCallRecord, Turn

EXACT, IN_ORDER, ANY_ORDER = TRAJECTORYEXACTORDERMATCH, TRAJECTORYINORDERMATCH, TRAJECTORYANYORDERMATCH


def session(*turns: list[str], error: bool = False) -> Session:
    """A session whose turns call these tools (in this order)."""
    return Session("s", tuple(
        Turn(f"{i:032x}", f"{i:016x}", "q", "a", tool_calls=tuple(
            ToolCallRecord(name, f"{i:08x}{j:08x}", f"{i:032x}") for j, name in enumerate(names)))
        for i, names in enumerate(turns)),
        error="no bodies" if error else None, error_code=ErrorCode.LOG_EVENT_MISSING.value if error else None)


def verdict(evaluator: Evaluator, actual: Session, expected: list[str] | None, **truth: object) -> EvaluationResult:
    [result] = evaluator.plan(actual, GroundTruth(expected_tool_names=None if expected is None else tuple(expected),
                                                  **truth))
    assert isinstance(result, EvaluationResult)
    return result


# (actual tool calls per turn, expected, hand-computed exact / in-order / any-order)
CASES = [
    ([["search", "book"]], ["search", "book"], (1, 1, 1)),                       # the same
    ([["search"], ["book"]], ["search", "book"], (1, 1, 1)),                     # across turns
    ([["search", "weather", "book"]], ["search", "book"], (0, 1, 1)),            # an extra call between
    ([["book", "search"]], ["search", "book"], (0, 0, 1)),                       # out of order
    ([["search"]], ["search", "book"], (0, 0, 0)),                               # a missing tool
    ([[]], ["search"], (0, 0, 0)),                                               # no tool calls
    ([], ["search"], (0, 0, 0)),                                                 # no turns at all
    ([[]], [], (1, 1, 1)),                                                       # nothing expected, nothing called
    ([["search"]], [], (0, 1, 1)),                                               # nothing expected, one call
    ([["search", "search", "book"]], ["search", "book"], (0, 1, 1)),             # a repeated call
    ([["search", "book"]], ["search", "search", "book"], (0, 0, 0)),             # expected twice, called once
    ([["search", "book", "search"]], ["search", "search", "book"], (0, 0, 1)),   # twice, but not in order
    ([["book", "search", "search"]], ["search", "search"], (0, 1, 1)),
    ([["a", "b", "a", "c"]], ["a", "a", "c"], (0, 1, 1)),
    ([["a", "c", "a"]], ["a", "a", "c"], (0, 0, 1)),
]


@pytest.mark.parametrize(("calls", "expected", "hand"), CASES)
def test_verdicts_match_the_hand_computed_ones(calls: list[list[str]], expected: list[str],
                                               hand: tuple[int, int, int]) -> None:
    actual = session(*calls)
    for evaluator, want in zip((EXACT, IN_ORDER, ANY_ORDER), hand, strict=True):
        result = verdict(evaluator, actual, expected)
        assert (result.value, result.score, result.label) == (float(want), float(want), ("Yes" if want else "No")), (
            evaluator.evaluator_id, calls, expected)
        assert result.error is None and result.level == "SESSION" and result.target.session_id == "s"
        assert str(expected) in result.explanation and str(actual.tool_names) in result.explanation


def test_explanations_say_what_is_missing_extra_or_out_of_order() -> None:
    assert "missing ['book']" in verdict(EXACT, session(["search"]), ["search", "book"]).explanation
    assert "extra ['weather']" in verdict(EXACT, session(["search", "weather"]), ["search"]).explanation
    assert "out of order" in verdict(IN_ORDER, session(["book", "search"]), ["search", "book"]).explanation


def test_missing_ground_truth_and_session_errors_are_error_rows() -> None:
    missing = verdict(IN_ORDER, session(["search"]), None, assertions=("a",))
    assert (missing.value, missing.label, missing.error_code) == (None, None, ErrorCode.MISSING_GROUND_TRUTH.value)
    assert "expectedTrajectory" in missing.error and missing.ignored_reference_fields == ("assertions",)
    dry = verdict(EXACT, session(["search"], error=True), ["search"])
    assert (dry.value, dry.error_code, dry.error) == (None, ErrorCode.LOG_EVENT_MISSING.value, "no bodies")


def test_ignored_reference_fields_are_the_given_fields_not_read() -> None:
    truth = {"assertions": ("books one",), "turns": (ExpectedTurn("q", "a"),)}
    result = verdict(ANY_ORDER, session(["x"]), ["x"], **truth)
    assert result.ignored_reference_fields == ("assertions", "expectedResponse")
    row = result.as_row(model="agent", test_scenario_id="t1")
    assert json.loads(row["ignored_reference_fields"]) == ["assertions", "expectedResponse"]
    assert verdict(ANY_ORDER, session(["x"]), ["x"]).ignored_reference_fields == ()


def test_registered_by_the_service_ids_and_meet_the_protocol() -> None:
    for evaluator in (EXACT, IN_ORDER, ANY_ORDER):
        assert resolve_evaluator(evaluator.evaluator_id) is evaluator
        assert isinstance(evaluator, Evaluator)
        assert evaluator.level is Level.SESSION and not evaluator.judged
        assert evaluator.reads == frozenset({"expectedTrajectory"})
