"""Aggregation: means with standard errors and CIs, pass@k and pass^k, breakdowns."""

from eval_pipeline.metrics.aggregate import aggregate_scores, breakdown_column
from eval_pipeline.metrics.passk import pass_at_k, pass_hat_k
from eval_pipeline.metrics.summary import MeanEstimate, mean_estimate

__all__ = ["MeanEstimate", "aggregate_scores", "breakdown_column", "mean_estimate", "pass_at_k", "pass_hat_k"]
