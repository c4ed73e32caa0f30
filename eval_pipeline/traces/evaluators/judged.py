"""Judged trace evaluators: the 13 builtins (module attributes named as ``registry.py`` expects) and the class
that custom ``llmAsAJudge`` evaluators share with them.

``plan(session, truth)`` gives one ``JudgeAsk`` per target at the evaluator's level (SESSION: the session; TRACE:
each turn; TOOL_CALL: each tool call), or an error result instead where no judgment can be had: the session has an
error (spans without event bodies), the ground truth the instructions read is missing (``MissingGroundTruth``), or
there is no turn / tool call to judge (``NothingToEvaluate``, one row for the session). Every result lists the
ground-truth fields given but not read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eval_pipeline.judging.metric import JudgeMetric, RatingLevel
from eval_pipeline.traces.evaluators import context as ctx
from eval_pipeline.traces.evaluators.base import ErrorCode, EvaluationResult, JudgeAsk, Level, Planned, Target
from eval_pipeline.traces.evaluators.prompt import FIELD_READS, fields_in, trace_judge_messages
from eval_pipeline.traces.evaluators.rubrics import RUBRICS, Rubric
from eval_pipeline.traces.ground_truth import ExpectedTurn, GroundTruth
from eval_pipeline.traces.sessions import Session, Turn

if TYPE_CHECKING:
    from eval_pipeline.inference.model_spec import ModelSpec


def _normalized(text: str | None) -> str:
    return " ".join((text or "").split()).casefold()


def expected_turn_for(truth: GroundTruth, index: int, turn: Turn) -> ExpectedTurn | None:
    """The ground-truth turn for the session's ``index``-th turn: the one at the same position unless it gives a
    prompt that differs from the turn's, else the first ground-truth turn whose prompt is the turn's (whitespace and
    case aside); None when none matches."""
    expected = truth.turns
    if index < len(expected) and (not expected[index].prompt
                                  or _normalized(expected[index].prompt) == _normalized(turn.prompt)):
        return expected[index]
    return next((e for e in expected if e.prompt and _normalized(e.prompt) == _normalized(turn.prompt)), None)


@dataclass(frozen=True)
class JudgedEvaluator:
    """An evaluator whose results a judge gives: instructions with placeholders, and a rating scale."""

    evaluator_id: str
    name: str
    level: Level
    instructions: str
    metric: JudgeMetric
    meanings: tuple[str, ...]
    """Each scale label's meaning, in the metric's level order (shown to the judge)."""
    reads: frozenset[str] = frozenset()
    judged: bool = True
    model: ModelSpec | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None

    @property
    def scale(self) -> list[tuple[str, str]]:
        return list(zip(self.metric.definitions, self.meanings, strict=True))

    def plan(self, session: Session, truth: GroundTruth) -> list[Planned]:
        ignored = tuple(name for name in truth.given() if name not in self.reads)
        if session.error:
            return [self._error(Target(session.session_id), session.error_code or ErrorCode.LOG_EVENT_MISSING,
                                session.error, ignored)]
        used = fields_in(self.instructions)
        planned: list[Planned] = []
        for target, fields, missing in self._targets(session, truth, used):
            if target is None:
                return [self._error(Target(session.session_id), ErrorCode.NOTHING_TO_EVALUATE, missing or "", ignored)]
            if missing:
                planned.append(self._error(target, ErrorCode.MISSING_GROUND_TRUTH, missing, ignored))
                continue
            messages = trace_judge_messages(self.name, self.instructions, fields, self.scale)
            extra: dict[str, object] = {"fields": sorted(k for k in fields if k in used)}
            if self.top_p is not None:
                extra["top_p"] = self.top_p
            planned.append(JudgeAsk(self.evaluator_id, self.name, self.level.value, target, self.metric, messages,
                                    ignored, self.model, self.max_tokens, self.temperature, extra))
        return planned

    def _error(self, target: Target, code: str, reason: str, ignored: tuple[str, ...]) -> EvaluationResult:
        return EvaluationResult(self.evaluator_id, self.name, self.level.value, target, error_code=str(code),
                                error=reason, ignored_reference_fields=ignored)

    def _targets(self, session: Session, truth: GroundTruth,
                 used: list[str]) -> Iterator[tuple[Target | None, dict[str, str], str | None]]:
        """(target, fields, missing ground truth) per target; (None, {}, reason) when there is none."""
        sid = session.session_id
        if self.level is Level.SESSION:
            fields = {"context": ctx.session_context(session), "available_tools": ctx.available_tools(session)}
            missing = []
            if "assertions" in used:
                if truth.assertions:
                    fields["assertions"] = ctx.assertions_text(truth)
                else:
                    missing.append("assertions")
            if "expected_tool_trajectory" in used:
                if truth.expected_tool_names is not None:
                    fields["expected_tool_trajectory"] = ctx.trajectory_text(truth)
                else:
                    missing.append("expectedTrajectory")
            yield Target(sid), fields, _missing_text(self.name, missing)
            return
        if self.level is Level.TRACE:
            if not session.turns:
                yield None, {}, f"session {sid!r} has no turns for the TRACE evaluator {self.name}"
                return
            for i, turn in enumerate(session.turns):
                fields = {"context": ctx.trace_context(session, i), "assistant_turn": ctx.assistant_turn(turn)}
                missing = []
                if "expected_response" in used:
                    expected = expected_turn_for(truth, i, turn)
                    if expected is not None and expected.expected_response:
                        fields["expected_response"] = expected.expected_response
                    else:
                        missing.append("expectedResponse")
                yield Target(sid, turn.trace_id, turn.root_span_id, i), fields, _missing_text(
                    self.name, missing, f" for turn {i + 1} (trace {turn.trace_id})")
            return
        calls = [(t, c) for t, turn in enumerate(session.turns) for c in range(len(turn.tool_calls))]
        if not calls:
            yield None, {}, f"session {sid!r} has no tool calls for the TOOL_CALL evaluator {self.name}"
            return
        tools = ctx.available_tools(session)
        for index, (t, c) in enumerate(calls):
            call = session.turns[t].tool_calls[c]
            call_text = ctx.tool_turn(call)
            fields = {"available_tools": tools, "context": ctx.tool_call_context(session, t, c),
                      "tool_turn": call_text, "tool_call": call_text}
            yield Target(sid, call.trace_id, call.span_id, index), fields, None


def _missing_text(name: str, missing: list[str], where: str = "") -> str | None:
    if not missing:
        return None
    return f"{name} needs ground truth {', '.join(missing)}{where}, which the session metadata does not give"


def builtin_evaluator(rubric: Rubric) -> JudgedEvaluator:
    """A builtin from its rubric: id ``Builtin.<Name>``, a float scale whose level definitions are the labels."""
    metric = JudgeMetric(rubric.name, rubric.instructions,
                         tuple(RatingLevel(level.label, level.value) for level in rubric.scale), builtin=True)
    reads = frozenset(FIELD_READS[f] for f in fields_in(rubric.instructions) if f in FIELD_READS)
    if reads != rubric.reads:
        raise ValueError(f"rubric {rubric.name}: its placeholders read {sorted(reads)}, not {sorted(rubric.reads)}")
    return JudgedEvaluator(f"Builtin.{rubric.name}", rubric.name, rubric.level, rubric.instructions, metric,
                           tuple(level.definition for level in rubric.scale), reads)


GOALSUCCESSRATE = builtin_evaluator(RUBRICS["GoalSuccessRate"])
CORRECTNESS = builtin_evaluator(RUBRICS["Correctness"])
HELPFULNESS = builtin_evaluator(RUBRICS["Helpfulness"])
FAITHFULNESS = builtin_evaluator(RUBRICS["Faithfulness"])
RESPONSERELEVANCE = builtin_evaluator(RUBRICS["ResponseRelevance"])
CONCISENESS = builtin_evaluator(RUBRICS["Conciseness"])
COHERENCE = builtin_evaluator(RUBRICS["Coherence"])
INSTRUCTIONFOLLOWING = builtin_evaluator(RUBRICS["InstructionFollowing"])
REFUSAL = builtin_evaluator(RUBRICS["Refusal"])
HARMFULNESS = builtin_evaluator(RUBRICS["Harmfulness"])
STEREOTYPING = builtin_evaluator(RUBRICS["Stereotyping"])
TOOLSELECTIONACCURACY = builtin_evaluator(RUBRICS["ToolSelectionAccuracy"])
TOOLPARAMETERACCURACY = builtin_evaluator(RUBRICS["ToolParameterAccuracy"])
