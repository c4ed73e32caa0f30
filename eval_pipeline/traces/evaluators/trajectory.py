"""The three programmatic trajectory evaluators (SESSION level, no model call), as AgentCore defines them
(developer guide, "Ground truth evaluations"): they compare the names of the session's tool calls, in start
order across its turns (``Session.tool_names``), with ``expectedTrajectory.toolNames``.

- ``Builtin.TrajectoryExactOrderMatch``: the same tools in the same order, no extras: the lists are equal.
- ``Builtin.TrajectoryInOrderMatch``: every expected tool appears in the expected order, extra calls allowed
  between them: the expected list is a subsequence of the actual one (a repeated expected name needs as many
  calls, in order).
- ``Builtin.TrajectoryAnyOrderMatch``: every expected tool is called, in any order, extra calls allowed. Counted
  as a multiset: a name expected twice needs at least two calls (``[search, search]`` is not met by one
  ``search``); this is stricter than a set comparison and is what "every expected call was made" means.

An empty expected list is met by any session for in-order and any-order, and only by a session without tool calls
for exact order. The value is 1.0 (label "Yes") or 0.0 ("No"); the score equals the value. The public
documentation names no labels for these evaluators: "Yes"/"No" follows the service's other binary evaluators
(GoalSuccessRate, ToolSelectionAccuracy); ``calibration`` compares with the managed service's labels.
A session without ``expectedTrajectory`` gets an error result (``MissingGroundTruth``), a session without bodies
its session error (``LogEventMissingException``), never a guess.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eval_pipeline.traces.evaluators.base import ErrorCode, EvaluationResult, Level, Planned, Target
from eval_pipeline.traces.evaluators.outcomes import error_result, ignored_fields, session_error_result
from eval_pipeline.traces.ground_truth import GroundTruth
from eval_pipeline.traces.sessions import Session

YES, NO = "Yes", "No"
Matcher = Callable[[Sequence[str], Sequence[str]], bool]
"""(actual tool names, expected tool names) -> whether they match."""


def exact_order(actual: Sequence[str], expected: Sequence[str]) -> bool:
    return list(actual) == list(expected)


def in_order(actual: Sequence[str], expected: Sequence[str]) -> bool:
    remaining = iter(actual)
    return all(any(name == called for called in remaining) for name in expected)


def any_order(actual: Sequence[str], expected: Sequence[str]) -> bool:
    return not Counter(expected) - Counter(actual)


@dataclass(frozen=True)
class TrajectoryMatch:
    """One trajectory evaluator: its id, name, rule and the words its explanation uses for the rule."""

    evaluator_id: str
    name: str
    matches: Matcher
    rule: str
    level: Level = Level.SESSION
    reads: frozenset[str] = frozenset({"expectedTrajectory"})
    judged: bool = False

    def plan(self, session: Session, truth: GroundTruth) -> list[Planned]:
        failed = session_error_result(self, session, truth)
        if failed is not None:
            return [failed]
        target = Target(session.session_id)
        expected = truth.expected_tool_names
        if expected is None:
            return [error_result(self, target, ErrorCode.MISSING_GROUND_TRUTH,
                                 f"{self.evaluator_id} needs expectedTrajectory.toolNames in the session's ground "
                                 "truth (evaluationMetadata.sessionMetadata[].groundTruth.inline)", truth)]
        actual = session.tool_names
        matched = self.matches(actual, expected)
        explanation = (f"Expected {list(expected)} ({self.rule}); the session called {actual}: "
                       f"{'match' if matched else 'no match'}{'' if matched else self._why(actual, expected)}.")
        return [EvaluationResult(evaluator_id=self.evaluator_id, evaluator_name=self.name, level=self.level.value,
                                 target=target, value=1.0 if matched else 0.0, score=1.0 if matched else 0.0,
                                 label=YES if matched else NO, explanation=explanation,
                                 ignored_reference_fields=ignored_fields(self, truth))]

    @staticmethod
    def _why(actual: Sequence[str], expected: Sequence[str]) -> str:
        missing = Counter(expected) - Counter(actual)
        extra = Counter(actual) - Counter(expected)
        parts = []
        if missing:
            parts.append(f"missing {sorted(missing.elements())}")
        if extra:
            parts.append(f"extra {sorted(extra.elements())}")
        if not parts:
            parts.append("the calls are out of order")
        return " (" + "; ".join(parts) + ")"


TRAJECTORYEXACTORDERMATCH = TrajectoryMatch(
    "Builtin.TrajectoryExactOrderMatch", "TrajectoryExactOrderMatch", exact_order,
    "the same tools in the same order, no extras")
TRAJECTORYINORDERMATCH = TrajectoryMatch(
    "Builtin.TrajectoryInOrderMatch", "TrajectoryInOrderMatch", in_order,
    "every expected tool in this order, extra calls allowed")
TRAJECTORYANYORDERMATCH = TrajectoryMatch(
    "Builtin.TrajectoryAnyOrderMatch", "TrajectoryAnyOrderMatch", any_order,
    "every expected call in any order, extra calls allowed")
