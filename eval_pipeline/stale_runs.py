"""Runs of this machine whose process died (kill -9, out of memory) stay STARTED and keep their pool slots;
marking them failed frees the slots so the next run is not blocked behind a ghost.

The MLflow runs such a process had open are ended by ``eval_pipeline.tracking.stale_runs``.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

import dagster as dg

from eval_pipeline.process_identity import HOST_TAG, PID_TAG, owner_gone, process_tags
from eval_pipeline.resources.mlflow_tracking import MlflowTrackingResource

__all__ = ["HOST_TAG", "PID_TAG", "end_orphaned_mlflow_runs", "fail_orphaned_runs", "process_tags"]


def fail_orphaned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark this host's in-process runs whose process is gone as failed and free their concurrency slots."""
    filters = dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING],
                            tags={HOST_TAG: socket.gethostname()})
    orphans = []
    for run in instance.get_runs(filters=filters):
        if owner_gone(run.tags):
            instance.report_run_failed(run, f"the process running it (pid {run.tags.get(PID_TAG)}) is gone")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            orphans.append(run.run_id)
    return orphans


def end_orphaned_mlflow_runs(resources: Mapping[str, object]) -> list[str]:
    """End as KILLED the MLflow runs left RUNNING by this host's dead processes, in the store of the ``mlflow``
    resource (none when tracking is off or not configured)."""
    tracking = resources.get("mlflow")
    return tracking.end_orphaned_runs() if isinstance(tracking, MlflowTrackingResource) else []
