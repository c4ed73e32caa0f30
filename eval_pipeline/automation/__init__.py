"""Dagster automation: jobs, sensors and schedules per suite."""

from eval_pipeline.automation.jobs import compare_job_name, eval_job_name, suite_compare_job, suite_eval_job
from eval_pipeline.automation.schedules import nightly_schedule
from eval_pipeline.automation.sensors import completed_sessions_sensor, declared_models_sensor, new_checkpoint_sensor

__all__ = ["compare_job_name", "completed_sessions_sensor", "declared_models_sensor", "eval_job_name",
           "new_checkpoint_sensor",
           "nightly_schedule", "suite_compare_job", "suite_eval_job"]
