"""The Evaluation classes and the training-loop BenchmarkEvaluator, on the pipeline's own scoring code.

Rollouts go through ``run_generations`` + the pipeline's scorers; log-likelihood evaluations through a
``LikelihoodScorer`` + ``metrics/likelihood.py``; benchmarks through load → generate → score → aggregate.
"""

from eval_pipeline.evaluations.base import Evaluation, EvaluationOutcome, reduce_scores
from eval_pipeline.evaluations.benchmark import Benchmark, BenchmarkEvaluator, BenchmarkRun
from eval_pipeline.evaluations.encoding import EncodingEvaluation, as_likelihood_scorer
from eval_pipeline.evaluations.evaluator import Evaluator
from eval_pipeline.evaluations.job import InferenceJob
from eval_pipeline.evaluations.metric_registry import DEFAULT_METRICS, RegisteredMetric, parse_metric
from eval_pipeline.evaluations.perplexity import (
    JsonlMultipleChoiceEvaluation,
    PerplexityComparisonEvaluation,
    PerplexityEvaluation,
    TextCorpusPerplexityEvaluation,
)
from eval_pipeline.evaluations.rollout import JsonlRolloutEvaluation, RolloutEvaluation
from eval_pipeline.evaluations.sources import CheckpointConfig, EvaluatorConfig, ExecutionSpec

__all__ = [
    "DEFAULT_METRICS",
    "Benchmark",
    "BenchmarkEvaluator",
    "BenchmarkRun",
    "CheckpointConfig",
    "EncodingEvaluation",
    "Evaluation",
    "EvaluationOutcome",
    "Evaluator",
    "EvaluatorConfig",
    "ExecutionSpec",
    "InferenceJob",
    "JsonlMultipleChoiceEvaluation",
    "JsonlRolloutEvaluation",
    "PerplexityComparisonEvaluation",
    "PerplexityEvaluation",
    "RegisteredMetric",
    "RolloutEvaluation",
    "TextCorpusPerplexityEvaluation",
    "as_likelihood_scorer",
    "parse_metric",
    "reduce_scores",
]
