"""MLflow tracking: one run per suite × model with params, metrics, the dataset input, tables and plots.

The plot (``eval_pipeline.tracking.plots``) is imported only when drawn: matplotlib is slow to import.
"""

from eval_pipeline.tracking.mlflow_log import (
    DAGSTER_RUN_ID_TAG,
    EvaluationRecord,
    default_tracking_uri,
    flatten_params,
    log_evaluation,
    metric_values,
    sanitize_name,
)

__all__ = [
    "DAGSTER_RUN_ID_TAG",
    "EvaluationRecord",
    "default_tracking_uri",
    "flatten_params",
    "log_evaluation",
    "metric_values",
    "sanitize_name",
]
