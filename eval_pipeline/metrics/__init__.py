"""Aggregation: means with standard errors and CIs, pass@k and pass^k, breakdowns."""

from eval_pipeline.metrics.aggregate import aggregate_scores, breakdown_column
from eval_pipeline.metrics.passk import pass_at_k, pass_hat_k
from eval_pipeline.metrics.summary import MeanEstimate, mean_estimate

__all__ = ["MeanEstimate", "aggregate_scores", "breakdown_column", "mean_estimate", "pass_at_k", "pass_hat_k"]

from eval_pipeline.metrics.agreement import Agreement, agreement, comparable_label
from eval_pipeline.metrics.comparison import COMPARISON_COLUMNS, compare_models
from eval_pipeline.metrics.paired import (
    BootstrapResult,
    McNemarResult,
    mcnemar_test,
    paired_bootstrap,
)

__all__ += [
    "COMPARISON_COLUMNS",
    "Agreement",
    "BootstrapResult",
    "McNemarResult",
    "agreement",
    "comparable_label",
    "compare_models",
    "mcnemar_test",
    "paired_bootstrap",
]
