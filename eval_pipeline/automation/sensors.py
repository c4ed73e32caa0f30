"""Sensors: register declared models, evaluate each new checkpoint dropped into a watched folder, and evaluate each
recorded session once it is complete (a traces suite reading CloudWatch Logs)."""

import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from eval_pipeline.assets.partitions import model_partitions
from eval_pipeline.automation.jobs import AssetJob
from eval_pipeline.suites.spec import NAME_PATTERN, Suite
from eval_pipeline.traces.cloudwatch import logs_client
from eval_pipeline.traces.session_activity import ActivityState, hand_out, observe, poll_spans, ready_sessions

CHECKPOINT_MARKER = "config.json"


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


def new_checkpoints(folder: Path, known: set[str]) -> list[str]:
    """Checkpoint directories (holding a config.json) in the folder that are not partitions yet."""
    if not folder.is_dir():
        return []
    return sorted(
        entry.name for entry in folder.iterdir()
        if entry.is_dir() and (entry / CHECKPOINT_MARKER).is_file() and entry.name not in known
        and re.match(NAME_PATTERN, entry.name))


def new_checkpoint_sensor(suite: Suite, job: AssetJob) -> dg.SensorDefinition:
    """Registers each new checkpoint folder as a model partition and requests its evaluation."""
    assert suite.watch is not None
    folder = suite.resolve_path(suite.watch.dir)
    partitions = model_partitions(suite)

    @dg.sensor(name=f"{suite.suite}_new_checkpoints", job=job, minimum_interval_seconds=30,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Evaluates each new model directory that appears in {folder}.")
    def sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        found = new_checkpoints(folder, set(context.instance.get_dynamic_partitions(partitions.name)))
        if not found:
            return dg.SkipReason(f"no new checkpoint in {folder}")
        context.log.info(f"new checkpoints: {', '.join(found)}")
        return dg.SensorResult(
            dynamic_partitions_requests=[partitions.build_add_request(found)],
            run_requests=[dg.RunRequest(partition_key=name, run_key=f"checkpoint:{name}",
                                        tags={"eval/trigger": "new_checkpoint"}) for name in found])

    return sensor


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
            tags={"eval/trigger": "completed_sessions", "eval/sessions": str(len(mine))}))
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
