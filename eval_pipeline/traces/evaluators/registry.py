"""Evaluators by id: the service's builtins (a ``Registry``, loaded on first use; plugins add theirs through the
entry point group ``eval_pipeline.trace_evaluators``). Custom evaluators are made from their ``create_evaluator``
configuration (``traces.evaluators.custom``) and looked up before the builtins."""

from __future__ import annotations

from collections.abc import Mapping

from eval_pipeline.registry import Registry
from eval_pipeline.traces.evaluators.base import Evaluator

TRACE_EVALUATORS: Registry[Evaluator] = Registry("evaluator", "eval_pipeline.trace_evaluators")
for _id in ("TrajectoryExactOrderMatch", "TrajectoryInOrderMatch", "TrajectoryAnyOrderMatch"):
    TRACE_EVALUATORS.register(f"Builtin.{_id}", f"eval_pipeline.traces.evaluators.trajectory:{_id.upper()}")
for _id in ("GoalSuccessRate", "Correctness", "Helpfulness", "Faithfulness", "ResponseRelevance", "Conciseness",
            "Coherence", "InstructionFollowing", "Refusal", "Harmfulness", "Stereotyping", "ToolSelectionAccuracy",
            "ToolParameterAccuracy"):
    TRACE_EVALUATORS.register(f"Builtin.{_id}", f"eval_pipeline.traces.evaluators.judged:{_id.upper()}")


def resolve_evaluator(evaluator_id: str, custom: Mapping[str, Evaluator] | None = None) -> Evaluator:
    """The evaluator an id names: a custom one given here first, else a registered builtin
    (``UnknownEntryError`` listing the known ids otherwise)."""
    if custom and evaluator_id in custom:
        return custom[evaluator_id]
    return TRACE_EVALUATORS.get(evaluator_id)
