"""A Python SDK in the shape of SageMaker's ``LLMAsJudgeEvaluator`` and ``MultiTurnRLEvaluator``: build an evaluator,
``evaluate()``, ``wait()``, ``show_results()``; executions are recorded under the state folder and found again with
``EvaluationExecution.get``."""

from eval_pipeline.sdk.execution import EvaluationExecution
from eval_pipeline.sdk.llm_as_judge import LLMAsJudgeEvaluator
from eval_pipeline.sdk.models import resolve_model
from eval_pipeline.sdk.multi_turn_rl import MultiTurnRLEvaluator
from eval_pipeline.sdk.results import EvaluationResults
from eval_pipeline.sdk.status import EvaluationStatus, StepDetail

EvaluationPipelineExecution = EvaluationExecution
"""The SageMaker SDK's name for it."""

__all__ = [
    "EvaluationExecution",
    "EvaluationPipelineExecution",
    "EvaluationResults",
    "EvaluationStatus",
    "LLMAsJudgeEvaluator",
    "MultiTurnRLEvaluator",
    "StepDetail",
    "resolve_model",
]
