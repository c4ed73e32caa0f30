"""Results every evaluator gives the same way: which ground-truth fields it ignored, and an error result (no value)
for a target it cannot evaluate, among them a session whose spans have no bodies."""

from __future__ import annotations

from eval_pipeline.traces.evaluators.base import ErrorCode, EvaluationResult, Evaluator, Target
from eval_pipeline.traces.ground_truth import GroundTruth
from eval_pipeline.traces.sessions import Session


def ignored_fields(evaluator: Evaluator, truth: GroundTruth) -> tuple[str, ...]:
    """The ground-truth fields given for the session that the evaluator does not read (the service's
    ``ignoredReferenceInputFields``), in ``REFERENCE_FIELDS`` order."""
    return tuple(name for name in truth.given() if name not in evaluator.reads)


def error_result(evaluator: Evaluator, target: Target, code: str, message: str,
                 truth: GroundTruth) -> EvaluationResult:
    """A result without a value: ``code`` (an ``ErrorCode``) and the message saying why."""
    return EvaluationResult(evaluator_id=evaluator.evaluator_id, evaluator_name=evaluator.name,
                            level=str(evaluator.level), target=target, ignored_reference_fields=ignored_fields(
                                evaluator, truth), error_code=str(code), error=message)


def session_error_result(evaluator: Evaluator, session: Session, truth: GroundTruth) -> EvaluationResult | None:
    """The error result of a session that cannot be evaluated at all (``Session.error``), else None."""
    if session.error is None:
        return None
    return error_result(evaluator, Target(session.session_id), session.error_code or ErrorCode.EVALUATOR_FAILED,
                        session.error, truth)
