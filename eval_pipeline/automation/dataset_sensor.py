"""A dataset-version sensor: when the suite's dataset files change, re-run every model partition evaluated so far.

The version is the files' contents (local: re-hashed only when a file's size or mtime moved) or their S3 ETags
(``data/dataset_versions.py``); the cursor keeps the last version seen, so a restarted daemon does not re-request,
and each request's run key names the version and the partition, so a version is run once even if the cursor is
lost. The request cache answers every row evaluated before from the cache, so only the new rows are sent.
STOPPED by default: a user turns it on.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from eval_pipeline.assets.partitions import partition_model
from eval_pipeline.assets.run_tags import model_run_tags
from eval_pipeline.automation.jobs import AssetJob
from eval_pipeline.data.dataset_versions import DatasetVersion, dataset_version
from eval_pipeline.errors import EvalInputError
from eval_pipeline.suites.spec import Suite
from eval_pipeline.tasks import task_kind

DATASET_VERSION_TAG = "eval/dataset_version"


def dataset_sensor_name(suite: Suite | str) -> str:
    return f"{suite if isinstance(suite, str) else suite.suite}_dataset_version"


def evaluated_partitions(instance: dg.DagsterInstance, suite: Suite) -> list[str]:
    """The partition keys of the suite's production stage materialized so far (model, or model × shard)."""
    key = dg.AssetKey([suite.suite, task_kind(suite).production_stage])
    return sorted(str(k) for k in instance.get_materialized_partitions(key))


def dataset_run_requests(suite: Suite, version: str, partitions: list[str]) -> list[dg.RunRequest]:
    """One run of the eval job per evaluated partition, keyed by the dataset version and the partition."""
    tags = {"eval/trigger": "dataset_version", DATASET_VERSION_TAG: version}
    return [dg.RunRequest(partition_key=partition, run_key=f"dataset:{version}:{partition}",
                          tags={**model_run_tags(suite, partition_model(partition)), **tags})
            for partition in partitions]


def dataset_version_sensor(suite: Suite, job: AssetJob, *, s3_client: Any = None,
                           minimum_interval_seconds: int = 60) -> dg.SensorDefinition:
    """Watches ``suite.dataset.uri``; the first tick records the version it finds (nothing to re-run), each later
    new version requests a run of every evaluated partition."""
    uri = suite.resolve_uri(suite.dataset.uri)

    @dg.sensor(name=dataset_sensor_name(suite), job=job, minimum_interval_seconds=minimum_interval_seconds,
               default_status=dg.DefaultSensorStatus.STOPPED,
               description=f"Re-evaluates every evaluated model of {suite.suite} when {suite.dataset.uri} changes "
                           "(cached rows are free: only new rows are sent). Off until turned on.")
    def sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        previous = DatasetVersion.from_json(context.cursor)
        try:
            current = dataset_version(uri, previous, s3_client=s3_client)
        except EvalInputError as exc:
            return dg.SkipReason(f"cannot read the dataset: {exc}")
        if previous is None:
            return dg.SensorResult(cursor=current.to_json(), skip_reason=f"dataset version {current.version} recorded")
        if current.version == previous.version:  # the stamps may have moved (a file touched): keep them
            return dg.SensorResult(cursor=current.to_json(),
                                   skip_reason=f"dataset version {current.version} unchanged")
        partitions = evaluated_partitions(context.instance, suite)
        context.log.info(f"dataset {uri}: version {previous.version} → {current.version}; "
                         f"re-running {len(partitions)} partitions")
        return dg.SensorResult(run_requests=dataset_run_requests(suite, current.version, partitions),
                               cursor=current.to_json())

    return sensor
