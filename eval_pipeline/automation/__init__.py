"""Dagster automation: jobs, sensors and schedules per suite."""

from eval_pipeline.automation.dataset_sensor import dataset_version_sensor
from eval_pipeline.automation.jobs import (
    aggregate_job_name,
    compare_job_name,
    eval_job_name,
    suite_aggregate_job,
    suite_compare_job,
    suite_eval_job,
)
from eval_pipeline.automation.schedules import nightly_schedule
from eval_pipeline.automation.sensors import (
    completed_sessions_sensor,
    declared_models_sensor,
    new_checkpoint_sensor,
    shard_aggregation_sensor,
)
from eval_pipeline.automation.staleness import staleness_sensor

__all__ = ["aggregate_job_name", "compare_job_name", "completed_sessions_sensor", "dataset_version_sensor",
           "declared_models_sensor", "eval_job_name", "new_checkpoint_sensor", "nightly_schedule",
           "shard_aggregation_sensor", "staleness_sensor", "suite_aggregate_job", "suite_compare_job",
           "suite_eval_job"]
