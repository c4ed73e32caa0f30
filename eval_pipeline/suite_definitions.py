"""Building Dagster definitions from suites: assets, jobs, sensors, schedules and shared resources."""

from __future__ import annotations

import dagster as dg

from eval_pipeline import paths
from eval_pipeline.assets import build_suite_assets
from eval_pipeline.automation import (
    completed_sessions_sensor,
    declared_models_sensor,
    new_checkpoint_sensor,
    nightly_schedule,
    suite_compare_job,
    suite_eval_job,
)
from eval_pipeline.resources import GenerationCacheResource, MlflowTrackingResource, ParquetIOManager
from eval_pipeline.suites import Suite
from eval_pipeline.suites.checks import check_suite
from eval_pipeline.tracking import default_tracking_uri


def default_resources() -> dict[str, object]:
    """Resources rooted in the state folder (``$EVAL_PIPELINE_HOME``)."""
    return {
        "io_manager": ParquetIOManager(base_path=str(paths.outputs_dir())),
        "generation_cache": GenerationCacheResource(path=str(paths.generation_cache_path())),
        "judge_cache": GenerationCacheResource(path=str(paths.judge_cache_path())),
        "mlflow": MlflowTrackingResource(tracking_uri=default_tracking_uri()),
    }


def suite_definitions(suite: Suite) -> dg.Definitions:
    """One suite's assets, jobs, sensors and schedule; a suite built in Python (not by ``load_suite``) is checked
    whole here, so no definitions exist for a suite that would fail after inference."""
    check_suite(suite)
    job = suite_eval_job(suite)
    compare = suite_compare_job(suite)
    sensors = [declared_models_sensor(suite)]
    if suite.watch is not None:
        sensors.append(new_checkpoint_sensor(suite, job))
    if suite.traces is not None and suite.traces.dataSourceConfig.cloudWatchLogs is not None:
        sensors.append(completed_sessions_sensor(suite, job))
    schedules = [nightly_schedule(suite, job)] if suite.schedule else []
    return dg.Definitions(assets=build_suite_assets(suite), jobs=[job] + ([compare] if compare else []),
                          sensors=sensors, schedules=schedules)


def build_definitions(suites: list[Suite], resources: dict[str, object] | None = None) -> dg.Definitions:
    """Definitions for these suites; steps run in the run's process (one process per step costs seconds)."""
    merged = dg.Definitions.merge(*(suite_definitions(s) for s in suites)) if suites else dg.Definitions()
    return dg.Definitions.merge(merged, dg.Definitions(resources=resources or default_resources(),
                                                       executor=dg.in_process_executor))

