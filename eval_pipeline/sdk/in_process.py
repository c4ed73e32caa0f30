"""Running an execution in this process: a background thread runs each model's partition with ``run_suite``
(the baseline last, so its call also runs the comparison), checking for a stop request between runs."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import dagster as dg

from eval_pipeline.execution import ModelRun, run_suite
from eval_pipeline.sdk.outputs import snapshot_tables, write_bedrock_outputs
from eval_pipeline.sdk.quiet_logs import quiet_store_logs
from eval_pipeline.sdk.records import read_record, snapshot_dir, update_record
from eval_pipeline.sdk.status import EXECUTION_TAG, RunInfo
from eval_pipeline.suites.spec import Suite

log = logging.getLogger(__name__)
_INSTANCES: dict[str, dg.DagsterInstance] = {}
_STOP_EVENTS: dict[str, threading.Event] = {}
"""Stop flags of the executions this process is running, by execution id."""


def local_dagster() -> dg.DagsterInstance:
    """The local Dagster instance (``local_instance()``), one per Dagster home in this process."""
    from eval_pipeline import paths
    from eval_pipeline.instance import local_instance

    key = os.environ.get("DAGSTER_HOME") or str(paths.dagster_home())
    if key not in _INSTANCES:
        quiet_store_logs()  # opening the instance the first time migrates its database
        _INSTANCES[key] = local_instance()
    return _INSTANCES[key]


def start(record_path: Path, suite: Suite, instance: dg.DagsterInstance, resources: dict[str, Any],
          tags: dict[str, str]) -> threading.Thread:
    """Start the runner thread (not a daemon: leaving the interpreter waits for the evaluation to finish)."""
    execution_id = record_path.stem
    stop = _STOP_EVENTS.setdefault(execution_id, threading.Event())
    thread = threading.Thread(target=_run, args=(record_path, suite, instance, resources, tags, stop),
                              name=f"eval-{execution_id}", daemon=False)
    thread.start()
    return thread


def _run(record_path: Path, suite: Suite, instance: dg.DagsterInstance, resources: dict[str, Any],
         tags: dict[str, str], stop: threading.Event) -> None:
    try:
        _run_steps(record_path, suite, instance, resources, tags, stop)
    except BaseException as exc:  # the record must say what happened, whatever it was
        log.exception("execution %s failed", record_path.stem)
        update_record(record_path, state="Failed", failure_reason=f"{type(exc).__name__}: {exc}",
                      finished_at=time.time())
    finally:
        _STOP_EVENTS.pop(record_path.stem, None)


def _run_steps(record_path: Path, suite: Suite, instance: dg.DagsterInstance, resources: dict[str, Any],
               tags: dict[str, str], stop: threading.Event) -> None:
    record = read_record(record_path)
    steps = [s for s in record["steps"] if s["kind"] == "eval"]
    without_baseline = suite.model_copy(update={"baseline": None})
    succeeded, failures = [], []
    for step in steps:
        if _stop_requested(record_path, stop):
            break
        model = step["model"]
        compare = model == suite.baseline and not failures  # run_suite compares after the baseline's run
        result = run_suite(suite if compare else without_baseline, instance, models=[model], resources=resources,
                           tags=tags)
        run = result.models[0]
        errors = _errors(step["name"], run)
        if result.comparison is not None:
            errors |= _errors(next(s["name"] for s in record["steps"] if s["kind"] == "compare"), result.comparison)
            if not result.comparison.success:
                failures.append("comparison")
        (succeeded if run.success else failures).append(model)
        _merge(record_path, errors, run, result.comparison, step["name"])
        log.info("execution %s: %s %s", record_path.stem, step["name"],
                 "succeeded" if run.success else f"failed: {errors.get(step['name'], 'the run failed')}")
    record = read_record(record_path)
    written = write_bedrock_outputs(record, succeeded)
    snapshot = snapshot_tables(record, snapshot_dir(record_path))
    stopped = _stop_requested(record_path, stop)
    state = "Stopped" if stopped else "Failed" if failures else "Succeeded"
    reason = "; ".join(f"{k}: {v}" for k, v in record.get("step_errors", {}).items()) if state == "Failed" else ""
    update_record(record_path, state=state, failure_reason=reason or None, finished_at=time.time(),
                  bedrock_outputs_written=written, snapshot=snapshot)
    log.info("execution %s %s", record_path.stem, state + (f": {reason}" if reason else ""))


def _errors(step: str, run: ModelRun) -> dict[str, str]:
    return {} if run.success else {step: run.error or "the run failed"}


def _merge(record_path: Path, errors: dict[str, str], run: ModelRun, comparison: ModelRun | None,
           step: str) -> None:
    record = read_record(record_path)
    mlflow_runs = dict(record.get("mlflow_runs") or {})
    for done in (run, comparison):
        if done is not None and done.mlflow_run_id:
            mlflow_runs[done.model] = done.mlflow_run_id
    gates = {**record.get("step_gates", {}), step: [gate.as_dict() for gate in run.gates]}
    update_record(record_path, step_errors={**record.get("step_errors", {}), **errors}, mlflow_runs=mlflow_runs,
                  step_gates=gates)


def _stop_requested(record_path: Path, stop: threading.Event) -> bool:
    return stop.is_set() or bool(read_record(record_path).get("stop_requested"))


def request_stop(record_path: Path, instance: dg.DagsterInstance) -> None:
    """No further run starts; the run in progress is reported as canceling (it finishes, in-process runs cannot
    be interrupted), and the execution ends Stopped."""
    update_record(record_path, stop_requested=True)
    event = _STOP_EVENTS.get(record_path.stem)
    if event is not None:
        event.set()
    active = dg.RunsFilter(tags={EXECUTION_TAG: record_path.stem},
                           statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING])
    for run in instance.get_runs(filters=active):
        try:
            instance.report_run_canceling(run, message="stop requested through the eval_pipeline SDK")
        except Exception as exc:  # best effort
            log.warning("could not mark run %s as canceling: %s", run.run_id, exc)


def run_infos(instance: dg.DagsterInstance, execution_id: str) -> list[RunInfo]:
    """The Dagster runs carrying the execution's tag."""
    records = instance.get_run_records(filters=dg.RunsFilter(tags={EXECUTION_TAG: execution_id}))
    return [RunInfo(run_id=r.dagster_run.run_id, job_name=r.dagster_run.job_name,
                    partition=r.dagster_run.tags.get("dagster/partition"), status=r.dagster_run.status.value,
                    start_time=r.start_time or r.create_timestamp.timestamp(), end_time=r.end_time)
            for r in records]
