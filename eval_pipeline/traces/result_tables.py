"""Evaluator results (TRACE_EVALUATIONS rows) in the shapes of a suite's ``scores`` and ``judgments`` tables (their
columns first, the results' own kept beside them), and back."""

from __future__ import annotations

import pandas as pd

from eval_pipeline.data.schemas import TRACE_EVALUATIONS
from eval_pipeline.traces.evaluators.base import ErrorCode, EvaluationResult, Evaluator, Target


def as_scores(results: pd.DataFrame) -> pd.DataFrame:
    return results.assign(sample_id=results["session_id"], sample_index=target_index(results),
                          scorer=results["evaluator_id"], extracted=results["label"],
                          request_hash=results["judge_request_hash"])


def as_judgments(results: pd.DataFrame) -> pd.DataFrame:
    return results.assign(sample_id=results["session_id"], sample_index=target_index(results),
                          metric=results["evaluator_id"])


def target_index(results: pd.DataFrame) -> pd.Series:
    """Each result's ordinal among its evaluator's results in the session (the tables' ``sample_index``)."""
    return results.groupby(["session_id", "evaluator_id"], sort=False).cumcount().astype("int64")


def results_of(scores: pd.DataFrame, judgments: pd.DataFrame | None) -> pd.DataFrame:
    frames = [scores] + ([judgments] if judgments is not None else [])
    return pd.concat([f.reindex(columns=TRACE_EVALUATIONS.names) for f in frames], ignore_index=True)


def session_not_found(session_id: str, evaluator: Evaluator, model: str | None,
                      test_scenario_id: str | None) -> dict[str, object]:
    """The error row of an evaluator for a session the ground truth names and the source does not hold."""
    result = EvaluationResult(
        evaluator.evaluator_id, evaluator.name, str(evaluator.level), Target(session_id),
        error_code=ErrorCode.SESSION_NOT_FOUND,
        error=f"session {session_id!r} has ground truth but no spans in the source")
    return result.as_row(model=model, test_scenario_id=test_scenario_id)
