"""Sensors: register declared models, evaluate each new checkpoint of a watched source (a folder, an S3 prefix, a
SageMaker model package group, an MLflow registered model), and evaluate each recorded session once it is complete
(a traces suite reading CloudWatch Logs)."""

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import dagster as dg

from eval_pipeline.assets.partitions import model_partitions, partition_shard, shard_keys
from eval_pipeline.assets.run_tags import model_run_tags
from eval_pipeline.automation.jobs import AssetJob
from eval_pipeline.suites.checkpoint_sources import Checkpoint, CheckpointSource, checkpoint_source
from eval_pipeline.suites.spec import Suite
from eval_pipeline.traces.cloudwatch import logs_client
from eval_pipeline.traces.session_activity import ActivityState, hand_out, observe, poll_spans, ready_sessions
from eval_pipeline.tracking.run_labels import MLFLOW_TAGS_TAG


def declared_models_sensor(suite: Suite) -> dg.SensorDefinition:
    """Keeps the suite's model partitions in step with the models its file declares."""
    partitions = model_partitions(suite)

    @dg.sensor(name=f"{suite.suite}_declared_models", minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Adds the models declared in {suite.suite}'s suite file as partitions.")
    def sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        existing = set(context.instance.get_dynamic_partitions(partitions.name))
        new = [m.name for m in suite.models if m.name not in existing]
        if not new:
            return dg.SkipReason("every declared model is a partition")
        return dg.SensorResult(dynamic_partitions_requests=[partitions.build_add_request(new)])

    return sensor


def _s3_client(region: str | None) -> Any:
    from dagster_aws.s3 import S3Resource  # the dagster-aws S3 resource: its region, endpoint and credentials
    return S3Resource(region_name=region).get_client()


def _aws_client(service: str) -> Callable[[str | None], Any]:
    def build(region: str | None) -> Any:
        import boto3
        return boto3.client(service, region_name=region)
    return build


SOURCE_CLIENTS: dict[str, Callable[[str | None], Any]] = {"s3": _s3_client, "sagemaker": _aws_client("sagemaker")}
"""How the sensor builds the client a checkpoint source lists with, by the source's ``service``."""


def checkpoint_tags(source: CheckpointSource, checkpoint: Checkpoint) -> dict[str, str]:
    """The run's tags naming where the model came from; also carried to the MLflow run (``run_labels``)."""
    recorded = {"eval/checkpoint_source": source.uri, "eval/checkpoint_kind": source.kind,
                "eval/checkpoint_uri": checkpoint.uri}
    if checkpoint.version:
        recorded["eval/checkpoint_version"] = checkpoint.version
    return {"eval/trigger": "new_checkpoint", **recorded, MLFLOW_TAGS_TAG: json.dumps(recorded, sort_keys=True)}


def checkpoint_run_key(source: CheckpointSource, checkpoint: Checkpoint) -> str:
    """Unique per model and version, so a restarted daemon (or a lost cursor) never requests a model twice; a local
    folder's checkpoints keep their first key, ``checkpoint:<name>``."""
    if not checkpoint.version:
        return f"checkpoint:{checkpoint.name}"
    return f"checkpoint:{source.uri}:{checkpoint.name}:{checkpoint.version}"


def new_checkpoint_sensor(suite: Suite, job: AssetJob, *, client: Any | None = None) -> dg.SensorDefinition:
    """Registers each new model of the suite's watched source as a partition and requests its evaluation once. A
    local folder's new checkpoints are the ones not partitions yet; a versioned source's (S3 etag, SageMaker package
    version, MLflow version) are the versions not in the cursor, which maps each name to the version seen."""
    assert suite.watch is not None
    watch = suite.watch
    source = checkpoint_source(watch, suite)
    partitions = model_partitions(suite)

    @dg.sensor(name=f"{suite.suite}_new_checkpoints", job=job, minimum_interval_seconds=30,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Evaluates each new model that appears in {source.uri}.")
    def sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        known = set(context.instance.get_dynamic_partitions(partitions.name))
        lister = client if client is not None or source.service is None else SOURCE_CLIENTS[source.service](
            watch.region)
        found = [c for c in source.list(lister)
                 if (seen.get(c.name) != c.version if c.version else c.name not in known)]
        if not found:
            return dg.SkipReason(f"no new checkpoint in {source.uri}")
        context.log.info(f"new checkpoints: {', '.join(c.name for c in found)}")
        added = [c.name for c in found if c.name not in known]
        versioned = {c.name: c.version for c in found if c.version}
        return dg.SensorResult(
            dynamic_partitions_requests=[partitions.build_add_request(added)] if added else [],
            run_requests=[request for c in found for request in shard_run_requests(
                suite, c.name, checkpoint_run_key(source, c), checkpoint_tags(source, c))],
            cursor=json.dumps({**seen, **versioned}, sort_keys=True) if versioned else None)

    return sensor


def shard_run_requests(suite: Suite, model: str, run_key: str, tags: dict[str, str]) -> list[dg.RunRequest]:
    """The runs that evaluate one model: one (``run_key``) unsharded, else one per shard (``<run_key>:shard<i>``,
    each a model × shard partition of the eval job); the automation sensor aggregates the model after them."""
    keys = shard_keys(suite, model)
    tags = {**model_run_tags(suite, model), **tags}
    if suite.shards == 1:
        return [dg.RunRequest(partition_key=model, run_key=run_key, tags=tags)]
    return [dg.RunRequest(partition_key=key, run_key=f"{run_key}:shard{partition_shard(key)}", tags=tags)
            for key in keys]


def shard_aggregation_sensor(suite: Suite) -> dg.AutomationConditionSensorDefinition:
    """A sharded suite's automation sensor: evaluates the metrics asset's condition (``aggregation_condition``:
    all shards of a model materialized, none in progress) and launches each model's aggregation once, with its
    promotion when the suite promotes (in the same run, behind the metrics' blocking checks)."""
    stages = ("metrics", "promotion") if suite.promote else ("metrics",)
    keys = [dg.AssetKey([suite.suite, stage]) for stage in stages]
    return dg.AutomationConditionSensorDefinition(
        name=f"{suite.suite}_aggregate_shards", target=dg.AssetSelection.assets(*keys),
        default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
        description=f"Aggregates each model of {suite.suite} once all its {suite.shards} shards are materialized.")


SESSION_POLL_OVERLAP_MS = 5 * 60_000
"""Each poll reads back this far before the last high-water mark: CloudWatch makes spans searchable minutes after
they are written (spans seen twice change nothing)."""
FIRST_POLL_LOOKBACK_MS = 24 * 3_600_000


def completed_sessions_sensor(suite: Suite, job: AssetJob, *, clock: Callable[[], float] = time.time,
                              client: Any | None = None) -> dg.SensorDefinition:
    """Online evaluation, self-hosted: polls the suite's spans log group, and once a session has had no new span for
    ``sessionTimeoutMinutes`` requests the evaluation of the complete sessions of one recorded agent (the partition
    whose service they belong to; the next agent's on the next tick), each session evaluated once. While a run of
    the suite is in flight no new one is requested: the sessions wait, since the runs share the samples table."""
    assert suite.traces is not None and suite.traces.dataSourceConfig.cloudWatchLogs is not None
    source = suite.traces.dataSourceConfig.cloudWatchLogs
    timeout = suite.traces.sessionTimeoutMinutes

    @dg.sensor(name=f"{suite.suite}_completed_sessions", job=job, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.STOPPED,
               description=f"Evaluates each session of {', '.join(source.serviceNames)} in "
                           f"{source.spansLogGroupName} once it has had no new span for {timeout} minutes.")
    def sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        busy = _runs_in_flight(context.instance, job.name)
        if busy:  # the samples table is the suite's: one session run at a time, so none reads another's sessions
            return dg.SkipReason(f"a run of {job.name} is still in flight ({busy[0]}); sessions wait for it")
        now_ms = int(clock() * 1000)
        state = ActivityState.from_cursor(context.cursor)
        since = (state.high_water_ms - SESSION_POLL_OVERLAP_MS if state.high_water_ms is not None
                 else now_ms - FIRST_POLL_LOOKBACK_MS)
        logs = client if client is not None else logs_client(source.region)
        observations, high_water = poll_spans(logs, source.spansLogGroupName, source.serviceNames, since, now_ms)
        state = observe(state, observations, high_water_ms=high_water)
        services = {sid: service for sid, (_last, service) in state.open.items()} | _services(observations)
        complete = ready_sessions(state, now_ms, timeout)
        requests = session_run_requests(suite, complete, services)
        agents_sessions = {sid for r in requests for sid in _sample_ids(suite, r)}
        unclaimed = [sid for sid in complete if sid not in agents_sessions]  # no agent of the suite has them
        taken = _sample_ids(suite, requests[0]) if requests else []
        state = hand_out(state, [*taken, *unclaimed], now_ms)
        context.log.info(f"{len(observations)} spans read; {len(complete)} sessions complete, {len(taken)} "
                         f"evaluated now, {len(unclaimed)} of no agent; {len(state.open)} open")
        return dg.SensorResult(run_requests=requests[:1], cursor=state.to_cursor())

    return sensor


def session_run_requests(suite: Suite, sessions: list[str], services: dict[str, str | None]) -> list[dg.RunRequest]:
    """One run per recorded agent for the complete sessions of its service (an agent that names no service takes
    every session), its samples step limited to them."""
    requests = []
    for model in suite.models:
        mine = [sid for sid in sessions if model.model is None or services.get(sid) == model.model]
        if not mine:
            continue
        key = hashlib.sha256(json.dumps(mine).encode()).hexdigest()[:16]
        requests.append(dg.RunRequest(
            partition_key=model.name, run_key=f"sessions:{model.name}:{key}",
            run_config={"ops": {f"{suite.suite}__samples": {"config": {"sample_ids": mine}}}},
            tags={**model_run_tags(suite, model.name), "eval/trigger": "completed_sessions",
                  "eval/sessions": str(len(mine))}))
    return requests


def _sample_ids(suite: Suite, request: dg.RunRequest) -> list[str]:
    return request.run_config["ops"][f"{suite.suite}__samples"]["config"]["sample_ids"]


def _runs_in_flight(instance: dg.DagsterInstance, job_name: str) -> list[str]:
    """The ids of the job's runs not finished yet."""
    pending = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED]
    return [run.run_id for run in instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=pending))]


def _services(observations: list[tuple[str, str | None, int]]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for session_id, service, _end in observations:
        if service or session_id not in found:
            found[session_id] = service
    return found
