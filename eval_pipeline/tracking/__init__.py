"""MLflow tracking: one run per suite × model with params, metrics, the dataset input, tables and plots."""

from eval_pipeline.tracking.mlflow_log import (
    DAGSTER_RUN_ID_TAG,
    EvaluationRecord,
    default_artifact_location,
    default_tracking_uri,
    flatten_params,
    log_evaluation,
    metric_values,
    sanitize_name,
)
from eval_pipeline.tracking.plots import metrics_figure

__all__ = [
    "DAGSTER_RUN_ID_TAG",
    "EvaluationRecord",
    "default_artifact_location",
    "default_tracking_uri",
    "flatten_params",
    "log_evaluation",
    "metric_values",
    "metrics_figure",
    "sanitize_name",
]
