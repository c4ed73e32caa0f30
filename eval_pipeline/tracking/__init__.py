"""MLflow tracking: one run per suite × model with params, metrics, the dataset input, tables and plots, and one
comparison run per suite (model vs baseline differences, a forest plot). Every run carries the host and pid of the
process that opened it, so a later process ends those a dead process left RUNNING (``end_orphaned_runs``).

The metrics plot is an SVG written directly (``metrics_plot``); the comparison's forest plot (``plots``) imports
matplotlib only when drawn. A run started by ``run_suite`` logs through a helper process (``worker``)."""

from eval_pipeline.tracking.comparison_log import log_comparison
from eval_pipeline.tracking.mlflow_log import (
    DAGSTER_RUN_ID_TAG,
    EvaluationRecord,
    default_tracking_uri,
    flatten_params,
    log_evaluation,
    metric_values,
    open_experiment,
    sanitize_name,
    start_run,
    tracking_client,
)
from eval_pipeline.tracking.stale_runs import end_orphaned_runs

__all__ = [
    "DAGSTER_RUN_ID_TAG",
    "EvaluationRecord",
    "default_tracking_uri",
    "end_orphaned_runs",
    "flatten_params",
    "log_comparison",
    "log_evaluation",
    "metric_values",
    "open_experiment",
    "sanitize_name",
    "start_run",
    "tracking_client",
]
