"""What an evaluator of recorded sessions is, and what it gives back.

An evaluator works at one level (a whole SESSION, each TRACE of it, each TOOL_CALL) and *plans* its results for one
session: a programmatic evaluator returns finished ``EvaluationResult``s; a judged one returns ``JudgeAsk``s (the
judge's messages and the scale its verdict is read against), which the runner (``traces.evaluation``) sends
through the request machinery (cache, concurrency, retries) and reads with the judge's verdict parser. A result
that cannot be had (no ground truth it needs, a session without event bodies, an unparseable verdict) is a result
with ``error`` set and no value: never a guess.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from eval_pipeline.inference.model_spec import ModelSpec
    from eval_pipeline.judging.metric import JudgeMetric
    from eval_pipeline.traces.ground_truth import GroundTruth
    from eval_pipeline.traces.sessions import Session

MAX_EVALUATORS = 10


class Level(StrEnum):
    SESSION = "SESSION"
    TRACE = "TRACE"
    TOOL_CALL = "TOOL_CALL"


class ErrorCode(StrEnum):
    """The ``errorCode`` of a result without a value."""

    LOG_EVENT_MISSING = "LogEventMissingException"
    """The session's spans have no event records with the messages (as the service reports it)."""
    MISSING_GROUND_TRUTH = "MissingGroundTruth"
    """The evaluator needs a ground-truth field the session's metadata does not give."""
    NOTHING_TO_EVALUATE = "NothingToEvaluate"
    """A TRACE evaluator on a session without turns, a TOOL_CALL evaluator on a trace without tool calls."""
    JUDGE_FAILED = "JudgeRequestFailed"
    JUDGE_UNPARSEABLE = "JudgeReplyUnparseable"
    SESSION_NOT_FOUND = "SessionNotFound"
    """The ground truth names a session the source holds no span of."""
    EVALUATOR_FAILED = "EvaluatorFailed"
    """A custom code evaluator raised, returned a malformed result, or its Lambda reported a function error."""


@dataclass(frozen=True)
class Target:
    """What one result is about: the session, and for TRACE/TOOL_CALL results the trace and span. ``index`` is the
    target's ordinal among the evaluator's targets in the session (the ``sample_index`` of the scores tables)."""

    session_id: str
    trace_id: str | None = None
    span_id: str | None = None
    index: int = 0

    def span_context(self) -> dict[str, str]:
        """The service's ``context.spanContext``."""
        context = {"sessionId": self.session_id}
        if self.trace_id is not None:
            context["traceId"] = self.trace_id
        if self.span_id is not None:
            context["spanId"] = self.span_id
        return context


@dataclass(frozen=True)
class EvaluationResult:
    """One evaluator's result for one target: a value and label, or an error."""

    evaluator_id: str
    evaluator_name: str
    level: str
    target: Target
    value: float | None = None
    """On the evaluator's own scale (a numerical rating's value; 1.0/0.0 for a trajectory match)."""
    score: float | None = None
    """``value`` normalized to [0, 1] (what means and intervals are computed over)."""
    label: str | None = None
    explanation: str | None = None
    ignored_reference_fields: tuple[str, ...] = ()
    error_code: str | None = None
    error: str | None = None
    judge_model: str | None = None
    judge_request_hash: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    cached: bool | None = None

    def as_row(self, model: str | None = None, test_scenario_id: str | None = None) -> dict[str, object]:
        """A row of the TRACE_EVALUATIONS table."""
        return {"session_id": self.target.session_id, "trace_id": self.target.trace_id,
                "span_id": self.target.span_id, "model": model, "evaluator_id": self.evaluator_id,
                "evaluator_name": self.evaluator_name, "level": self.level, "value": self.value,
                "score": self.score, "label": self.label, "explanation": self.explanation,
                "ignored_reference_fields": json.dumps(list(self.ignored_reference_fields)),
                "test_scenario_id": test_scenario_id, "judge_model": self.judge_model,
                "judge_request_hash": self.judge_request_hash, "tokens_in": self.tokens_in,
                "tokens_out": self.tokens_out, "cost_usd": self.cost_usd, "cached": self.cached,
                "error_code": self.error_code, "error": self.error}


@dataclass(frozen=True)
class JudgeAsk:
    """A judgment to request: the judge's messages for one target and the scale its verdict is read on."""

    evaluator_id: str
    evaluator_name: str
    level: str
    target: Target
    metric: JudgeMetric
    messages: tuple[dict[str, str], ...]
    ignored_reference_fields: tuple[str, ...] = ()
    model: ModelSpec | None = None
    """A custom evaluator's own judge model (its ``modelConfig``); None: the job's judge."""
    max_tokens: int | None = None
    temperature: float | None = None
    extra: dict[str, object] = field(default_factory=dict)


Planned = EvaluationResult | JudgeAsk


@runtime_checkable
class Evaluator(Protocol):
    """One evaluator, by the service's id (``Builtin.Helpfulness``) or a custom evaluator's id."""

    evaluator_id: str
    name: str
    level: Level
    reads: frozenset[str]
    """The ground-truth fields (``ground_truth.REFERENCE_FIELDS``) it uses; the others given are reported ignored."""
    judged: bool
    """Whether it asks a judge (needs a judge model); programmatic evaluators make no model call."""

    def plan(self, session: Session, truth: GroundTruth) -> list[Planned]:
        """Its results (or judge requests) for one session: one per target at its level."""
        ...
