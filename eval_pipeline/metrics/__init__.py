"""Aggregation: means with standard errors and range-respecting CIs, pass@k and pass^k, breakdowns, paired
comparisons (one procedure gives both interval and p-value) and Holm's multiple-comparison adjustment."""

from eval_pipeline.metrics.aggregate import aggregate_scores, breakdown_column
from eval_pipeline.metrics.passk import pass_at_k, pass_hat_k
from eval_pipeline.metrics.summary import MeanEstimate, mean_estimate

__all__ = ["MeanEstimate", "aggregate_scores", "breakdown_column", "mean_estimate", "pass_at_k", "pass_hat_k"]

from eval_pipeline.metrics.agreement import Agreement, agreement, comparable_label
from eval_pipeline.metrics.comparison import COMPARISON_COLUMNS, compare_models
from eval_pipeline.metrics.multiplicity import holm, with_holm
from eval_pipeline.metrics.paired import (
    McNemarResult,
    mcnemar_test,
)
from eval_pipeline.metrics.paired_difference import PairedDifference, paired_difference
from eval_pipeline.metrics.ranges import SCORE_RANGE, UNBOUNDED, UNIT, ValueRange

__all__ += [
    "COMPARISON_COLUMNS",
    "SCORE_RANGE",
    "UNBOUNDED",
    "UNIT",
    "Agreement",
    "McNemarResult",
    "PairedDifference",
    "ValueRange",
    "agreement",
    "comparable_label",
    "compare_models",
    "holm",
    "mcnemar_test",
    "paired_difference",
    "with_holm",
]
