"""LLM-as-judge: rubric metrics (builtin and custom), judge prompts, verdict parsing, pairwise comparison."""

from eval_pipeline.judging.builtin import BUILTIN_METRIC_NAMES, builtin_metric
from eval_pipeline.judging.custom import MAX_CUSTOM_METRICS, parse_custom_metrics, resolve_metrics
from eval_pipeline.judging.metric import PLACEHOLDERS, JudgeMetric, JudgeMetricError, RatingLevel
from eval_pipeline.judging.pairwise import Preference, combine_orders, pairwise_messages, parse_preference
from eval_pipeline.judging.prompt import judge_messages
from eval_pipeline.judging.verdict import Verdict, VerdictParseError, parse_verdict
from eval_pipeline.metrics.pairwise_summary import PairwiseOutcome, PairwiseSummary, summarize_pairwise

__all__ = [
    "BUILTIN_METRIC_NAMES",
    "MAX_CUSTOM_METRICS",
    "PLACEHOLDERS",
    "JudgeMetric",
    "JudgeMetricError",
    "PairwiseOutcome",
    "PairwiseSummary",
    "Preference",
    "RatingLevel",
    "Verdict",
    "VerdictParseError",
    "builtin_metric",
    "combine_orders",
    "judge_messages",
    "pairwise_messages",
    "parse_custom_metrics",
    "parse_preference",
    "parse_verdict",
    "resolve_metrics",
    "summarize_pairwise",
]
