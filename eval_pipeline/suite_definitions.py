"""Building Dagster definitions from suites: assets, jobs, sensors, schedules and shared resources."""

from __future__ import annotations

import dagster as dg

from eval_pipeline import paths
from eval_pipeline.assets import build_suite_assets
from eval_pipeline.assets.suite_assets import build_suite_checks
from eval_pipeline.automation import (
    completed_sessions_sensor,
    dataset_version_sensor,
    declared_models_sensor,
    new_checkpoint_sensor,
    nightly_schedule,
    shard_aggregation_sensor,
    staleness_sensor,
    suite_aggregate_job,
    suite_compare_job,
    suite_eval_job,
)
from eval_pipeline.resources import GenerationCacheResource, MlflowTrackingResource, ParquetIOManager
from eval_pipeline.run_executors import chosen_executor
from eval_pipeline.suites import Suite
from eval_pipeline.suites.checks import check_suite
from eval_pipeline.tracking import default_tracking_uri


def default_resources() -> dict[str, object]:
    """Resources rooted in the state folder (``$EVAL_PIPELINE_HOME``), or on shared storage when
    ``$EVAL_PIPELINE_OUTPUTS`` / ``$EVAL_PIPELINE_CACHE_URL`` say so."""
    return {
        "io_manager": ParquetIOManager(base_path=paths.outputs_location()),  # $EVAL_PIPELINE_OUTPUTS: s3://…
        "generation_cache": GenerationCacheResource(path=paths.generation_cache_location()),  # $EVAL_PIPELINE_CACHE_URL
        "judge_cache": GenerationCacheResource(path=paths.judge_cache_location()),
        "mlflow": MlflowTrackingResource(tracking_uri=default_tracking_uri()),
    }


def suite_definitions(suite: Suite) -> dg.Definitions:
    """One suite's assets, jobs, sensors and schedule; a suite built in Python (not by ``load_suite``) is checked
    whole here, so no definitions exist for a suite that would fail after inference."""
    check_suite(suite)
    job = suite_eval_job(suite)
    compare = suite_compare_job(suite)
    sensors: list[dg.SensorDefinition] = [declared_models_sensor(suite)]
    if suite.shards > 1:  # each model's metrics follow its shards, by declarative automation
        sensors.append(shard_aggregation_sensor(suite))
    if suite.watch is not None:
        sensors.append(new_checkpoint_sensor(suite, job))
    if suite.traces is not None and suite.traces.dataSourceConfig.cloudWatchLogs is not None:
        sensors.append(completed_sessions_sensor(suite, job))
    assets = build_suite_assets(suite)
    sensors += [staleness_sensor(suite, assets), dataset_version_sensor(suite, job)]  # both off until turned on
    schedules = [nightly_schedule(suite, job)] if suite.schedule else []
    extra_jobs = [j for j in (suite_aggregate_job(suite), compare) if j is not None]  # aggregate: sharded suites
    return dg.Definitions(assets=assets, asset_checks=build_suite_checks(suite), jobs=[job, *extra_jobs],
                          sensors=sensors, schedules=schedules)


def build_definitions(suites: list[Suite], resources: dict[str, object] | None = None) -> dg.Definitions:
    """Definitions for these suites; steps run on the executor ``$EVAL_PIPELINE_EXECUTOR`` names (default: in the
    run's process, as one process per step costs seconds; see ``run_executors``)."""
    merged = dg.Definitions.merge(*(suite_definitions(s) for s in suites)) if suites else dg.Definitions()
    return dg.Definitions.merge(merged, dg.Definitions(resources=resources or default_resources(),
                                                       executor=chosen_executor()))

